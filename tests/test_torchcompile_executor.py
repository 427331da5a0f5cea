"""The torchcompile executor: regions compiled with TorchInductor match eager, identical regions compile once,
the torch executor's own aten kernels (autodiff's layer_norm, gelu, cross-entropy...) compile inside the
regions, and what must stay outside a compiled region (random draws, writes into inputs, other executors'
kernels) does; number inputs join a region where torch computes with them as with 0-d tensors, and are read on
each call.

Inductor's first compilation in a process is slow (seconds; a cold cache on a new machine builds its
precompiled headers): the tests share a handful of small regions, and several reuse the same one.
"""

from __future__ import annotations

import pytest
import torch
import torch._inductor.config
import torch.nn.functional as F

import thunder
import thunder.torch as ltorch
from thunder.core.proxies import FloatProxy, TensorProxy
from thunder.core.trace import TraceCtx, tracectx
from thunder.executors import torchcompileex
from thunder.executors.torchex import ex as torchex
from thunder.extend import OperatorExecutor, get_executor


@pytest.fixture(autouse=True, scope="module")
def one_compile_thread():
    # Two cores: a pool of compile workers costs more to start than it saves on tiny regions.
    with torch._inductor.config.patch(compile_threads=1):
        yield


def fusions(trace):
    return [b for b in trace.bound_symbols if "fusion" in b.sym.tags]


def mixed_ops(x, w, b):
    h = F.layer_norm(F.linear(x, w, b), (4,))
    values, indices = torch.topk(torch.softmax(h, -1), 2, dim=-1)
    z = F.gelu(torch.cat([values, indices.to(values.dtype)], dim=-1)) + torch.ones(3, 4)
    z = torch.where(z > 0.5, z, 0.5 * z)
    return z[1:, :2], z.sum(dim=0, dtype=torch.float64)


def mixed_ops_args():
    return torch.randn(3, 5), torch.randn(4, 5), torch.randn(4)


def assert_mixed_ops_match(actual, expected):
    # the float64 sum adds float32 values, which Inductor's fused code may round differently from eager's in
    # the last bit: float32's tolerances apply to it too (float64's fail about one input in twenty)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1.3e-6, atol=1e-5)


def test_a_compiled_region_matches_eager():
    jf = thunder.jit(mixed_ops, executors=["torchcompile"])
    args = mixed_ops_args()
    assert_mixed_ops_match(jf(*args), mixed_ops(*args))
    (fusion,) = fusions(thunder.last_traces(jf)[-1])
    assert fusion.sym.name == "TorchCompile0" and len(fusion.subsymbols) > 5


def test_the_executor_object_with_the_always_executors_works_like_its_name():
    executors = [get_executor("torchcompile"), *thunder.get_always_executors()]
    jf = thunder.jit(mixed_ops, executors=executors)
    args = mixed_ops_args()
    assert_mixed_ops_match(jf(*args), mixed_ops(*args))
    assert len(fusions(thunder.last_traces(jf)[-1])) == 1


def test_torchcompile_is_opt_in():
    assert "torchcompile" not in [ex.name for ex in thunder.get_default_executors()]
    assert get_executor("torchcompile") is torchcompileex.ex


def test_a_region_is_compiled_once_for_every_function_that_contains_it():
    args = mixed_ops_args()
    thunder.jit(mixed_ops, executors=["torchcompile"])(*args)
    before = torchcompileex.ex.compilations
    thunder.jit(mixed_ops, executors=["torchcompile"])(*args)
    assert torchcompileex.ex.compilations == before


def test_later_calls_go_straight_to_the_compiled_code():
    jf = thunder.jit(mixed_ops, executors=["torchcompile"])
    jf(*mixed_ops_args())
    jf(*mixed_ops_args())
    (fusion,) = fusions(thunder.last_traces(jf)[-1])
    namespace = jf._cache[next(iter(jf._cache))][0].forward.__globals__
    assert namespace[fusion.sym.name] is fusion.sym.python_impl.fn


def test_progress_names_each_region(capsys):
    jf = thunder.jit(mixed_ops, executors=["torchcompile"], show_progress=True)
    jf(*mixed_ops_args())
    assert "torchcompile: compiling fusion region 1 of 1" in capsys.readouterr().out


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(7))

    def forward(self, x):
        return torch.tanh(torch.cumsum(x, -1)) * self.weight + x


