"""thunder.extend.checks, the checker building blocks executor packages share, on proxies as checkers see them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thunder.extend import TensorProxy
from thunder.extend.checks import is_real_number, norm_params_fit, normalized_dims, same_device


def proxy(shape, dtype=torch.bfloat16, device="cpu"):
    return TensorProxy(shape=tuple(shape), dtype=dtype, device=torch.device(device))


def accepts_float(t):
    return t.dtype.is_floating_point


def test_same_device_ignores_absent_arguments():
    assert same_device(proxy((2,)), None, proxy((3,)))
    assert not same_device(proxy((2,)), proxy((2,), device="meta"))
    assert same_device()


@pytest.mark.parametrize("value, expected", [(1, True), (0.5, True), (np.float32(2.0), True), (True, False),
                                             (1 + 2j, False), (torch.tensor(1.0), False), ("1", False)])  # fmt: skip
def test_is_real_number(value, expected):
    assert is_real_number(value) is expected


def test_normalized_dims_takes_an_int_or_a_sequence():
    assert normalized_dims(8) == (8,) and normalized_dims([4, 8]) == (4, 8) and normalized_dims(torch.Size([3])) == (3,)


def test_norm_params_fit_on_the_last_dimension():
    x = proxy((2, 5, 8))
    assert norm_params_fit(x, (8,), proxy((8,)), None, accepts=accepts_float)
    assert norm_params_fit(x, 8, accepts=accepts_float)
    assert not norm_params_fit(x, (5, 8), accepts=accepts_float)  # two trailing dims, last-dim kernels only
    assert not norm_params_fit(x, (7,), accepts=accepts_float)  # not the input's last dimension
    assert not norm_params_fit(x, (8,), proxy((8,), torch.float32), accepts=accepts_float)  # another dtype
    assert not norm_params_fit(x, (8,), proxy((4, 2)), accepts=accepts_float)  # another shape
    assert not norm_params_fit(x, (8,), proxy((8,), torch.int64), accepts=lambda t: t.dtype == torch.int64)


def test_norm_params_fit_over_trailing_dimensions():
    x = proxy((2, 5, 8))
    assert norm_params_fit(x, (5, 8), proxy((5, 8)), proxy((5, 8)), accepts=accepts_float, last_dim_only=False)
    assert not norm_params_fit(x, (2, 5, 8, 1), accepts=accepts_float, last_dim_only=False)  # more dims than x
    assert not norm_params_fit(x, (), accepts=accepts_float, last_dim_only=False)
    assert not norm_params_fit(x, (2, 8), accepts=accepts_float, last_dim_only=False)
