"""The code each process runs in tests/test_distributed.py (spawned with torch.multiprocessing, gloo backend).

Every rank trains a tiny Llama (benchmarks/models.py) for a few SGD steps under each strategy and compares its
parameters with a single-process eager reference trained on the global batch (all ranks' batches concatenated).
Each rank writes its findings to `<result_dir>/rank<r>.pt`; the tests read them.
"""

from __future__ import annotations

import os
import traceback
from datetime import timedelta

import torch
import torch.distributed as dist

import thunder
import thunder.distributed as td
from benchmarks.distributed import leave_process_group  # imports torch.distributed.nn before any group exists
from benchmarks.models import Llama, LlamaConfig

STEPS = 2
MICRO_STEPS = 2  # micro-batches per optimizer step in the no_sync scenarios
LR = 0.5
CONFIG = dict(vocab_size=64, n_layer=1, dim=16, n_head=4, n_kv_head=2, hidden_dim=24, max_seq_len=8)
LOCAL_BATCH, SEQ = 2, 8
DEVICE = torch.device("cpu")  # of the distributed runs (worker sets cuda:<rank> under NCCL); references run on the CPU


def make_model(seed: int) -> Llama:
    torch.manual_seed(seed)
    return Llama(LlamaConfig.preset("tiny", **CONFIG))


def global_batches(world: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1234)
    return [(torch.randint(0, CONFIG["vocab_size"], (LOCAL_BATCH * world, SEQ), generator=g),
             torch.randint(0, CONFIG["vocab_size"], (LOCAL_BATCH * world, SEQ), generator=g)) for _ in range(n)]  # fmt: skip