def test_identical_blocks_compile_once():
    # cumsum, claimed by an executor listed first, separates the blocks into one region each
    barrier = OperatorExecutor("cumsum_barrier")
    cumsum = barrier.register_operator("cumsum", meta=lambda a, dim: TensorProxy(like=a), fn=torch.cumsum)
    barrier.register_implementation(ltorch.cumsum, op=cumsum, checker=lambda a, dim, dtype=None: dtype is None)
    model = torch.nn.Sequential(Block(), Block(), Block())
    jmodel = thunder.jit(model, executors=[barrier, "torchcompile"])
    x = torch.randn(2, 7)
    before = torchcompileex.ex.compilations
    with torch.no_grad():
        torch.testing.assert_close(jmodel(x), model(x))
    regions = fusions(thunder.last_traces(jmodel)[-1])
    assert len(regions) == 3
    assert torchcompileex.ex.compilations - before == 1


def test_random_draws_stay_outside_the_region_and_match_eager():
    def f(x):
        return F.dropout(x, 0.5) * 2 + 1

    x = torch.randn(4, 4)
    torch.manual_seed(0)
    expected = f(x)
    jf = thunder.jit(f, executors=["torchcompile"])
    torch.manual_seed(0)
    assert torch.equal(jf(x), expected)
    trace = thunder.last_traces(jf)[-1]
    (fusion,) = fusions(trace)
    assert not any("random" in b.sym.tags for b in fusion.subsymbols)


def test_writes_into_inputs_stay_outside_the_region():
    def f(x, y):
        x.mul_(2)
        return x + y

    x, y = torch.randn(4, 4), torch.randn(4, 4)
    x_eager = x.clone()
    expected = f(x_eager, y)
    torch.testing.assert_close(thunder.jit(f, executors=["torchcompile"])(x, y), expected)
    torch.testing.assert_close(x, x_eager)


def test_a_region_inductor_cannot_compile_runs_on_the_torch_executor(monkeypatch):
    def failing_compile(gm, example_inputs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch._inductor, "compile", failing_compile)
    jf = thunder.jit(lambda x: (x * 3).exp(), executors=["torchcompile"])
    x = torch.randn(3, 11)  # a shape no other test compiles: the failure is cached with it
    with pytest.warns(torchcompileex.TorchCompileWarning, match="no compiler here"):
        torch.testing.assert_close(jf(x), (x * 3).exp())


def test_the_torch_executors_own_kernels_compile_inside_the_regions():
    # layer_norm, gelu and cross_entropy differentiate through aten kernels the torch executor registers as
    # operators (torchex_grads.py): Inductor fuses them with their neighbours, forward and backward
    def loss_of(x, w, b, target):
        return F.cross_entropy(F.gelu(F.layer_norm(x, (6,), w, b), approximate="tanh"), target)

    inputs = [torch.randn(*shape, requires_grad=True) for shape in ((4, 6), (6,), (6,))]
    target = torch.tensor([0, 5, 2, 1])
    jf = thunder.jit(loss_of, executors=["torchcompile"])
    loss = jf(*inputs, target)
    loss.backward()
    grads = [t.grad for t in inputs]
    for t in inputs:
        t.grad = None
    expected = loss_of(*inputs, target)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for actual, t in zip(grads, inputs):
        torch.testing.assert_close(actual, t.grad)
    for trace in (thunder.last_traces(jf)[-1], thunder.last_backward_traces(jf)[-1]):
        assert len(fusions(trace)) == 1
        assert [b.sym.id for b in trace.bound_symbols if b.sym.id.startswith("torch.")] == []


class AttentionBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(8, 24)
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, 2, C // 2).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + torch.tanh(self.proj(y.transpose(1, 2).reshape(B, T, C)))


