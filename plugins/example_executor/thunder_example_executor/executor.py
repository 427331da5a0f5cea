"""The `example` executor: one new operator, `scaled_add(a, b, alpha) = a + alpha * b`, and the claims that
route existing Thunder operations to it.

* `scaled_add` is registered with a meta function (output metadata from input metadata) and an
  implementation that runs on real tensors, one kernel, with no `alpha * b` temporary. Users may call it
  inside jitted code: `from thunder_example_executor.executor import scaled_add`.
* `torch.add(a, b, alpha=s)` and `torch.sub(a, b, alpha=s)` (the `thunder.torch.add`/`sub` symbols) are claimed
  when the checker accepts their arguments; otherwise the next executor (usually `torch`) runs them.
* A grad transform makes `scaled_add` differentiable (a meta-only operator is opaque to autodiff).
"""

from __future__ import annotations

from numbers import Number

import torch

import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.extend import OperatorExecutor

ex = OperatorExecutor("example", version="0.1.0")


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
    from thunder.core.transforms import get_grad, put_grad

    out = scaled_add(a, b, alpha)
    g = get_grad(out)
    put_grad(a, g)
    put_grad(b, ltorch.mul(g, alpha))
    return out


ex.register_implementation(ltorch.add, checker=_add_checker, execution_transform=_add_to_scaled_add)
ex.register_implementation(ltorch.sub, checker=_add_checker, execution_transform=_sub_to_scaled_add)
ex.register_implementation(scaled_add, grad_transform=_scaled_add_grad)