def reference_params(world: int, micro_steps: int) -> dict[str, torch.Tensor]:
    """Eager, one process, the global batch; initial weights are rank 0's (what ddp/fsdp broadcast)."""
    model = make_model(seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    batches = global_batches(world, STEPS * micro_steps)
    for step in range(STEPS):
        opt.zero_grad()
        for idx, targets in batches[step * micro_steps : (step + 1) * micro_steps]:
            model(idx, targets).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def wrap(strategy: str, model, *, jit_first: bool):
    if strategy in ("plugin-ddp", "plugin-fsdp"):  # thunder.compile's plugin bundles
        return thunder.compile(model, plugins=strategy.removeprefix("plugin-"))
    wrapper = {
        "ddp": lambda m: td.ddp(m, bucket_size_in_mb=0.002),  # small buckets: several all_reduces
        "zero2": lambda m: td.fsdp(m, sharding_strategy=td.FSDPType.ZERO2),
        "zero3": lambda m: td.fsdp(m, sharding_strategy=td.FSDPType.ZERO3),
    }[strategy]
    return wrapper(thunder.jit(model)) if jit_first else thunder.jit(wrapper(model))


def train(strategy: str, rank: int, world: int, *, micro_steps: int, jit_first: bool):
    # each rank starts from different weights: the wrapper's broadcast must make them equal
    jmodel = wrap(strategy, make_model(seed=rank).to(DEVICE), jit_first=jit_first)
    opt = torch.optim.SGD(jmodel.parameters(), lr=LR)
    batches = global_batches(world, STEPS * micro_steps)
    batches = [(idx.to(DEVICE), targets.to(DEVICE)) for idx, targets in batches]
    local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    no_sync_collectives = None
    for step in range(STEPS):
        opt.zero_grad()
        for micro, (idx, targets) in enumerate(batches[step * micro_steps : (step + 1) * micro_steps]):
            if micro < micro_steps - 1:
                with jmodel.no_sync():
                    jmodel(idx[local], targets[local]).backward()
                no_sync_collectives = no_sync_collectives or trace_collectives(jmodel)
            else:
                jmodel(idx[local], targets[local]).backward()
        opt.step()
    return jmodel, no_sync_collectives


def params_of(strategy: str, jmodel) -> dict[str, torch.Tensor]:
    if strategy in ("ddp", "plugin-ddp"):
        return {k: v.detach().clone() for k, v in jmodel.named_parameters()}
    return {k: v for k, v in td.full_state_dict(jmodel).items() if not k.startswith("rope_")}


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    return max((a[k].cpu() - b[k].cpu()).abs().max().item() for k in a)


def trace_collectives(jmodel) -> dict[str, list[str]]:
    def names(trace):
        return [b.sym.name for b in trace.bound_symbols if b.sym.id.startswith("dist_prims.")]

    return {
        "forward": names(thunder.last_traces(jmodel)[-1]),
        "backward": names(thunder.last_backward_traces(jmodel)[-1]),
    }


ALL_SCENARIOS = [f"{s}/micro{m}" for s in ("ddp", "zero2", "zero3") for m in (1, MICRO_STEPS)] + [
    "plugin-ddp/micro1",
    "plugin-fsdp/micro1",
]
# 4 processes share 2 CPU cores in CI: a subset that still covers each strategy, with and without no_sync
WORLD4_SCENARIOS = ["ddp/micro1", "zero2/micro1", "zero3/micro2"]


def run_training_scenarios(rank: int, world: int, result: dict, checkpoint_dir: str | None) -> None:
    scenarios = ALL_SCENARIOS if world == 2 else WORLD4_SCENARIOS
    references = {m: reference_params(world, m) for m in (1, MICRO_STEPS)}
    trained = {}
    for key in scenarios:
        strategy, micro_steps = key.split("/micro")[0], int(key.split("/micro")[1])
        jit_first = micro_steps == 1  # both wrapping orders are exercised
        jmodel, no_sync_collectives = train(strategy, rank, world, micro_steps=micro_steps, jit_first=jit_first)
        trained[key] = jmodel
        result[key] = max_difference(params_of(strategy, jmodel), references[micro_steps])
        result[f"{key}/collectives"] = trace_collectives(jmodel)
        result[f"{key}/no_sync_collectives"] = no_sync_collectives
        result[f"{key}/saved_bytes"] = thunder.compile_stats(jmodel).saved_for_backward_bytes
        if strategy not in ("ddp", "plugin-ddp"):
            result[f"{key}/param_bytes"] = sum(p.numel() * p.element_size() for p in jmodel.parameters())
    result["total_param_bytes"] = sum(p.numel() * p.element_size() for p in make_model(0).parameters())
    if checkpoint_dir is not None:
        _checkpoint_round_trip(rank, world, result, checkpoint_dir, trained.get("zero3/micro1"))


def _checkpoint_round_trip(rank: int, world: int, result: dict, checkpoint_dir: str, trained) -> None:
    """Saves `trained` (full and sharded) when no checkpoint exists; loads it under this world size otherwise."""
    saved = os.path.join(checkpoint_dir, "full.pt")
    if not os.path.exists(os.path.join(checkpoint_dir, "done")):
        full = td.full_state_dict(trained, rank0_only=True)
        td.save_sharded_checkpoint(trained, os.path.join(checkpoint_dir, "sharded"))
        if rank == 0:
            torch.save(full, saved)
        dist.barrier()
        if rank == 0:
            open(os.path.join(checkpoint_dir, "done"), "w").close()
        result["checkpoint"] = "saved"
        return
    expected = {k: v for k, v in torch.load(saved, weights_only=True).items() if not k.startswith("rope_")}
    from_sharded = thunder.jit(td.fsdp(make_model(seed=100 + rank).to(DEVICE)))
    td.load_sharded_checkpoint(from_sharded, os.path.join(checkpoint_dir, "sharded"))
    from_full = thunder.jit(td.fsdp(make_model(seed=200 + rank).to(DEVICE)))
    from_full.load_state_dict(torch.load(saved, weights_only=True))
    result["checkpoint/sharded"] = max_difference(params_of("zero2", from_sharded), expected)
    result["checkpoint/full"] = max_difference(params_of("zero2", from_full), expected)
    idx = torch.randint(0, CONFIG["vocab_size"], (LOCAL_BATCH, SEQ))
    eager = make_model(seed=0)
    eager.load_state_dict({**eager.state_dict(), **expected})
    result["checkpoint/loss"] = (from_full(idx.to(DEVICE), idx.to(DEVICE)).cpu() - eager(idx, idx)).abs().item()


def run_failing_rank(rank: int, world: int, result: dict) -> None:
    """Rank 1 raises before its backward; the others must fail with a clear error instead of hanging."""
    jmodel = wrap("ddp", make_model(seed=rank), jit_first=False)
    idx = torch.randint(0, CONFIG["vocab_size"], (LOCAL_BATCH, SEQ))
    loss = jmodel(idx, idx)
    if rank == 1:
        raise ValueError("rank 1 fails on purpose")
    loss.backward()


def worker(rank: int, world: int, init_file: str, result_dir: str, scenario: str, checkpoint_dir: str | None,
           backend: str = "gloo"):  # fmt: skip
    global DEVICE
    result: dict = {}
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
            DEVICE = torch.device("cuda", rank)
        dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=60))  # fmt: skip
        if scenario == "training":
            run_training_scenarios(rank, world, result, checkpoint_dir)
        else:
            run_failing_rank(rank, world, result)
        # before the result is written: the group must be gone before this process exits (see leave_process_group)
        result["process_group_freed"] = leave_process_group()
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
    torch.save(result, os.path.join(result_dir, f"rank{rank}.pt"))
