"""The sdpa and torchcompile executors claim only what their kernels support on the inputs' device
(Core-7 item 5). The CUDA checker tests run anywhere: they build proxies that report a CUDA device (no CUDA
needed) and set the device's compute capability; the end-to-end tests at the bottom need a GPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.executors import sdpaex
from thunder.extend import TensorProxy

H100 = (9, 0)


def _proxy(shape, dtype, device="cuda:0", requires_grad=False):
    return TensorProxy(shape=shape, dtype=dtype, device=torch.device(device), requires_grad=requires_grad)


@pytest.fixture
def capability(monkeypatch):
    """Sets the compute capability the checkers see for every CUDA device."""

    def set_capability(value):
        monkeypatch.setattr(sdpaex, "_capability", lambda device: value)

    set_capability(H100)
    return set_capability


def _qkv(dtype, head=64, kv_heads=4, device="cuda:0", v_head=None):
    return (_proxy((2, 4, 16, head), dtype, device), _proxy((2, kv_heads, 16, head), dtype, device),
            _proxy((2, kv_heads, 16, v_head or head), dtype, device))  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_cuda_attention_in_a_kernel_dtype_is_claimed(capability, dtype):
    assert sdpaex._checker(*_qkv(dtype))
    assert sdpaex._grad_checker(*_qkv(dtype))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex64])
def test_cuda_attention_in_float64_or_complex_is_left_to_the_next_executor(capability, dtype):
    assert not sdpaex._checker(*_qkv(dtype))
    assert not sdpaex._grad_checker(*_qkv(dtype))


def test_cpu_attention_in_float64_is_claimed_by_the_cpu_kernel():
    assert sdpaex._checker(*_qkv(torch.float64, device="cpu"))


@pytest.mark.parametrize("head", [12, 300])
def test_cuda_half_attention_with_an_unsupported_head_size_is_left_to_the_next_executor(capability, head):
    # flash and memory-efficient want a multiple of 8 in half precision, and at most 256
    assert not sdpaex._checker(*_qkv(torch.float16, head=head))


def test_cuda_attention_with_different_value_head_size_or_grouped_heads_is_left(capability):
    assert not sdpaex._checker(*_qkv(torch.float16, v_head=32))
    assert not sdpaex._checker(*_qkv(torch.float16, kv_heads=2))


def test_bfloat16_needs_compute_capability_8(capability):
    capability((7, 5))
    assert not sdpaex._checker(*_qkv(torch.bfloat16))
    assert sdpaex._checker(*_qkv(torch.float16))  # memory-efficient runs float16 on sm75


def test_flash_kernel_is_chosen_only_without_a_mask(capability):
    q, k, v = _qkv(torch.bfloat16)
    assert sdpaex._kernel(q, k, v, None) == "flash"
    mask = _proxy((16, 16), torch.bool)
    assert sdpaex._kernel(q, k, v, mask) == "efficient"
    assert not sdpaex._checker(q, k, v, _proxy((1, 1, 1, 16, 16), torch.bool))  # a 5-d mask: no kernel takes it


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_cuda_attention_matches_eager_forward_and_backward(dtype):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 64, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))

    def attention(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    jfn = thunder.jit(attention, executors=["sdpa"])
    out = jfn(q, k, v)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    expected = attention(q, k, v)
    tolerance = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(out, expected, **tolerance)
    for g, e in zip(grads, torch.autograd.grad(expected.sum(), (q, k, v))):
        torch.testing.assert_close(g, e, **tolerance)
    claimed = any(b.sym.id.startswith("sdpa.") for b in thunder.last_traces(jfn)[-1].bound_symbols)
    assert claimed == (dtype != torch.float64)


# -- torchcompile: Inductor generates code only for what Triton (CUDA) or its C++ backend (CPU) supports ----


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int64, torch.bool])
def test_torchcompile_fuses_real_dtypes_on_a_triton_capable_gpu(monkeypatch, dtype):
    from thunder.executors import torchcompileex

    monkeypatch.setattr(torchcompileex, "_cuda_capability", lambda device: H100)
    assert torchcompileex.inductor_compiles(dtype, torch.device("cuda:0"))
    assert torchcompileex.inductor_compiles(dtype, torch.device("cpu"))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.float8_e4m3fn])
def test_torchcompile_leaves_complex_and_float8_to_the_torch_executor(monkeypatch, dtype):
    from thunder.executors import torchcompileex

    monkeypatch.setattr(torchcompileex, "_cuda_capability", lambda device: H100)
    assert not torchcompileex.inductor_compiles(dtype, torch.device("cuda:0"))


def test_torchcompile_leaves_gpus_older_than_triton_supports(monkeypatch):
    from thunder.executors import torchcompileex

    monkeypatch.setattr(torchcompileex, "_cuda_capability", lambda device: (6, 1))
    assert not torchcompileex.inductor_compiles(torch.float32, torch.device("cuda:0"))
