"""thunder.grad / vjp / jvp / vmap against torch.func, alone and composed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.core.transforms import grad, jvp, vjp, vmap

DT = torch.float64


def _rand(*shape, generator=None):
    return torch.randn(*shape, dtype=DT, generator=generator)


def _f(x, w):
    return torch.tanh(x @ w).sin().sum()


def _close(actual, expected):
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            _close(a, e)
    else:
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("argnums", [0, 1, (0, 1)])
def test_grad_matches_torch_func(argnums):
    x, w = _rand(3, 4), _rand(4, 5)
    _close(grad(_f, argnums=argnums)(x, w), torch.func.grad(_f, argnums=argnums)(x, w))


def test_grad_is_one_printable_trace():
    x, w = _rand(3, 4), _rand(4, 5)
    g = grad(_f)
    g(x, w)
    program = thunder.last_traces(g)[-1]
    # the forward and the backward in one program (a fusion executor, nvFuser on CUDA, holds some inside fusions)
    names, pending = [], list(program.bound_symbols)
    while pending:
        bsym = pending.pop()
        names.append(str(bsym.sym.name))
        pending.extend(bsym.subsymbols)
    assert any("matmul" in n for n in names) and any("cos" in n for n in names)


def test_grad_of_grad_second_derivative():
    x, w = _rand(3, 4), _rand(4, 5)
    ours = grad(lambda x: grad(_f)(x, w).sum())(x)
    expected = torch.func.grad(lambda x: torch.func.grad(_f)(x, w).sum())(x)
    _close(ours, expected)


def test_vjp_matches_torch_func():
    x, w = _rand(3, 4), _rand(4, 5)

    def h(x):
        return torch.tanh(x @ w).exp(), x.sum(0)

    out, fn = vjp(h, x)
    e_out, e_fn = torch.func.vjp(h, x)
    cts = (_rand(3, 5), _rand(4))
    _close(out, e_out)
    _close(fn(*cts), e_fn(cts))


def test_jvp_matches_torch_func():
    x, w, t = _rand(3, 4), _rand(4, 5), _rand(3, 4)

    def h(x):
        return torch.sigmoid(x @ w) * x.sum()

    _close(jvp(h, (x,), (t,)), torch.func.jvp(h, (x,), (t,)))


def test_jvp_of_grad_hessian_vector_product():
    x, w, t = _rand(3, 4), _rand(4, 5), _rand(3, 4)
    ours = jvp(grad(lambda x: _f(x, w)), (x,), (t,))
    expected = torch.func.jvp(torch.func.grad(lambda x: _f(x, w)), (x,), (t,))
    _close(ours, expected)


def _mlp_loss(w1, b1, w2, x, y):
    h = F.linear(x, w1, b1).relu()
    return ((F.linear(h, w2).squeeze(-1) - y) ** 2).mean()


def test_per_example_gradients_of_mlp():
    g = torch.Generator(torch.get_default_device()).manual_seed(0)
    params = (_rand(16, 3, generator=g), _rand(16, generator=g), _rand(1, 16, generator=g))
    x, y = _rand(10, 3, generator=g), _rand(10, generator=g)
    in_dims = (None, None, None, 0, 0)
    per_example = vmap(grad(_mlp_loss, argnums=(0, 1, 2)), in_dims=in_dims)
    ours = per_example(*params, x, y)
    expected = torch.func.vmap(torch.func.grad(_mlp_loss, argnums=(0, 1, 2)), in_dims=in_dims)(*params, x, y)
    _close(ours, expected)
    assert ours[0].shape == (10, 16, 3)


def test_transforms_inside_jit():
    x, w = _rand(6, 4), _rand(4, 5)

    def fn(x, w):
        return vmap(grad(_f), in_dims=(0, None))(x.unsqueeze(1), w) * 2

    expected = torch.func.vmap(torch.func.grad(_f), in_dims=(0, None))(x.unsqueeze(1), w) * 2
    _close(thunder.jit(fn)(x, w), expected)


def test_vmap_in_and_out_dims():
    def f(a, b):
        return (a.sin() @ b).sum(0), a.cos()

    a, b = _rand(5, 3, 4), _rand(4, 2, 5)
    ours = vmap(f, in_dims=(0, 2), out_dims=(1, 0))(a, b)
    _close(ours, torch.func.vmap(f, in_dims=(0, 2), out_dims=(1, 0))(a, b))


def test_vmap_of_vmap():
    def f(a, b):
        return (a * b).sum()

    a, b = _rand(3, 4, 5), _rand(4, 5)
    ours = vmap(vmap(f, in_dims=(0, 0)), in_dims=(0, None))(a, b)
    _close(ours, torch.func.vmap(torch.func.vmap(f, in_dims=(0, 0)), in_dims=(0, None))(a, b))


def test_vmap_missing_rule_names_the_operator():
    from thunder.extend import OperatorExecutor, TensorProxy

    # an executor's operator with no decomposition and no batching rule
    opaque = OperatorExecutor("vmap_rule_test").register_operator(
        "opaque_double", meta=lambda a: TensorProxy(like=a), fn=lambda a: a * 2)  # fmt: skip
    with pytest.raises(NotImplementedError, match=r"no batching rule for the operator \S*opaque_double"):
        vmap(lambda a: opaque(a))(_rand(3, 5))


def test_in_place_writes_are_refused():
    def f(x, stats):
        stats.add_(x)
        return x * 2

    stats = torch.zeros(4, dtype=DT)
    with pytest.raises(NotImplementedError, match="writes to a tensor in place"):
        vmap(f, in_dims=(0, None))(_rand(3, 4), stats)
    with pytest.raises(NotImplementedError, match="writes to a tensor in place"):
        grad(lambda x: f(x, stats).sum())(_rand(4))
    assert not stats.any()  # nothing the caller owns was written


def test_vmap_mismatched_sizes_error():
    with pytest.raises(ValueError, match="one size"):
        vmap(torch.add)(_rand(3, 2), _rand(4, 2))


def test_grad_needs_a_scalar():
    with pytest.raises(RuntimeError, match="single element"):
        grad(lambda x: x * 2)(_rand(3))


# ops with batching rules (directly or through their decomposition into prims with rules)
UNARY = [torch.sin, torch.exp, torch.tanh, torch.sigmoid, torch.abs, torch.neg, torch.sqrt, torch.relu,
         lambda a: a.sum(-1), lambda a: a.amax(0), lambda a: a.mean((0, 1)), lambda a: a.var(1),
         lambda a: a.cumsum(1), lambda a: a.argmax(1), lambda a: a.transpose(0, 1), lambda a: a.reshape(-1),
         lambda a: a[1:, ::2], lambda a: a.flip(0), lambda a: F.pad(a, (1, 2)), lambda a: a.unsqueeze(1).squeeze(1),
         lambda a: torch.cat([a, a.exp()], 1), lambda a: a.expand(2, *a.shape), lambda a: F.softmax(a, -1),
         lambda a: a.to(torch.float32), lambda a: torch.where(a > 0, a, 0.5 * a)]  # fmt: skip
BINARY = [torch.add, torch.mul, torch.sub, torch.div, torch.maximum, torch.atan2, torch.pow,
          lambda a, b: a @ b.transpose(0, 1), lambda a, b: (a.sum(0) @ b.transpose(0, 1)),
          lambda a, b: F.linear(a, b), lambda a, b: torch.cat([a, b], 0)]  # fmt: skip


def _batched(t, dim, size, g):
    shape = list(t.shape)
    shape.insert(dim, size)
    return torch.randn(*shape, dtype=DT, generator=g).abs() + 0.1


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("op", UNARY, ids=lambda o: getattr(o, "__name__", "lambda"))
def test_unary_ops_random_in_dims(op, seed):
    g = torch.Generator(torch.get_default_device()).manual_seed(seed)
    dim = int(torch.randint(0, 3, (), generator=g))
    a = _batched(torch.empty(3, 4), dim, 5, g)
    _close(vmap(op, in_dims=dim)(a), torch.func.vmap(op, in_dims=dim)(a))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("op", BINARY, ids=lambda o: getattr(o, "__name__", "lambda"))
def test_binary_ops_random_in_dims(op, seed):
    g = torch.Generator(torch.get_default_device()).manual_seed(seed)
    dims = [int(d) for d in torch.randint(-1, 3, (2,), generator=g)]
    dims = [None if d < 0 else d for d in dims]
    if dims == [None, None]:
        dims[seed % 2] = 0
    args = [torch.rand(3, 4, dtype=DT, generator=g) + 0.1 if d is None else _batched(torch.empty(3, 4), d, 5, g)
            for d in dims]  # fmt: skip
    _close(vmap(op, in_dims=tuple(dims))(*args), torch.func.vmap(op, in_dims=tuple(dims))(*args))


def test_grad_of_vmap():
    w = _rand(4, 5)

    def f(x):
        return vmap(lambda r: torch.tanh(r @ w).sum())(x).square().sum()

    def f_ref(x):
        return torch.func.vmap(lambda r: torch.tanh(r @ w).sum())(x).square().sum()

    x = _rand(3, 4)
    _close(grad(f)(x), torch.func.grad(f_ref)(x))


def test_vmap_of_jvp():
    w = _rand(4, 5)

    def h(x):
        return torch.sin(x @ w)

    x, t = _rand(6, 4), _rand(6, 4)
    ours = vmap(lambda x, t: jvp(h, (x,), (t,)))(x, t)
    expected = torch.func.vmap(lambda x, t: torch.func.jvp(h, (x,), (t,)))(x, t)
    _close(ours, expected)


def test_gradient_penalty_backward_through_jit():
    # a loss built from a gradient, differentiated again by thunder.jit's autodiff and torch autograd
    w = _rand(4, 5)
    x = _rand(3, 4).requires_grad_()
    loss = thunder.jit(lambda x: grad(lambda x: _f(x, w))(x).square().sum())(x)
    loss.backward()
    x_ref = x.detach().clone().requires_grad_()
    expected = torch.func.grad(lambda x: _f(x, w))(x_ref).square().sum()
    expected.backward()
    _close(loss, expected)
    _close(x.grad, x_ref.grad)
