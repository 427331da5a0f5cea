"""Test-wide settings: every trace made in the tests is checked by the trace verifier after every pass."""

import os

os.environ.setdefault("THUNDER_DEBUG_VERIFY", "1")


# pytest-xdist runs tests in an order that changes from run to run: each test starts from its own seed, derived
# from its id, so that the random inputs it draws do not depend on which tests ran before it in its worker.
import random  # noqa: E402
import zlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_from_test_id(request):
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    random.seed(seed)
