"""Helpers shared by the tests (a plain module: the repository's own tests/conftest.py owns the name `conftest`)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HAS_GPU = torch.cuda.is_available() and importlib.util.find_spec("cudnn") is not None
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs CUDA and cudnn-frontend")
DEVICE = "cuda" if HAS_GPU else "cpu"


def installed() -> bool:
    """Whether the distribution is installed (its entry point is then visible to Thunder's plugin discovery)."""
    try:
        importlib.metadata.distribution("thunder-executors-cudnn")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_install = pytest.mark.skipif(not installed(), reason="needs the package installed: pip install --no-deps "
                                   "--no-build-isolation -e thunder_executors_cudnn")  # fmt: skip


def float32_leaves(*tensors):
    """Float32 copies of the tensors, as leaves requiring grad where the originals do (None stays None)."""
    out = []
    for t in tensors:
        if t is None or not t.is_floating_point():
            out.append(t)
        else:
            out.append(t.detach().float().requires_grad_(t.requires_grad))
    return out


def math_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """The reference: PyTorch's math attention (no fused kernel), on whatever dtype it is given."""
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                                              scale=scale, enable_gqa=enable_gqa)  # fmt: skip


def assert_close_scaled(actual, expected, tol: float) -> None:
    """Equal within `tol` relative to the largest entry of the reference (half-precision sums of many terms differ
    in order from a float32 reference by a fraction of the largest term, not of each element)."""
    scale = expected.detach().abs().max().clamp_min(1e-6)
    torch.testing.assert_close(actual.detach().float() / scale, expected.detach().float() / scale, atol=tol, rtol=0)


def half_tolerance(dtype: torch.dtype) -> float:
    return 2e-2 if dtype == torch.float16 else 4e-2


@contextlib.contextmanager
def no_fallback():
    """Fails if, inside, cuDNN refused a graph and PyTorch stood in (a CudnnFallbackWarning)."""
    from thunder_executors_cudnn.fallback import CudnnFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, CudnnFallbackWarning)]
    assert not fallbacks, fallbacks
