"""Output metadata for torch operators whose meta kernel cannot run, so that they still take the fallback path.

A fallback symbol (thunder.torch.fallback) learns an operator's outputs by running it on meta tensors. Some
operators have no meta kernel (`geqrf`, `histogram`, `ctc_loss`), or read tensor values in Python or in a helper
op while checking their arguments (`cov` checks its weights with `aten::equal`, `gaussian_nll_loss` calls
`.item()`), yet their output shapes depend only on the arguments' shapes. For these the table below says the
outputs as meta tensors, computed from the meta arguments; the torch executor still runs the operator itself
(with eager's checks and errors) and autodiff differentiates it through torch's autograd. Each function has
the operator's signature and returns what the operator returns, with meta tensors for tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["HAND_WRITTEN_METAS"]


def _empty(shape, dtype: torch.dtype, strides=None) -> torch.Tensor:
    shape = tuple(shape)
    if strides is None:
        return torch.empty(shape, dtype=dtype, device="meta")
    return torch.empty_strided(shape, tuple(strides), dtype=dtype, device="meta")


def _float_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics of `dtype` values come in: floating and complex stay, integers give the default."""
    return dtype if dtype.is_floating_point or dtype.is_complex else torch.get_default_dtype()


def _covariance_shape(input: torch.Tensor) -> tuple[int, ...]:
    if input.ndim > 2:
        raise ValueError(f"cov(): expected input to have two or fewer dimensions but got an input with {input.ndim}")
    variables = 1 if input.ndim < 2 else input.shape[0]
    return () if variables == 1 else (variables, variables)  # torch squeezes a single variable's 1x1 result


def _cov(input, *, correction=1, fweights=None, aweights=None):
    return _empty(_covariance_shape(input), _float_dtype(input.dtype))


def _corrcoef(input):
    return _empty(_covariance_shape(input), _float_dtype(input.dtype))


def _combinations(input, r=2, with_replacement=False):
    if r == 0:
        return _empty((0,), input.dtype)
    n = input.shape[0]
    count = math.comb(n + r - 1, r) if with_replacement else math.comb(n, r)
    return _empty((count, r), input.dtype)


def _geqrf(input):
    *batch, m, n = input.shape
    # LAPACK's column-major result, as eager returns it: each matrix transposed in memory
    strides = [m * n * math.prod(batch[i + 1 :]) for i in range(len(batch))] + [1, m]
    return _empty(input.shape, input.dtype, strides), _empty((*batch, min(m, n)), input.dtype)


def _histogram(input, bins, *, range=None, weight=None, density=False, out=None):
    if isinstance(bins, torch.Tensor):
        return _empty((bins.shape[0] - 1,), input.dtype), _empty(bins.shape, input.dtype)
    return _empty((bins,), input.dtype), _empty((bins + 1,), input.dtype)


def _histogramdd(input, bins, *, range=None, weight=None, density=False):
    dims = input.shape[-1]
    if isinstance(bins, int):
        counts = [bins] * dims
    else:
        counts = [b.shape[0] - 1 if isinstance(b, torch.Tensor) else b for b in bins]
    return _empty(counts, input.dtype), tuple(_empty((c + 1,), input.dtype) for c in counts)


def _istft(input, n_fft, hop_length=None, win_length=None, window=None, center=True, normalized=False,
           onesided=None, length=None, return_complex=False):  # fmt: skip
    frames = input.shape[-1]
    if length is None:
        length = n_fft + (hop_length or n_fft // 4) * (frames - 1) - (2 * (n_fft // 2) if center else 0)
    dtype = input.dtype if return_complex else input.dtype.to_real()
    return _empty((*input.shape[:-2], length), dtype)


def _ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    batched = log_probs.ndim == 3
    shape = (log_probs.shape[1],) if reduction == "none" and batched else ()
    return _empty(shape, log_probs.dtype)


def _gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    if reduction == "none":
        shape = torch.broadcast_shapes(input.shape, target.shape)
        return _empty(shape, torch.promote_types(input.dtype, target.dtype))
    return _empty((), torch.promote_types(input.dtype, target.dtype))


HAND_WRITTEN_METAS = {
    torch.cov: _cov, torch.corrcoef: _corrcoef, torch.combinations: _combinations, torch.geqrf: _geqrf,
    torch.histogram: _histogram, torch.histogramdd: _histogramdd, torch.istft: _istft, F.ctc_loss: _ctc_loss,
    F.gaussian_nll_loss: _gaussian_nll_loss,
}  # fmt: skip
