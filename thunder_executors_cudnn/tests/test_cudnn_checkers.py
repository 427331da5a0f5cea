"""What the checkers claim, decided on proxies' metadata alone (no GPU needed): everything they decline is left
to the next executor (`sdpa`, then the decomposition)."""

from __future__ import annotations

import pytest
import torch

from thunder.core.proxies import TensorProxy
from thunder.core.trace import TraceCtx, tracectx
from thunder_executors_cudnn import checkers

BF16, F16, F32 = torch.bfloat16, torch.float16, torch.float32


@pytest.fixture(autouse=True)
def hopper(monkeypatch):
    """Proxies on "cuda" behave as on an H100 with cuDNN 9.10, whatever this machine has."""
    monkeypatch.setattr(checkers, "device_capability", lambda device: (9, 0) if device.type == "cuda" else (0, 0))
    monkeypatch.setattr(checkers, "cudnn_backend_version", lambda: 91000)
    with tracectx(TraceCtx()):
        yield


def proxy(*shape, dtype=BF16, device="cuda", requires_grad=False):
    return TensorProxy(shape=shape, dtype=dtype, device=torch.device(device), requires_grad=requires_grad)


def qkv(b=2, h=4, s=128, d=64, *, h_kv=None, s_kv=None, d_v=None, dtype=BF16, device="cuda"):
    h_kv, s_kv, d_v = h_kv or h, s_kv or s, d_v or d
    return (proxy(b, h, s, d, dtype=dtype, device=device), proxy(b, h_kv, s_kv, d, dtype=dtype, device=device),
            proxy(b, h_kv, s_kv, d_v, dtype=dtype, device=device))  # fmt: skip


@pytest.mark.parametrize("dtype", [BF16, F16], ids=str)
@pytest.mark.parametrize("head", [8, 64, 128, 192, 256])
def test_half_precision_attention_on_cuda_is_claimed(dtype, head):
    assert checkers.sdpa_checker(*qkv(d=head, dtype=dtype))
    assert checkers.sdpa_checker(*qkv(d=head, dtype=dtype), is_causal=True, scale=0.3, dropout_p=0.1)


@pytest.mark.parametrize("dtype", [F32, torch.float64], ids=str)
def test_full_precision_is_left_to_sdpa(dtype):
    assert not checkers.sdpa_checker(*qkv(dtype=dtype))


def test_cpu_tensors_are_left_to_sdpa():
    assert not checkers.sdpa_checker(*qkv(device="cpu"))


def test_mixed_dtypes_or_devices_are_declined():
    q, k, v = qkv()
    assert not checkers.sdpa_checker(q, proxy(*k.shape, dtype=F16), v)
    assert not checkers.sdpa_checker(q, k, proxy(*v.shape, device="cpu"))


@pytest.mark.parametrize("head", [4, 12, 136, 264, 512])
def test_head_sizes_cudnn_does_not_take_are_declined(head):
    assert not checkers.sdpa_checker(*qkv(d=head))
    assert not checkers.sdpa_checker(*qkv(d=64, d_v=head))


def test_head_sizes_above_128_need_hopper_and_cudnn_9_5(monkeypatch):
    monkeypatch.setattr(checkers, "cudnn_backend_version", lambda: 90400)
    assert checkers.sdpa_checker(*qkv(d=128)) and not checkers.sdpa_checker(*qkv(d=256))
    monkeypatch.setattr(checkers, "cudnn_backend_version", lambda: 90500)
    monkeypatch.setattr(checkers, "device_capability", lambda device: (8, 0))
    assert not checkers.sdpa_checker(*qkv(d=256))


def test_gpus_older_than_ampere_are_declined(monkeypatch):
    monkeypatch.setattr(checkers, "device_capability", lambda device: (7, 5))
    assert not checkers.sdpa_checker(*qkv())


def test_grouped_query_attention_is_claimed_with_enable_gqa_and_dividing_heads():
    assert checkers.sdpa_checker(*qkv(h=8, h_kv=2), enable_gqa=True)
    assert checkers.sdpa_checker(*qkv(h=8, h_kv=1), enable_gqa=True)
    assert not checkers.sdpa_checker(*qkv(h=8, h_kv=2))  # eager raises without enable_gqa: left to raise there
    assert not checkers.sdpa_checker(*qkv(h=8, h_kv=3), enable_gqa=True)


