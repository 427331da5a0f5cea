"""The `example` executor: one new operator, `scaled_add(a, b, alpha) = a + alpha * b`, the claims that route
existing Thunder operations to it, a trace pass that finds the pattern in user code, and an option.

* `scaled_add` is registered with a meta function (output metadata from input metadata) and an
  implementation that runs on real tensors, one kernel, with no `alpha * b` temporary. Users may call it
  inside jitted code: `from thunder_example_executor.executor import scaled_add`.
* `torch.add(a, b, alpha=s)` and `torch.sub(a, b, alpha=s)` (the `thunder.torch.add`/`sub` symbols) are claimed
  when the checker accepts their arguments; otherwise the next executor (usually `torch`) runs them.
* A grad transform makes `scaled_add` differentiable (a meta-only operator is opaque to autodiff).
* A trace pass, run before autodiff whenever this executor is in the executor list, rewrites `a + s * b`
  (a multiplication by a number whose result only that addition reads) into `scaled_add(a, b, s)`. The option
  `fuse_mul_add` turns it off: `thunder.jit(fn, executors=["example"], executor_options={"example":
  {"fuse_mul_add": False}})`.

Everything comes from Thunder's public extension API: `thunder.extend`, `thunder.torch`, `thunder.core.trace`.
"""

from __future__ import annotations

from collections import Counter
from numbers import Number

import torch

import thunder.torch as ltorch
from thunder.core.trace import TraceCtx
from thunder.extend import BEFORE_AUTODIFF, ExecutorOption, OperatorExecutor, TensorProxy, get_grad, put_grad

FUSE_MUL_ADD = ExecutorOption("fuse_mul_add", bool, True, "rewrite `a + s * b` in user code into scaled_add")

ex = OperatorExecutor("example", version="0.1.0", options=[FUSE_MUL_ADD])


def _scaled_add_meta(a: TensorProxy, b: TensorProxy, alpha: Number) -> TensorProxy:
    # The checker below only routes equal shapes and dtypes here; a direct call is checked the same way.
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype or a.device != b.device:
        raise ValueError(
            f"scaled_add needs tensors of one shape, dtype and device, got {a.dtype}{list(a.shape)} on {a.device} "
            f"and {b.dtype}{list(b.shape)} on {b.device}"
        )
    return TensorProxy(like=a)


def _scaled_add_impl(a: torch.Tensor, b: torch.Tensor, alpha: Number) -> torch.Tensor:
    return torch.add(a, b, alpha=alpha)


scaled_add = ex.register_operator("scaled_add", meta=_scaled_add_meta, fn=_scaled_add_impl)


def _is_real_scalar(x) -> bool:
    return isinstance(x, Number) and not isinstance(x, (bool, complex))


def _fusable(a, b, alpha) -> bool:
    """Both operands are floating tensors of one shape, dtype and device, and alpha is a real number other than 1."""
    return (
        isinstance(a, TensorProxy)
        and isinstance(b, TensorProxy)
        and tuple(a.shape) == tuple(b.shape)
        and a.dtype == b.dtype
        and a.dtype.is_floating_point
        and a.device == b.device
        and _is_real_scalar(alpha)
        and alpha != 1
    )


def _add_checker(a, b, *, alpha=1) -> bool:
    return _fusable(a, b, alpha)


def _add_to_scaled_add(a, b, *, alpha=1):
    return scaled_add(a, b, alpha)


def _sub_to_scaled_add(a, b, *, alpha=1):
    return scaled_add(a, b, -alpha)


def _scaled_add_grad(a, b, alpha):
    # Forward with the operator itself, then the backward: d/da = g, d/db = alpha * g.
    out = scaled_add(a, b, alpha)
    g = get_grad(out)
    put_grad(a, g)
    put_grad(b, ltorch.mul(g, alpha))
    return out


ex.register_implementation(ltorch.add, checker=_add_checker, execution_transform=_add_to_scaled_add)
ex.register_implementation(ltorch.sub, checker=_add_checker, execution_transform=_sub_to_scaled_add)
ex.register_implementation(scaled_add, grad_transform=_scaled_add_grad)


# -- a trace pass: `a + s * b` -> scaled_add(a, b, s) ------------------------------------------------------


def _scaled_operand(bsym):
    """(tensor, number) when bsym is `ltorch.mul` of a tensor by a real number, else None."""
    if bsym.sym.id != "ltorch.mul" or bsym.kwargs or len(bsym.args) != 2:
        return None
    x, s = bsym.args
    if _is_real_scalar(x):
        x, s = s, x
    return (x, s) if isinstance(x, TensorProxy) and _is_real_scalar(s) else None


def fuse_mul_add(trace: TraceCtx, context) -> TraceCtx:
    """Replaces `t = mul(b, s); out = add(a, t)` by `out = scaled_add(a, b, s)` where only that addition reads t.

    Runs before autodiff, so the gradient comes from scaled_add's grad transform; the unused multiplication is
    left to dead-code elimination, which runs next.
    """
    if not context.options["fuse_mul_add"]:
        return trace
    reads = Counter(p.name for bsym in trace.bound_symbols for p in bsym.flat_args)
    outputs = {getattr(p, "name", None) for p in _leaves(trace.output)}
    scaled = {bsym.output.name: match for bsym in trace.bound_symbols
              if isinstance(bsym.output, TensorProxy) and (match := _scaled_operand(bsym))}  # fmt: skip
    new_bsyms = []
    for bsym in trace.bound_symbols:
        replacement = None
        if bsym.sym.id == "ltorch.add" and not bsym.kwargs and len(bsym.args) == 2:
            for a, t in (bsym.args, bsym.args[::-1]):
                name = getattr(t, "name", None)
                if name in scaled and reads[name] == 1 and name not in outputs and _fusable(a, *scaled[name]):
                    replacement = scaled_add.bind(a, *scaled[name], output=bsym.output)
                    break
        new_bsyms.append(replacement or bsym)
    return trace.from_trace("example: fuse mul add", new_bsyms)


def _leaves(x) -> list:
    """The leaves of a nested tuple/list/dict structure (a trace's output)."""
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    if isinstance(x, dict):
        return [leaf for v in x.values() for leaf in _leaves(v)]
    return [x]


ex.register_pass(fuse_mul_add, stage=BEFORE_AUTODIFF)