def test_attention_kernels_stay_between_regions_and_the_blocks_between_them_compile_once():
    model = torch.nn.Sequential(AttentionBlock(), AttentionBlock(), AttentionBlock())
    jmodel = thunder.jit(model, executors=["torchcompile", "sdpa"])
    x = torch.randn(2, 5, 8)
    before = torchcompileex.ex.compilations
    torch.testing.assert_close(jmodel(x), model(x))  # the forward only: its regions compile now
    trace = thunder.last_traces(jmodel)[-1]
    # the attention kernel sdpa picks depends on the device (CPU flash, CUDA flash or memory-efficient)
    calls = ["fusion" if "fusion" in b.sym.tags else "attention" for b in trace.bound_symbols
             if "fusion" in b.sym.tags or b.sym.id.startswith("sdpa.")]  # fmt: skip
    assert calls == ["fusion", "attention"] * 3 + ["fusion"]
    # the first block's projections, then twice the same program (one block's end, the next one's start), then
    # the last block's end
    assert torchcompileex.ex.compilations - before == 3


def test_a_number_proxy_is_fused_only_where_torch_computes_with_it_as_with_a_0d_tensor():
    with tracectx(TraceCtx()):
        x = TensorProxy(shape=(2, 3), dtype=torch.float32, device="cpu")
        ints = TensorProxy(shape=(2, 3), dtype=torch.int64, device="cpu")
        eps = FloatProxy("eps", value=1e-5)
        scaled = ltorch.mul.bind(x, eps, output=TensorProxy(like=x))
        # eager: an integer tensor times a float is a float32 tensor; times a float64 0-d tensor, a float64 one
        promoted = ltorch.mul.bind(ints, eps, output=TensorProxy(like=x))
        with_alpha = ltorch.add.bind(x, x, alpha=eps, output=TensorProxy(like=x))  # alpha takes no tensor
        layer_norm = torchex.implmap["torch.native_layer_norm"].symbol
        stats = TensorProxy(like=x, shape=(2, 1))
        normalized = layer_norm.bind(x, [3], None, None, eps, output=(TensorProxy(like=x), stats, stats))
    assert torchcompileex.ex.can_fuse(scaled)
    assert not torchcompileex.ex.can_fuse(promoted)
    assert not torchcompileex.ex.can_fuse(with_alpha)
    assert not torchcompileex.ex.can_fuse(normalized)


def scaled_tanh(x, s, k):
    return torch.tanh(x * s) + s, torch.arange(6).view(2, 3) * k + x.to(torch.int64)


def test_number_inputs_are_read_on_each_call_and_compile_once():
    # Inductor given a Python number bakes its value into the kernel: a new value would reuse the old one
    jf = thunder.jit(scaled_tanh, executors=["torchcompile"], cache="symbolic values")
    x = torch.randn(2, 3) * 4
    jf(x, 0.5, 2)
    before = torchcompileex.ex.compilations
    for s, k in ((0.25, 3), (-3.0, -1), (7.5, 0)):
        for actual, expected in zip(jf(x, s, k), scaled_tanh(x, s, k), strict=True):
            assert actual.dtype == expected.dtype
            torch.testing.assert_close(actual, expected)
    assert torchcompileex.ex.compilations == before and thunder.cache_misses(jf) == 1
    regions = fusions(thunder.last_traces(jf)[-1])
    assert {type(p).__name__ for r in regions for p in r.flat_args} >= {"FloatProxy", "IntegerProxy"}


def test_a_float_number_times_an_integer_tensor_keeps_eagers_dtype():
    def f(ints, s):
        return ints * s + 1

    jf = thunder.jit(f, executors=["torchcompile"], cache="symbolic values")
    ints = torch.arange(6).view(2, 3)
    for s in (0.5, 1.25):
        actual, expected = jf(ints, s), f(ints, s)
        assert actual.dtype == expected.dtype == torch.float32
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("mm_first", [True, False], ids=["mm-plus-alpha-b", "b-plus-alpha-mm"])
def test_add_with_alpha_of_a_matmul_matches_eager(mm_first):
    # Inductor's mm + b -> addmm rewrite drops alpha (torch 2.13); SGD's weight decay of a linear layer's gradient
    # computed in the same region is this pattern: `grad.add(param, alpha=weight_decay)`
    def f(g, x, w):
        return torch.add(g @ x, w, alpha=0.01) if mm_first else torch.add(w, g @ x, alpha=-0.5)

    args = torch.randn(4, 3), torch.randn(3, 8), torch.randn(4, 8)
    jf = thunder.jit(f, executors=["torchcompile"])
    torch.testing.assert_close(jf(*args), f(*args))
    assert len(fusions(thunder.last_traces(jf)[-1])) == 1