def test_different_query_and_key_lengths_are_claimed():
    assert checkers.sdpa_checker(*qkv(s=64, s_kv=256), is_causal=True)


def test_non_4d_inputs_and_empty_tensors_are_declined():
    q, k, v = proxy(4, 128, 64), proxy(4, 128, 64), proxy(4, 128, 64)
    assert not checkers.sdpa_checker(q, k, v)
    assert not checkers.sdpa_checker(*qkv(s=0))


@pytest.mark.parametrize("shape", [(128, 128), (1, 1, 128, 128), (2, 1, 128, 128), (2, 4, 128, 128), (2, 1, 1, 128),
                                   (128,), (4, 128, 128)])  # fmt: skip
@pytest.mark.parametrize("dtype", [torch.bool, BF16], ids=str)
def test_boolean_and_additive_masks_that_broadcast_are_claimed(shape, dtype):
    assert checkers.sdpa_checker(*qkv(), attn_mask=proxy(*shape, dtype=dtype))


def test_masks_that_do_not_fit_are_declined():
    q, k, v = qkv()
    assert not checkers.sdpa_checker(q, k, v, attn_mask=proxy(128, 128, dtype=F32))  # not the query's dtype
    assert not checkers.sdpa_checker(q, k, v, attn_mask=proxy(3, 4, 128, 128, dtype=torch.bool))  # batch 3 vs 2
    assert not checkers.sdpa_checker(q, k, v, attn_mask=proxy(1, 2, 4, 128, 128, dtype=torch.bool))  # 5-d
    assert not checkers.sdpa_checker(q, k, v, attn_mask=proxy(128, 128, dtype=torch.bool, device="cpu"))
    q, k, v = qkv(s=100)  # rows of 100 keys: not 16-byte aligned in the bias
    assert not checkers.sdpa_checker(q, k, v, attn_mask=proxy(100, 100, dtype=torch.bool))
    assert checkers.sdpa_checker(q, k, v)
    # a mask with is_causal is an error in eager: left to the decomposition, which raises it
    assert not checkers.sdpa_checker(q, k, v, attn_mask=proxy(128, 128, dtype=torch.bool), is_causal=True)


def test_a_mask_that_requires_grad_runs_forward_on_cudnn_but_is_differentiated_elsewhere():
    q, k, v = qkv()
    mask = proxy(128, 128, dtype=BF16, requires_grad=True)
    assert checkers.sdpa_checker(q, k, v, attn_mask=mask)
    assert not checkers.sdpa_grad_checker(q, k, v, attn_mask=mask)
    assert checkers.sdpa_grad_checker(q, k, v, attn_mask=proxy(128, 128, dtype=BF16))


@pytest.mark.parametrize("dropout_p", [-0.1, 1.0, 1.5])
def test_dropout_probabilities_outside_0_1_are_declined(dropout_p):
    assert not checkers.sdpa_checker(*qkv(), dropout_p=dropout_p)


def test_layer_norm_over_the_last_dimension_is_claimed():
    x, w, b = proxy(4, 16, 256), proxy(256), proxy(256)
    assert checkers.layer_norm_checker(x, (256,), w, b, 1e-5)
    assert checkers.layer_norm_checker(x, 256)
    assert checkers.layer_norm_checker(proxy(4, 256, dtype=F32), (256,), proxy(256, dtype=F32), None)
    assert not checkers.layer_norm_checker(x, (16, 256))  # over two dimensions
    assert not checkers.layer_norm_checker(x, (256,), proxy(256, dtype=F32), b)  # weight of another dtype
    assert not checkers.layer_norm_checker(proxy(4, 256, device="cpu"), (256,))
    assert not checkers.layer_norm_checker(proxy(4, 256, dtype=torch.float64), (256,))


def test_rms_norm_over_the_last_dimension_is_claimed():
    x, w = proxy(4, 16, 256), proxy(256)
    assert checkers.rms_norm_checker(x, (256,), w, 1e-6)
    assert checkers.rms_norm_checker(x, (256,), None, None)
    assert not checkers.rms_norm_checker(x, (256,), proxy(128))
    assert not checkers.rms_norm_checker(proxy(4, 256, device="cpu"), (256,), None)
