"""thunder.distributed on the CPU with the gloo backend, in 2 and 4 processes (torch.multiprocessing, spawn).

Each world size runs every scenario in one launch (module-scoped fixtures: starting processes is the slow part);
the tests read what each rank found. The reference is single-process eager training on the global batch.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

import thunder

sys.path.insert(0, os.path.dirname(__file__))
import distributed_worker as worker  # noqa: E402

from benchmarks.distributed import GROUP_OUTLIVED_DESTROY  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")

TOLERANCE = 1e-5
LAUNCH_TIMEOUT_S = 240


def launch(world: int, tmp_path, scenario: str, checkpoint_dir: str | None = None, backend: str = "gloo") -> list[dict]:
    """Runs `worker.worker` in `world` spawned processes; returns each rank's result (None if it wrote none)."""
    ctx = multiprocessing.get_context("spawn")
    result_dir = tmp_path / f"results-{scenario}-{world}-{backend}"
    result_dir.mkdir()
    init_file = str(tmp_path / f"init-{scenario}-{world}-{backend}")
    procs = [ctx.Process(target=worker.worker, args=(r, world, init_file, str(result_dir), scenario, checkpoint_dir,
                                                     backend))
             for r in range(world)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(LAUNCH_TIMEOUT_S)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert not hung, f"ranks {hung} still running after {LAUNCH_TIMEOUT_S} s"
    results = []
    for r in range(world):
        path = result_dir / f"rank{r}.pt"
        results.append(torch.load(path, weights_only=False) if path.exists() else None)
    return results


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory, request):
    """A directory every pytest-xdist worker of this session sees (each worker's base temp is a subdirectory of
    the session's): the launches run once, whichever worker asks first."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(request.config, "workerinput") else base


def launch_once(shared, name: str, world: int, checkpoint_dir: str) -> list[dict]:
    """`launch` under a file lock, its results kept in `shared`: with pytest-xdist, another worker reuses them."""
    import fcntl
    import pickle

    done = shared / f"{name}.pkl"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            run_dir = shared / f"{name}-run"
            run_dir.mkdir(exist_ok=True)
            done.write_bytes(pickle.dumps(launch(world, run_dir, "training", checkpoint_dir)))
    return pickle.loads(done.read_bytes())


@pytest.fixture(scope="module")
def checkpoint_dir(shared_dir):
    path = shared_dir / "distributed-checkpoint"
    path.mkdir(exist_ok=True)
    return str(path)


@pytest.fixture(scope="module")
def world2(shared_dir, checkpoint_dir):
    results = launch_once(shared_dir, "distributed-world2", 2, checkpoint_dir)
    _raise_errors(results)
    return results


@pytest.fixture(scope="module")
def world4(shared_dir, checkpoint_dir, world2):
    # after world2: it loads the checkpoint world2 saved, under another world size
    results = launch_once(shared_dir, "distributed-world4", 4, checkpoint_dir)
    _raise_errors(results)
    return results


def _raise_errors(results):
    for r, res in enumerate(results):
        assert res is not None, f"rank {r} wrote no result"
        assert "error" not in res, f"rank {r}: {res['error']}\n{res.get('traceback')}"


RUNS = [("world2", s) for s in worker.ALL_SCENARIOS] + [("world4", s) for s in worker.WORLD4_SCENARIOS]


@pytest.mark.parametrize("world, scenario", RUNS)
def test_parameters_match_single_process_training(world, scenario, request):
    for rank, res in enumerate(request.getfixturevalue(world)):
        assert res[scenario] < TOLERANCE, f"rank {rank}: parameters differ by {res[scenario]}"


@pytest.mark.parametrize("world, scenario", [("world2", "zero3/micro1"), ("world4", "zero2/micro1")])
def test_fsdp_rank_holds_a_world_fraction_of_parameter_bytes(world, scenario, request):
    results = request.getfixturevalue(world)
    n = len(results)
    for res in results:
        total, held = res["total_param_bytes"], res[f"{scenario}/param_bytes"]
        # padding adds at most n - 1 elements (4 bytes) per parameter tensor
        assert total / n <= held <= total / n + 4 * n * 40, (held, total)


def test_ddp_backward_all_reduces_in_buckets_and_waits_at_the_end(world2):
    collectives = world2[0]["ddp/micro1/collectives"]
    assert collectives["forward"] == []
    backward = collectives["backward"]
    n = backward.count("all_reduce")
    assert n > 1 and backward.count("wait") == n
    assert backward[:n] == ["all_reduce"] * n, backward  # every bucket issued before the first wait


@pytest.mark.parametrize("strategy", ["ddp", "zero2", "zero3"])
def test_no_sync_backward_reduces_nothing(world2, strategy):
    no_sync = world2[0][f"{strategy}/micro2/no_sync_collectives"]["backward"]
    assert "all_reduce" not in no_sync and "reduce_scatter" not in no_sync, no_sync
    synced = world2[0][f"{strategy}/micro2/collectives"]["backward"]
    assert ("all_reduce" if strategy == "ddp" else "reduce_scatter") in synced


@pytest.mark.parametrize("strategy", ["zero2", "zero3"])
def test_fsdp_gathers_in_forward_and_reduce_scatters_in_backward(world2, strategy):
    collectives = world2[0][f"{strategy}/micro1/collectives"]
    n_params = collectives["forward"].count("all_gather")
    assert n_params > 0 and collectives["forward"].count("wait") == n_params
    assert collectives["backward"].count("reduce_scatter") == n_params
    regathered = collectives["backward"].count("all_gather")
    if strategy == "zero2":
        assert regathered == 0
    else:  # the parameters the backward reads (the embedding's backward needs only the indices)
        assert 0 < regathered <= n_params


def test_zero3_saves_less_for_backward_than_zero2(world2):
    assert world2[0]["zero3/micro1/saved_bytes"] < world2[0]["zero2/micro1/saved_bytes"]


def test_checkpoint_saved_under_2_ranks_loads_under_4(world4):
    for res in world4:
        assert res["checkpoint/sharded"] == 0.0
        assert res["checkpoint/full"] == 0.0
        assert res["checkpoint/loss"] < 1e-5


@pytest.mark.parametrize("world", ["world2", "world4"])
def test_every_rank_frees_its_process_group_before_exiting(world, request):
    # a group that outlives destroy_process_group keeps gloo's threads running into interpreter exit, where they can
    # abort the process (see benchmarks.distributed.leave_process_group)
    assert all(res["process_group_freed"] for res in request.getfixturevalue(world))


LEAVE_SCRIPT = """
import os, sys
import torch.distributed as dist
if sys.argv[2] == "before":
    import benchmarks.distributed
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
import benchmarks.distributed  # after init_process_group when sys.argv[2] == "after"
print("freed" if benchmarks.distributed.leave_process_group() else "alive", flush=True)
os._exit(0)  # a group kept alive must not reach interpreter exit: the hazard this detects
"""


@pytest.mark.parametrize("imported, expected", [("before", "freed"), ("after", "alive")])
def test_leave_process_group_says_whether_the_group_outlived_destroy(tmp_path, imported, expected):
    # torch.distributed.nn.functional binds the default group as a default argument when it is imported: imported
    # after init_process_group (as benchmarks.distributed imports it), it keeps the group alive
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", LEAVE_SCRIPT, str(tmp_path / "init"), imported], cwd=repo_root,
                          capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [expected], proc.stdout + proc.stderr


def test_a_rank_that_raises_does_not_hang_the_others(tmp_path):
    results = launch(2, tmp_path, "failing")
    assert "rank 1 fails on purpose" in results[1]["error"]
    assert results[0] is not None and "CollectiveError" in results[0]["error"], results[0]
    assert "Another rank has probably raised or exited" in results[0]["error"]


def test_ddp_without_process_group_says_how_to_start_one():
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        thunder.distributed.ddp(torch.nn.Linear(2, 2))


def test_benchmark_workload_runs_under_torchrun_with_gloo(tmp_path):
    out = tmp_path / "distributed.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "benchmarks",
           "--distributed", "ddp,zero3", "--size", "tiny", "--device", "cpu", "--iters", "1", "--warmup", "0",
           "--json", str(out)]  # fmt: skip
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert GROUP_OUTLIVED_DESTROY not in proc.stderr, proc.stderr
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"ddp", "zero3"}
    for row in rows.values():
        assert row["error"] is None and row["world_size"] == 2 and math.isfinite(row["loss"]) and row["step_time_s"] > 0
    assert rows["zero3"]["param_bytes_per_rank"] < rows["ddp"]["param_bytes_per_rank"]


@pytest.mark.skipif(
    torch.cuda.device_count() < 2 or not dist.is_nccl_available(), reason="needs 2 CUDA devices and NCCL"
)
def test_nccl_on_two_gpus_matches_single_process_training(tmp_path):
    results = launch(2, tmp_path, "training", str(tmp_path / "checkpoint"), backend="nccl")
    _raise_errors(results)
    for rank, res in enumerate(results):
        for scenario in worker.ALL_SCENARIOS:
            # GPU kernels (matmul, attention) round differently from the CPU reference
            assert res[scenario] < 1e-4, f"rank {rank}, {scenario}: parameters differ by {res[scenario]}"
