"""The data-parallel workload: the Llama-style train step under DDP and FSDP, one process per GPU.

    torchrun --nproc-per-node 8 -m benchmarks --distributed ddp,zero2,zero3,eager-ddp --size full

Each strategy is one row: the model (``--size`` preset of benchmarks/models.py, the same on every rank) is
wrapped, jitted, and trained with SGD on a per-rank batch of the preset's batch size. ``step_time_s`` is the
median over ``--iters`` timed steps of the slowest rank's step (forward, backward, optimizer step);
``tokens_per_s`` counts every rank's tokens; ``peak_mem_bytes`` is the largest rank's CUDA high-water mark above
what was allocated before the model was built (None on the CPU). ``eager-ddp`` is
``torch.nn.parallel.DistributedDataParallel`` over the eager model: the baseline of the ratios.

NCCL on CUDA (each rank on GPU LOCAL_RANK), gloo on the CPU (``--device cpu``: the smoke test).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
import traceback
import weakref

import torch
import torch.distributed as dist

# Imported before any process group exists, for its default arguments: torch.distributed.nn.functional binds
# `group=group.WORLD` when it is imported, and torch imports it lazily (the first optimizer imports torch._dynamo,
# which imports it). Imported after init_process_group, it would keep the default group alive past
# destroy_process_group; see `leave_process_group`.
import torch.distributed.nn  # noqa: F401

from benchmarks.harness import DTYPES
from benchmarks.models import Llama, LlamaConfig

STRATEGIES = ("ddp", "zero2", "zero3", "eager-ddp")


def _wrap(strategy: str, model: torch.nn.Module, executors):
    import thunder
    import thunder.distributed as td

    if strategy == "eager-ddp":
        device_ids = [model.output.weight.device.index] if model.output.weight.is_cuda else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if strategy == "ddp":
        return thunder.jit(td.ddp(model), executors=executors)
    fsdp_type = {"zero2": td.FSDPType.ZERO2, "zero3": td.FSDPType.ZERO3}[strategy]
    return thunder.jit(td.fsdp(model, sharding_strategy=fsdp_type), executors=executors)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _slowest(seconds: float, device: torch.device) -> float:
    t = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def run_strategy(strategy: str, size: str, device: torch.device, dtype: torch.dtype, iters: int, warmup: int,
                 executors) -> dict:  # fmt: skip
    """One row: wrap, first step (compilation included), warmup, timed steps."""
    cfg = LlamaConfig.preset(size)
    rank, world = dist.get_rank(), dist.get_world_size()
    row = {"workload": "llama-distributed", "strategy": strategy, "size": size, "world_size": world,
           "device": device.type, "dtype": str(dtype).removeprefix("torch."), "error": None}  # fmt: skip
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        torch.manual_seed(0)
        with device:
            model = Llama(cfg).to(dtype=dtype)
        gen = torch.Generator().manual_seed(1 + rank)  # each rank its own batch
        idx = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len), generator=gen).to(device)
        targets = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len), generator=gen).to(device)
        start = time.perf_counter()
        wrapped = _wrap(strategy, model, executors)
        optimizer = torch.optim.SGD(wrapped.parameters(), lr=1e-3)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = wrapped(idx, targets)
            loss.backward()
            optimizer.step()
            return loss

        step()
        _sync(device)
        row["first_call_s"] = _slowest(time.perf_counter() - start, device)
        for _ in range(warmup):
            step()
        times = []
        for _ in range(iters):
            _sync(device)
            t0 = time.perf_counter()
            loss = step()
            _sync(device)
            times.append(_slowest(time.perf_counter() - t0, device))
        row["step_time_s"] = statistics.median(times)
        row["tokens_per_s"] = world * cfg.batch_size * cfg.max_seq_len / row["step_time_s"]
        row["loss"] = loss.item()
        row["param_bytes_per_rank"] = sum(p.numel() * p.element_size() for p in wrapped.parameters())
        if device.type == "cuda":
            peak = torch.tensor([torch.cuda.max_memory_allocated(device) - base], device=device)
            dist.all_reduce(peak, op=dist.ReduceOp.MAX)
            row["peak_mem_bytes"] = int(peak.item())
        else:
            row["peak_mem_bytes"] = None
    except Exception as e:  # a failing strategy becomes the row's error; the others still run
        row["error"] = f"{type(e).__name__}: {e}"
        row["traceback"] = traceback.format_exc()
    return row


def format_rows(rows: list[dict]) -> str:
    baseline = next((r for r in rows if r["strategy"] == "eager-ddp" and not r["error"]), None)
    lines = [f"{'strategy':<10} {'ranks':>5} {'step ms':>9} {'vs eager-ddp':>12} {'tokens/s':>10} "
             f"{'params/rank MB':>14} {'peak MB':>9} {'first s':>8}"]  # fmt: skip
    for r in rows:
        if r["error"]:
            lines.append(f"{r['strategy']:<10} error: {r['error']}")
            continue
        ratio = f"{r['step_time_s'] / baseline['step_time_s']:.2f}x" if baseline else "-"
        peak = f"{r['peak_mem_bytes'] / 2**20:.1f}" if r["peak_mem_bytes"] is not None else "-"
        lines.append(f"{r['strategy']:<10} {r['world_size']:>5} {r['step_time_s'] * 1e3:>9.2f} {ratio:>12} "
                     f"{r['tokens_per_s']:>10.0f} {r['param_bytes_per_rank'] / 2**20:>14.2f} {peak:>9} "
                     f"{r['first_call_s']:>8.1f}")  # fmt: skip
    return "\n".join(lines)


def main(strategies: list[str], *, size: str, device: str | None, dtype: str | None, iters: int, warmup: int,
         executors, json_path: str | None) -> int:  # fmt: skip
    """Runs under torchrun: every rank runs every strategy; rank 0 prints the table and writes the JSON."""
    if "RANK" not in os.environ:
        raise SystemExit(
            "--distributed runs under torchrun: torchrun --nproc-per-node N -m benchmarks --distributed ..."
        )
    for s in strategies:
        if s not in STRATEGIES:
            raise SystemExit(f"unknown strategy {s!r}; choose from {', '.join(STRATEGIES)}")
    device_type = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        torch_dtype = DTYPES[dtype or ("bfloat16" if dev.type == "cuda" else "float32")]
        rows = [run_strategy(s, size, dev, torch_dtype, iters, warmup, executors) for s in strategies]
        if dist.get_rank() == 0:
            print(format_rows(rows), flush=True)
            if json_path:
                os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
                with open(json_path, "w") as f:
                    json.dump({"rows": rows}, f, indent=1)
        return 1 if any(r["error"] for r in rows) else 0
    finally:
        rank = dist.get_rank()
        if not leave_process_group():
            print(f"rank {rank}: {GROUP_OUTLIVED_DESTROY}", file=sys.stderr, flush=True)


GROUP_OUTLIVED_DESTROY = (
    "the default process group outlived destroy_process_group: something still references it (a module imported "
    "after init_process_group that bound it as a default argument?), so its gloo threads run on into interpreter "
    "exit, where they can abort the process"
)


def leave_process_group() -> bool:
    """Waits for every rank (a barrier), destroys the default process group, and says whether the group object is
    gone, as it must be before the interpreter exits.

    Destroying the group joins its gloo worker threads. A worker releases the work it ran after completing it (the
    barrier's work holds on to the collectives queued before it, with their tensors), and releasing the last
    reference to a tensor that has a Python object takes the GIL. A group that outlives destroy_process_group keeps its workers
    running into interpreter exit; a worker that takes the GIL then is ended by Python inside a C++ destructor,
    and the process aborts ("terminate called without an active exception").
    """
    group = weakref.ref(dist.group.WORLD)
    try:
        dist.barrier()  # no rank tears the group down while a peer's collectives are still in flight
    finally:
        dist.destroy_process_group()
    gc.collect()  # a reference cycle through the group is not a leak
    return group() is None
