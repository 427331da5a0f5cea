"""A test-only replay of fusion plans with torch operations, standing in for nvFuser on the CPU.

It runs each planned call with the torch function of the same meaning (as nvFuser documents it), so that CPU
tests check what the planner decides (casts, the squeeze before a broadcast, reduction dims, pad widths, which
values are outputs) against torch eager. It says nothing about nvFuser itself: the GPU tests do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from thunder_executors_nvfuser.translation import NV_DTYPES, DType, FusionPlan, Ref

_TORCH_DTYPES = {name: dtype for dtype, name in NV_DTYPES.items()}


def _broadcast_in_dim(x, shape, dims):
    view = [1] * len(shape)
    for i, d in enumerate(dims):
        view[d] = x.shape[i]
    return x.reshape(view).expand(shape)


def _slice(x, start, end, strides):
    return x[tuple(slice(s, e, st) for s, e, st in zip(start, end, strides))]


def _prod(x, dims, keepdim, dtype):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, d, dtype=dtype)
    return x


def _random(fn):
    def draw(lo, hi, shape, *, rng_seed, rng_offset, dtype):
        generator = torch.Generator().manual_seed(int(rng_seed) * 1000003 + int(rng_offset))
        return fn(shape, generator=generator, dtype=dtype) * (hi - lo) + lo

    return draw


_OPS = {
    "cast": lambda x, *, dtype: x.to(dtype),
    "where": torch.where,
    "sum": lambda x, dims, keepdim, dtype: torch.sum(x, dims, keepdim=keepdim, dtype=dtype),
    "prod": _prod,
    "max": lambda x, dims, keepdim: torch.amax(x, dims, keepdim=keepdim),
    "min": lambda x, dims, keepdim: torch.amin(x, dims, keepdim=keepdim),
    "var": lambda x, dims, correction, keepdim: torch.var(x, dims, correction=correction, keepdim=keepdim),
    "squeeze": lambda x, dims: torch.squeeze(x, dims),
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": torch.reshape,
    "permute": torch.permute,
    "slice": _slice,
    "pad": lambda x, widths, value: F.pad(x, widths, value=float(value)),
    "cat": lambda xs, dim: torch.cat(xs, dim),
    "full": lambda shape, value, dtype: torch.full(shape, value.item(), dtype=dtype),
    "iota": lambda n, start, step, dtype: torch.arange(int(start), int(start) + int(n) * int(step), int(step))[: int(n)],
    "uniform": _random(torch.rand),
    "normal": _random(torch.randn),
    "matmul": torch.matmul,
    "linear": F.linear,
    "div": torch.true_divide,
}


def interpret_build(plan: FusionPlan, inputs: list[torch.Tensor]):
    """A `build` for NvFuserExecutor: returns run(tensors, scalars) replaying the plan with torch."""

    def run(tensors, scalars):
        values = list(tensors)
        scalars = iter(scalars)

        def resolve(x):
            if isinstance(x, Ref):
                return values[x.index]
            if isinstance(x, DType):
                return _TORCH_DTYPES[x.name]
            if isinstance(x, tuple):
                return [resolve(v) for v in x]
            return x

        for call in plan.calls:
            args = [resolve(a) for a in call.args]
            kwargs = {k: resolve(v) for k, v in call.kwargs}
            if call.fn == "rng_scalar":
                values.append(next(scalars))
            elif call.fn == "number_input":
                values.append(torch.tensor(next(scalars), dtype=kwargs["dtype"]))
            elif call.fn == "define_scalar":
                values.append(torch.tensor(args[0], dtype=kwargs["dtype"]))
            else:
                fn = _OPS.get(call.fn) or getattr(torch, call.fn)
                values.append(fn(*args, **kwargs))
        return [values[i].contiguous() for i in plan.outputs]

    return run
