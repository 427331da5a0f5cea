"""Communication prims on `torch.distributed`: all_reduce, all_gather, reduce_scatter and wait.

Each collective is issued asynchronously and returns a *future* (a `FutureTensorProxy` in the trace, a
`PendingCollective` at run time, holding torch's work handle); `wait(future)` blocks on it and returns the
tensor. Splitting issue from wait is what lets a pass issue a collective as soon as its input exists and wait
for it as late as possible, so communication overlaps computation.

A collective consumes its input buffer: the result is written into it (all_reduce) or the input is only read
until the wait (all_gather, reduce_scatter). The passes that insert these prims give them a fresh buffer.

The process group is an argument (a constant of the trace); None is the default group. The prims execute
themselves (each symbol carries its implementation), so every executor list runs them; the metas and grad
rules sit beside them, here.
"""

from __future__ import annotations

import types
from datetime import timedelta

import torch
import torch.distributed as dist

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES

__all__ = ["FutureTensorProxy", "PendingCollective", "CollectiveError", "all_reduce", "all_gather",
           "reduce_scatter", "wait", "world_size_of"]  # fmt: skip

# the namespace traces print the prims with: `dist_prims.all_reduce(...)` calls the implementation directly
_implementations = types.SimpleNamespace()


class FutureTensorProxy(TensorProxy):
    """The pending result of a collective in a trace: its metadata is the result's; only `wait` may read it."""


class CollectiveError(RuntimeError):
    """A collective failed or timed out, usually because another rank raised or exited."""


class PendingCollective:
    """A collective in flight: torch's work handle, the tensor that holds the result once it is done, and the input
    (referenced until the wait, so the trace freeing its name cannot release memory the collective still reads)."""

    __slots__ = ("work", "result", "input", "what")

    def __init__(self, work, result: torch.Tensor, input: torch.Tensor, what: str):
        self.work, self.result, self.input, self.what = work, result, input, what


def world_size_of(group) -> int:
    return dist.get_world_size(group)


def _make(name: str, meta, impl) -> Symbol:
    sym = Symbol(name, meta, id=f"dist_prims.{name}", is_prim=True, namespace=("dist_prims", _implementations),
                 python_impl=impl, tags=("side_effect", "communication"))  # fmt: skip
    setattr(_implementations, name, impl)
    return sym


def _issue(what: str, fn, result: torch.Tensor, input: torch.Tensor, **kwargs) -> PendingCollective:
    try:
        work = fn(*((input,) if result is input else (result, input)), async_op=True, **kwargs)
    except RuntimeError as e:
        raise _collective_error(what, e) from e
    return PendingCollective(work, result, input, what)


def _collective_error(what: str, e: Exception) -> CollectiveError:
    rank = dist.get_rank() if dist.is_initialized() else "?"
    return CollectiveError(
        f"thunder.distributed: {what} failed on rank {rank}: {e}. Another rank has probably raised or exited; look "
        "at its error first. (Collectives give up after the process group's timeout: "
        "torch.distributed.init_process_group(timeout=...).)"
    )


_REDUCE_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


def _check_op(op: str) -> None:
    if op not in _REDUCE_OPS:
        raise ValueError(f"unknown reduction {op!r}; choose from {sorted(_REDUCE_OPS)}")


# -- all_reduce --------------------------------------------------------------------------------------
def _all_reduce_meta(a, op: str = "sum", group=None):
    _check_op(op)
    return FutureTensorProxy(like=a, requires_grad=False, prefix="fut")


def _all_reduce_impl(a, op: str = "sum", group=None):
    return _issue("all_reduce", dist.all_reduce, a, a, op=_REDUCE_OPS[op], group=group)


all_reduce = _make("all_reduce", _all_reduce_meta, _all_reduce_impl)


# -- all_gather: a 1-D tensor of n elements -> world * n elements, rank r's at [r*n, (r+1)*n) ----------
def _all_gather_meta(a, group=None):
    if a.ndim != 1:
        raise ValueError(f"dist_prims.all_gather gathers 1-D tensors, got shape {tuple(a.shape)}; flatten it first")
    return FutureTensorProxy(like=a, shape=(a.shape[0] * world_size_of(group),), requires_grad=False, prefix="fut")


_all_gather_fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter_fn = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def _all_gather_impl(a, group=None):
    out = torch.empty((a.shape[0] * dist.get_world_size(group),), dtype=a.dtype, device=a.device)
    return _issue("all_gather", _all_gather_fn, out, a.contiguous(), group=group)


all_gather = _make("all_gather", _all_gather_meta, _all_gather_impl)


# -- reduce_scatter: a 1-D tensor of world * n elements -> rank r's n reduced elements -----------------
def _reduce_scatter_meta(a, op: str = "sum", group=None):
    _check_op(op)
    world = world_size_of(group)
    if a.ndim != 1 or a.shape[0] % world:
        raise ValueError(
            f"dist_prims.reduce_scatter needs a 1-D tensor whose length divides by the world size {world}, got shape "
            f"{tuple(a.shape)}; pad it first"
        )
    return FutureTensorProxy(like=a, shape=(a.shape[0] // world,), requires_grad=False, prefix="fut")


def _reduce_scatter_impl(a, op: str = "sum", group=None):
    out = torch.empty((a.shape[0] // dist.get_world_size(group),), dtype=a.dtype, device=a.device)
    return _issue("reduce_scatter", _reduce_scatter_fn, out, a.contiguous(), op=_REDUCE_OPS[op], group=group)


reduce_scatter = _make("reduce_scatter", _reduce_scatter_meta, _reduce_scatter_impl)


# -- wait --------------------------------------------------------------------------------------------
def _wait_meta(future):
    if not isinstance(future, FutureTensorProxy):
        raise TypeError(f"dist_prims.wait takes the future a collective returned, got {future!r}")
    return TensorProxy(like=future, requires_grad=False)


def _wait_impl(future: PendingCollective, timeout: timedelta | None = None):
    try:
        future.work.wait() if timeout is None else future.work.wait(timeout)
    except RuntimeError as e:
        raise _collective_error(future.what, e) from e
    future.input = None
    return future.result


wait = _make("wait", _wait_meta, _wait_impl)


# -- grad rules ----------------------------------------------------------------------------------------
# A collective's gradient is its adjoint collective (for a loss summed over ranks), issued and waited for in the
# backward. all_reduce has none: data parallelism reduces gradients, it does not differentiate through them.
# `wait` passes the cotangent of its result on to the future, whose placeholder the collective's rule reads.
def _all_gather_rule(a, group=None):
    future = all_gather(a, group)
    g = get_grad(future)
    put_grad(a, wait(reduce_scatter(g, "sum", group)))
    return future


def _reduce_scatter_rule(a, op: str = "sum", group=None):
    if op != "sum":
        raise NotImplementedError(f"dist_prims.reduce_scatter has a gradient only for op='sum', not {op!r}")
    future = reduce_scatter(a, op, group)
    g = get_grad(future)
    put_grad(a, wait(all_gather(g, group)))
    return future


def _wait_rule(future):
    out = wait(future)
    put_grad(future, get_grad(out))
    return out


GRAD_RULES[all_gather.id] = _all_gather_rule
GRAD_RULES[reduce_scatter.id] = _reduce_scatter_rule
GRAD_RULES[wait.id] = _wait_rule
