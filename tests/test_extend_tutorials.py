"""Lightning Thunder's extension tutorials ("Extending Thunder", "Defining new Thunder operators", "Defining
custom forward and backward for existing operators"), run as their users write them.

Every test builds its own executors and runs against a fresh plugin registry (see `fresh_registry`), so no
executor, default-list change or operator leaks into other tests.
"""

from __future__ import annotations

from enum import Enum

import pytest
import torch
import torch.nn.functional as F

import thunder
import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol
from thunder.extend import OperatorExecutor, PluginRegistry, UnknownExecutorError, set_default_registry


@pytest.fixture(autouse=True)
def fresh_registry():
    previous = set_default_registry(PluginRegistry(autoload=False))
    yield
    set_default_registry(previous)


@pytest.fixture
def myex():
    ex = OperatorExecutor("myex", version="0.1")
    thunder.extend.register_executor(ex)
    return ex


class CallCounter:
    """Wraps an implementation and counts the calls that reached it (with real tensors)."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        assert not any(isinstance(a, TensorProxy) for a in args), "the implementation ran on proxies"
        return self.fn(*args, **kwargs)


def my_mul_meta(a, b):
    return TensorProxy(like=a)


@pytest.fixture
def my_mul(myex):
    impl = CallCounter(lambda a, b: a * b)
    sym = myex.register_operator("my_mul", meta=my_mul_meta, fn=impl)
    sym.impl = impl  # the tests read the counter from here
    return sym


def execution_source(jfn) -> str:
    return str(thunder.last_traces(jfn)[-1])


def rand(*shape, dtype=torch.float32, requires_grad=False):
    return torch.randn(*shape, dtype=dtype, requires_grad=requires_grad)


# -- executors --------------------------------------------------------------------------------------------


def test_registered_executor_is_found_by_name(myex):
    assert thunder.extend.get_executor("myex") is myex


def test_deregistered_executor_is_no_longer_found(myex):
    thunder.extend.deregister_executor(myex)
    with pytest.raises(UnknownExecutorError):
        thunder.extend.get_executor("myex")


# -- register_operator(meta=...) ---------------------------------------------------------------------------


def test_operator_with_meta_runs_its_implementation(myex, my_mul):
    a, b = rand(2, 3), rand(2, 3)
    jfn = thunder.jit(lambda a, b: my_mul(a, b), executors=[myex])
    torch.testing.assert_close(jfn(a, b), a * b)
    assert my_mul.impl.calls == 1
    assert "my_mul(a, b)" in execution_source(jfn)


def test_operator_meta_may_return_several_proxies(myex):
    def sincos_meta(inp):
        return (TensorProxy(like=inp), TensorProxy(shape=inp.shape, dtype=inp.dtype, device=inp.device))

    sincos = myex.register_operator("sincos", meta=sincos_meta, fn=lambda x: (torch.sin(x), torch.cos(x)))

    def fun(a, b):
        sin, cos = sincos(a)
        return sin + cos + b

    a, b = rand(3), rand(3)
    jfn = thunder.jit(fun, executors=[myex])
    torch.testing.assert_close(jfn(a, b), torch.sin(a) + torch.cos(a) + b)
    assert "sincos(a)" in execution_source(jfn)


def test_operator_runs_even_when_its_executor_is_not_listed(my_mul):
    a, b = rand(2, 3), rand(2, 3)
    jfn = thunder.jit(lambda a, b: my_mul(a, b) + 1)
    torch.testing.assert_close(jfn(a, b), a * b + 1)
    assert my_mul.impl.calls == 1


def test_operator_called_outside_jit_runs_its_implementation(my_mul):
    a, b = rand(2), rand(2)
    torch.testing.assert_close(my_mul(a, b), a * b)
    assert my_mul.impl.calls == 1


def test_operator_is_recorded_in_the_acquired_trace(myex, my_mul):
    jfn = thunder.jit(lambda a, b: my_mul(a, b), executors=[myex])
    jfn(rand(2), rand(2))
    (bsym,) = thunder.last_traces(jfn)[0].bound_symbols
    assert bsym.sym is my_mul


# -- register_operator(like=...) ---------------------------------------------------------------------------


def multimul_like(a, b, c, d):
    return a * b, c * d


def test_operator_like_a_python_function_runs_its_implementation(myex):
    impl = CallCounter(lambda a, b, c, d: (a * b, c * d))
    multimul = myex.register_operator("multimul", like=multimul_like, fn=impl)
    a, b, c, d = rand(2, 2), rand(2, 2), rand(2, 2), rand(2, 2)  # distinct: a tensor passed twice is one input
    jfn = thunder.jit(lambda a, b, c, d: multimul(a, b, c, d), executors=[myex])
    out = jfn(a, b, c, d)
    torch.testing.assert_close(out, (a * b, c * d))
    assert impl.calls == 1
    assert "multimul(a, b, c, d)" in execution_source(jfn)


def test_operator_like_a_python_function_decomposes_into_its_operations(myex):
    multimul = myex.register_operator("multimul", like=multimul_like, fn=lambda a, b, c, d: (a * b, c * d))
    jfn = thunder.jit(lambda a, b, c, d: multimul(a, b, c, d), executors=[myex])
    jfn(rand(2), rand(2), rand(2), rand(2))
    (bsym,) = thunder.last_traces(jfn)[0].bound_symbols
    assert [sub.sym.id for sub in bsym.subsymbols] == ["ltorch.mul", "ltorch.mul"]


def test_operator_like_a_torch_function_takes_its_signature(myex):
    impl = CallCounter(lambda a, approximate="none": F.gelu(a, approximate=approximate))
    fast_gelu = myex.register_operator("fast_gelu", like=F.gelu, fn=impl)
    x = rand(4)
    jfn = thunder.jit(lambda x: fast_gelu(x, approximate="tanh"), executors=[myex])
    torch.testing.assert_close(jfn(x), F.gelu(x, approximate="tanh"))
    assert impl.calls == 1
    assert thunder.last_traces(jfn)[0].bound_symbols[0].output.shape == x.shape


# -- register_operator(replaces=...) -----------------------------------------------------------------------


@pytest.fixture
def fast_gelu(myex):
    impl = CallCounter(lambda a, approximate="none": F.gelu(a, approximate=approximate))
    sym = myex.register_operator("fast_gelu", like=F.gelu, fn=impl, replaces=F.gelu)
    sym.impl = impl
    return sym


def test_replaced_torch_function_traces_as_the_operator_when_its_executor_is_active(myex, fast_gelu):
    x = rand(5)
    jfn = thunder.jit(lambda x: F.gelu(x) * 2, executors=[myex])
    torch.testing.assert_close(jfn(x), F.gelu(x) * 2)
    assert fast_gelu.impl.calls == 1
    assert "fast_gelu(x)" in execution_source(jfn)


def test_replaced_torch_function_is_untouched_when_its_executor_is_not_active(fast_gelu):
    x = rand(5)
    jfn = thunder.jit(lambda x: F.gelu(x) * 2)
    torch.testing.assert_close(jfn(x), F.gelu(x) * 2)
    assert fast_gelu.impl.calls == 0
    assert "fast_gelu" not in execution_source(jfn)


# -- register_implementation -------------------------------------------------------------------------------


def test_implementation_runs_the_symbol_when_the_checker_accepts(myex, my_mul):
    myex.register_implementation(ltorch.mul, checker=lambda a, b: True, execution_transform=lambda a, b: my_mul(a, b))
    a, b = rand(2, 3), rand(2, 3)
    jfn = thunder.jit(lambda a, b: a * b, executors=[myex])
    torch.testing.assert_close(jfn(a, b), a * b)
    assert my_mul.impl.calls == 1
    assert "my_mul(a, b)" in execution_source(jfn)


def test_implementation_falls_back_to_torch_when_the_checker_rejects(myex, my_mul):
    myex.register_implementation(ltorch.mul, checker=lambda a, b: False, execution_transform=lambda a, b: my_mul(a, b))
    a, b = rand(2, 3), rand(2, 3)
    jfn = thunder.jit(lambda a, b: a * b, executors=[myex])
    torch.testing.assert_close(jfn(a, b), a * b)
    assert my_mul.impl.calls == 0
    assert "torch.mul(a, b)" in execution_source(jfn)


def test_checker_decides_from_the_metadata_of_each_call(myex, my_mul):
    def only_float32_tensors(a, b):
        return all(isinstance(x, TensorProxy) and x.dtype == torch.float32 for x in (a, b))

    myex.register_implementation(ltorch.mul, checker=only_float32_tensors, execution_transform=my_mul)
    jfn = thunder.jit(lambda a, b: (a * b) * 2.0, executors=[myex])
    a, b = rand(3), rand(3)
    torch.testing.assert_close(jfn(a, b), (a * b) * 2.0)
    assert my_mul.impl.calls == 1  # a * b, but not the product with the Python number
    a64, b64 = a.double(), b.double()
    torch.testing.assert_close(jfn(a64, b64), (a64 * b64) * 2.0)
    assert my_mul.impl.calls == 1


def test_implementation_accepts_an_operator_in_place_of_an_execution_transform(myex, my_mul):
    myex.register_implementation(ltorch.mul, my_mul, checker=lambda a, b: isinstance(b, TensorProxy))
    a, b = rand(3), rand(3)
    jfn = thunder.jit(lambda a, b: a * b, executors=[myex])
    torch.testing.assert_close(jfn(a, b), a * b)
    assert my_mul.impl.calls == 1


def test_execution_transform_may_call_torch_operations_around_the_operator(myex, my_mul):
    def mul_to_contiguous_my_mul(a, b):
        return my_mul(a.contiguous(), b.contiguous())

    myex.register_implementation(ltorch.mul, checker=lambda a, b: True, execution_transform=mul_to_contiguous_my_mul)
    a, b = rand(3, 2), rand(3, 2)
    jfn = thunder.jit(lambda a, b: a.t() * b.t(), executors=[myex])
    torch.testing.assert_close(jfn(a, b), a.t() * b.t())
    assert my_mul.impl.calls == 1
    assert "contiguous" in execution_source(jfn)


def test_execution_transform_may_call_an_operator_like_a_python_function(myex):
    impl = CallCounter(lambda a, b, c, d: (a * b, c * d))
    multimul = myex.register_operator("multimul", like=multimul_like, fn=impl)

    def mul_to_multimul(a, b):
        result, _ = multimul(a, b, 0, 0)
        return result

    myex.register_implementation(ltorch.mul, checker=lambda a, b: True, execution_transform=mul_to_multimul)
    a, b = rand(2, 2), rand(2, 2)
    jfn = thunder.jit(lambda a, b: a * b, executors=[myex])
    torch.testing.assert_close(jfn(a, b), a * b)
    assert impl.calls == 1
    assert "multimul(a, b, 0, 0)" in execution_source(jfn)


class CustomOps(Enum):
    sincos2 = 0


def test_symbol_made_by_hand_runs_through_an_executor_implementation(myex):
    sincos2 = Symbol(id=CustomOps.sincos2, name="sincos2", meta=lambda x: (TensorProxy(like=x), TensorProxy(like=x)),
                     is_prim=True)  # fmt: skip
    myex.register_implementation(
        sincos2, checker=lambda a: True, execution_transform=lambda a: (ltorch.sin(a), ltorch.cos(a))
    )

    def fun2(a, b):
        sin, cos = sincos2(a)
        return sin + cos + b

    a, b = rand(3), rand(3)
    jfn = thunder.jit(fun2, executors=[myex])
    torch.testing.assert_close(jfn(a, b), torch.sin(a) + torch.cos(a) + b)
    assert "torch.sin(a)" in execution_source(jfn)


def test_symbol_without_an_implementation_is_reported_by_id():
    orphan = Symbol("orphan", meta=lambda x: TensorProxy(like=x), id="tutorial.orphan", is_prim=True)
    jfn = thunder.jit(lambda x: orphan(x))
    with pytest.raises(NotImplementedError, match="tutorial.orphan"):
        jfn(rand(2))


# -- the default executor list -----------------------------------------------------------------------------


def test_default_executor_applies_without_an_executors_argument(myex, my_mul):
    myex.register_implementation(ltorch.mul, checker=lambda a, b: True, execution_transform=my_mul)
    thunder.add_default_executor(myex)
    assert thunder.get_default_executors()[0] is myex
    a, b = rand(3), rand(3)
    jfn = thunder.jit(lambda a, b: a * b)
    torch.testing.assert_close(jfn(a, b), a * b)
    assert my_mul.impl.calls == 1


def test_removed_default_executor_no_longer_applies(myex, my_mul):
    myex.register_implementation(ltorch.mul, checker=lambda a, b: True, execution_transform=my_mul)
    thunder.add_default_executor(myex)
    thunder.extend.remove_default_executor(myex)
    a, b = rand(3), rand(3)
    jfn = thunder.jit(lambda a, b: a * b)
    torch.testing.assert_close(jfn(a, b), a * b)
    assert my_mul.impl.calls == 0


def test_registered_executor_is_not_a_default_until_added(myex, my_mul):
    myex.register_implementation(ltorch.mul, checker=lambda a, b: True, execution_transform=my_mul)
    assert myex not in thunder.get_default_executors()
    jfn = thunder.jit(lambda a, b: a * b)
    jfn(rand(3), rand(3))
    assert my_mul.impl.calls == 0


# -- grad_transform (these need autodiff: thunder.core.transforms and thunder.transforms.autodiff) -----------


def _grads(fn, *inputs):
    out = fn(*inputs)
    out.backward(torch.ones_like(out))
    return [x.grad for x in inputs]


def _leaves(*shape, n=2):
    return [rand(*shape, requires_grad=True) for _ in range(n)]


def test_grad_transform_replaces_the_rule_of_an_existing_symbol(myex):
    from thunder.core.transforms import get_grad, put_grads

    impl = CallCounter(lambda a, b, c, d: (a * b, c * d))
    multimul = myex.register_operator("multimul", like=multimul_like, fn=impl)

    def mul_to_multimul(a, b):
        result, _ = multimul(a, b, 0, 0)
        return result

    def mymul_grad(a, b):
        fwd = a * b
        g = get_grad(fwd)
        a_grad, b_grad = multimul(b, g, a, g)
        put_grads((a, b), (a_grad, b_grad))
        return fwd

    myex.register_implementation(
        ltorch.mul, checker=lambda a, b: True, execution_transform=mul_to_multimul, grad_transform=mymul_grad
    )
    jfn = thunder.jit(lambda a, b: a * b, executors=[myex])
    a, b = _leaves(2, 2)
    ea, eb = (x.detach().clone().requires_grad_() for x in (a, b))
    for actual, expected in zip(_grads(jfn, a, b), _grads(lambda a, b: a * b, ea, eb)):
        torch.testing.assert_close(actual, expected)
    assert impl.calls == 2  # one in the forward, one (both products at once) in the backward
    assert "multimul(b, cotangent" in str(thunder.last_backward_traces(jfn)[-1])


def test_grad_transform_makes_an_operator_with_meta_differentiable(myex, my_mul):
    from thunder.core.transforms import get_grad, put_grad

    def my_mul_grad(a, b):
        out = my_mul(a, b)
        g = get_grad(out)
        put_grad(a, my_mul(g, b))
        put_grad(b, my_mul(g, a))
        return out

    myex.register_implementation(my_mul, grad_transform=my_mul_grad)
    jfn = thunder.jit(lambda a, b: my_mul(a, b).sum(), executors=[myex])
    a, b = _leaves(3)
    ea, eb = (x.detach().clone().requires_grad_() for x in (a, b))
    for actual, expected in zip(_grads(jfn, a, b), _grads(lambda a, b: (a * b).sum(), ea, eb)):
        torch.testing.assert_close(actual, expected)
    assert my_mul.impl.calls == 3


def test_grad_transform_alone_leaves_the_forward_to_other_executors(myex, my_mul):
    from thunder.core.transforms import get_grad, put_grad

    def mul_grad(a, b):
        out = ltorch.mul(a, b)
        g = get_grad(out)
        put_grad(a, my_mul(g, b))
        put_grad(b, my_mul(g, a))
        return out

    myex.register_implementation(ltorch.mul, checker=lambda a, b: True, grad_transform=mul_grad)
    jfn = thunder.jit(lambda a, b: a * b, executors=[myex])
    a, b = _leaves(3)
    ea, eb = (x.detach().clone().requires_grad_() for x in (a, b))
    for actual, expected in zip(_grads(jfn, a, b), _grads(lambda a, b: a * b, ea, eb)):
        torch.testing.assert_close(actual, expected)
    assert "torch.mul(a, b)" in execution_source(jfn)
    assert my_mul.impl.calls == 2


def test_grad_transform_is_not_needed_by_an_operator_like_a_differentiable_function(myex):
    multimul = myex.register_operator("multimul", like=multimul_like, fn=lambda a, b, c, d: (a * b, c * d))
    jfn = thunder.jit(lambda a, b: sum(multimul(a, b, b, b)), executors=[myex])
    a, b = _leaves(3)
    ea, eb = (x.detach().clone().requires_grad_() for x in (a, b))
    for actual, expected in zip(_grads(jfn, a, b), _grads(lambda a, b: a * b + b * b, ea, eb)):
        torch.testing.assert_close(actual, expected)
