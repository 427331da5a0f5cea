"""Test-wide settings: the device the suite runs on, and the trace verifier after every pass.

`python3 -m pytest tests --device cuda` runs every test that is not about the CPU itself on CUDA: around each
test, `torch.set_default_device("cuda")` makes the tests' factory calls create CUDA tensors without a per-test
edit, and TF32 is off so that float32 results compare with eager's at float32 tolerances. A test that must
stay on the CPU carries `@pytest.mark.cpu_only(reason=...)` and is skipped under `--device cuda` with that
reason. Tests of CUDA-specific behaviour skip with "needs CUDA" where there is none.
"""

import os
import random
import zlib

import pytest
import torch

os.environ.setdefault("THUNDER_DEBUG_VERIFY", "1")

DEVICES = ("cpu", "cuda")


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="the device the tests run on (default: cpu); `cuda` runs them on the current CUDA device",
    )


def _one_share_of_the_cores_per_worker() -> None:
    """Under pytest-xdist, each worker's torch uses its share of the cores for intra-op parallelism. By default every
    worker takes them all: on the 2-core CI machine with `-n 2`, each tiny op's parallel region then waits for a
    thread the other worker has descheduled (tens of milliseconds for a 5-microsecond matmul)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if os.environ.get("PYTEST_XDIST_WORKER") and workers > 0:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_configure(config):
    _one_share_of_the_cores_per_worker()
    config.addinivalue_line(
        "markers", "cpu_only(reason): the test is about the CPU itself; skipped under --device cuda with the reason"
    )
    # Read at import by test modules that parametrize by device (the op databases add float16 on CUDA) and by
    # the fuzzers; set before collection imports them.
    os.environ["THUNDER_TEST_DEVICE"] = config.getoption("--device")


def pytest_sessionstart(session):
    config = session.config
    if config.getoption("--device") == "cuda" and not config.option.collectonly and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda needs a CUDA device, and torch sees none (torch.cuda.is_available())")


@pytest.fixture(autouse=True)
def _run_on_test_device(request):
    """Under --device cuda: CUDA as the default device and TF32 off for the test's duration."""
    if request.config.getoption("--device") != "cuda":
        yield
        return
    marker = request.node.get_closest_marker("cpu_only")
    if marker is not None:
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "the test is about the CPU")
        pytest.skip(f"CPU only: {reason}")
    # The default device is thread-local state: a test that starts threads makes their tensors on the CPU.
    context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.set_default_device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        # None when no default device was set: no device mode stays on the stack between tests
        torch.set_default_device(None if context is None else context.device)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_tf32


@pytest.fixture
def device() -> torch.device:
    """The device the test runs on (--device), with its index: `cpu` or `cuda:<current device>`."""
    return torch.get_default_device()

# pytest-xdist runs tests in an order that changes from run to run: each test starts from its own seed, derived
# from its id, so that the random inputs it draws do not depend on which tests ran before it in its worker.


@pytest.fixture(autouse=True)
def _seed_from_test_id(request):
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    random.seed(seed)
