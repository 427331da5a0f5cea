"""The batching rules of sorting, selection, gathering, scattering, indexing, embedding and convolution
(thunder/prims/batching.py), each against torch.func.vmap with random in_dims; and per-example gradients
through them (vmap of grad), which need the rules of their backward primitives too.

Each case is a function of per-example inputs and a maker for each input (indices are drawn valid for the
example's shapes). A seed picks, for every input, whether it is batched and at which dimension; the batched
input stacks one independently drawn example per batch entry at that dimension.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thunder.core.transforms import grad, vmap

DT = torch.float64
BATCH = 4


def _floats(*shape):
    return lambda g: torch.randn(*shape, dtype=DT, generator=g)


def _ints(high, *shape):
    return lambda g: torch.randint(0, high, shape, generator=g)


def _distinct_rows(high, rows, k):
    """Indices without repeats along the last dimension (scatter writes each place once: a defined result)."""
    return lambda g: torch.stack([torch.randperm(high, generator=g)[:k] for _ in range(rows)])


CASES = {
    "sort values": (lambda a: torch.sort(a, dim=1).values, [_floats(3, 5)]),
    "sort descending indices": (lambda a: torch.sort(a, dim=0, descending=True).indices, [_floats(3, 5)]),
    "argsort of a vector": (lambda a: torch.argsort(a), [_floats(6)]),
    "topk": (lambda a: tuple(torch.topk(a, 2, dim=-1)), [_floats(3, 5)]),
    "topk smallest along 0": (lambda a: torch.topk(a, 2, dim=0, largest=False).values, [_floats(4, 3)]),
    "index_select": (lambda a, i: torch.index_select(a, 1, i), [_floats(3, 5), _ints(5, 4)]),
    "gather": (lambda a, i: torch.gather(a, 1, i), [_floats(3, 5), _ints(5, 3, 2)]),
    "take_along_dim": (lambda a, i: torch.take_along_dim(a, i, 0), [_floats(4, 3), _ints(4, 2, 3)]),
    "take": (lambda a, i: torch.take(a, i), [_floats(3, 4), _ints(12, 2, 3)]),
    "scatter": (lambda a, i, s: a.scatter(1, i, s), [_floats(3, 5), _distinct_rows(5, 3, 2), _floats(3, 2)]),
    "scatter_add": (lambda a, i, s: a.scatter_add(0, i, s), [_floats(4, 3), _ints(4, 2, 3), _floats(2, 3)]),
    "index_add": (lambda a, i, s: a.index_add(0, i, s), [_floats(4, 3), _ints(4, 5), _floats(5, 3)]),
    "index_put accumulate": (lambda a, i, v: torch.index_put(a, (i,), v, accumulate=True),
                             [_floats(4, 3), _ints(4, 5), _floats(5, 3)]),
    "advanced index": (lambda a, i: a[i], [_floats(4, 3), _ints(4, 2, 2)]),
    "advanced index after a slice": (lambda a, i: a[:, i], [_floats(3, 4, 2), _ints(4, 5)]),
    "advanced index apart": (lambda a, i, j: a[i, :, j], [_floats(3, 4, 5), _ints(3, 2), _ints(5, 2)]),
    "embedding": (lambda i, w: F.embedding(i, w), [_ints(6, 2, 3), _floats(6, 4)]),
    "conv1d strided": (lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1),
                       [_floats(2, 3, 9), _floats(4, 3, 3), _floats(4)]),
    "conv2d grouped": (lambda x, w: F.conv2d(x, w, groups=2), [_floats(2, 4, 5, 5), _floats(6, 2, 3, 3)]),
    "conv2d unbatched example": (lambda x, w: F.conv2d(x, w, padding=1), [_floats(3, 5, 5), _floats(2, 3, 3, 3)]),
    "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2),
                         [_floats(1, 4, 3, 3), _floats(4, 2, 3, 3), _floats(2)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), [_floats(2, 3, 6, 6)]),
    "cumsum": (lambda a: torch.cumsum(a, 1), [_floats(3, 5)]),
}


def _random_in_dims(makers, seed):
    g = torch.Generator(torch.get_default_device()).manual_seed(seed)
    examples = [make(g) for make in makers]
    dims = []
    for example in examples:
        choice = int(torch.randint(-1, example.ndim + 1, (), generator=g))
        dims.append(None if choice < 0 else choice)
    if all(d is None for d in dims):
        dims[seed % len(dims)] = 0
    args = []
    for make, example, dim in zip(makers, examples, dims):
        args.append(example if dim is None else torch.stack([make(g) for _ in range(BATCH)], dim))
    return tuple(dims), args


def _close(actual, expected):
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            _close(a, e)
    else:
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", CASES)
def test_batching_rule_matches_torch_func_vmap(name, seed):
    fn, makers = CASES[name]
    in_dims, args = _random_in_dims(makers, seed)
    _close(vmap(fn, in_dims=in_dims)(*args), torch.func.vmap(fn, in_dims=in_dims)(*args))


@pytest.mark.parametrize("out_dims", [0, 1])
def test_batched_sort_with_out_dims(out_dims):
    a = torch.randn(3, BATCH, 5, dtype=DT)
    fn = lambda a: torch.sort(a, -1).values  # noqa: E731
    _close(vmap(fn, in_dims=1, out_dims=out_dims)(a), torch.func.vmap(fn, in_dims=1, out_dims=out_dims)(a))


# per-example gradients: vmap(grad(loss)) batches the backward primitives (convolution_backward,
# embedding_backward, scatter_add of index_select's gradient...)
GRAD_CASES = {
    "conv2d": (lambda w, x: F.conv2d(x, w, padding=1).tanh().sum(), _floats(4, 3, 3, 3), _floats(2, 3, 6, 6)),
    "conv_transpose1d": (lambda w, x: F.conv_transpose1d(x, w, stride=2).sin().sum(), _floats(3, 2, 3),
                         _floats(2, 3, 5)),
    "embedding with padding": (lambda w, i: F.embedding(i, w, padding_idx=1).square().sum(), _floats(6, 4),
                               _ints(6, 2, 5)),
    "embedding scaled by frequency": (lambda w, i: F.embedding(i, w, scale_grad_by_freq=True).square().sum(),
                                      _floats(6, 4), _ints(6, 7)),
    "embedding, second power": (lambda w, i: F.embedding(i, w).pow(3).sum(), _floats(6, 4), _ints(6, 2, 3)),
    "index_select": (lambda w, i: torch.index_select(w, 0, i).exp().sum(), _floats(5, 3), _ints(5, 4)),
    "gather": (lambda w, i: torch.gather(w, 1, i).sin().sum(), _floats(3, 5), _ints(5, 3, 4)),
    "sort": (lambda w, x: (torch.sort(w * x, -1).values * torch.arange(5, dtype=DT)).sum(), _floats(5),
             _floats(3, 5)),
    "topk": (lambda w, x: torch.topk(w * x, 2).values.square().sum(), _floats(5), _floats(3, 5)),
}


@pytest.mark.parametrize("batched", ["data", "both"])
@pytest.mark.parametrize("name", GRAD_CASES)
def test_per_example_gradients_match_torch_func(name, batched):
    loss, make_param, make_data = GRAD_CASES[name]
    g = torch.Generator(torch.get_default_device()).manual_seed(0)
    param = make_param(g)
    if batched == "both":  # a parameter per example too (ensembles, meta-learning)
        param = torch.stack([make_param(g) for _ in range(BATCH)])
    data = torch.stack([make_data(g) for _ in range(BATCH)])
    in_dims = (0 if batched == "both" else None, 0)
    _close(vmap(grad(loss), in_dims=in_dims)(param, data),
           torch.func.vmap(torch.func.grad(loss), in_dims=in_dims)(param, data))  # fmt: skip


def test_grad_of_grad_through_a_convolution():
    w, x = torch.randn(2, 3, 3, 3, dtype=DT), torch.randn(1, 3, 5, 5, dtype=DT)

    def loss(w):
        return F.conv2d(x, w).tanh().sum()

    _close(grad(lambda w: grad(loss)(w).square().sum())(w),
           torch.func.grad(lambda w: torch.func.grad(loss)(w).square().sum())(w))  # fmt: skip


def _finite_difference_grad(fn, x, eps=1e-6):
    """The gradient of the scalar fn at x by central differences (float64)."""
    out = torch.zeros_like(x)
    flat, out_flat = x.reshape(-1), out.reshape(-1)
    for k in range(flat.numel()):
        step = torch.zeros_like(flat)
        step[k] = eps
        out_flat[k] = (fn((flat + step).reshape(x.shape)) - fn((flat - step).reshape(x.shape))) / (2 * eps)
    return out


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_grad_of_grad_through_an_embedding(padding_idx):
    table, indices = torch.randn(6, 4, dtype=DT), torch.tensor([0, 1, 1, 3, 2, 5, 3])

    def loss(w):
        return F.embedding(indices, w, padding_idx=padding_idx).sin().sum()

    expected = _finite_difference_grad(lambda w: torch.func.grad(loss)(w).square().sum(), table)
    torch.testing.assert_close(grad(lambda w: grad(loss)(w).square().sum())(table), expected, atol=1e-6, rtol=1e-6)


def test_grad_of_grad_through_an_embedding_scaled_by_frequency():
    # scale_grad_by_freq defines the first gradient (it is not the derivative), so finite differences do not apply,
    # and torch's own second derivative ignores the scaling. The reference writes the first gradient out as
    # torch operations (the scaled embedding lookup, then a sum per row divided by the row's count), and torch's
    # autograd differentiates that.
    table, indices = torch.randn(6, 4, dtype=DT), torch.tensor([0, 1, 1, 3, 1, 5, 3])

    def loss(w):
        return F.embedding(indices, w, scale_grad_by_freq=True).sin().sum()

    def first_gradient_written_out(w):
        per_use = F.embedding(indices, w, scale_grad_by_freq=True).cos()
        counts = torch.zeros(6, dtype=DT).index_add(0, indices, torch.ones(len(indices), dtype=DT)).clamp(min=1)
        return torch.zeros(6, 4, dtype=DT).index_add(0, indices, per_use) / counts[:, None]

    torch.testing.assert_close(first_gradient_written_out(table), torch.func.grad(loss)(table))
    reference = table.clone().requires_grad_()
    first_gradient_written_out(reference).square().sum().backward()
    torch.testing.assert_close(grad(lambda w: grad(loss)(w).square().sum())(table), reference.grad)


@pytest.mark.parametrize("padding_idx", [None, -2])
def test_jitted_embedding_gradient_scaled_by_frequency_matches_eager(padding_idx):
    # regression: the gradient ignored scale_grad_by_freq (the primitive's rule never saw it)
    import thunder

    table, indices = torch.randn(6, 4, dtype=DT), torch.tensor([[0, 1, 1], [3, 1, 4]])

    def loss(w, i):
        return F.embedding(i, w, padding_idx=padding_idx, scale_grad_by_freq=True).square().sum()

    ours, expected = table.clone().requires_grad_(), table.clone().requires_grad_()
    thunder.jit(loss)(ours, indices).backward()
    loss(expected, indices).backward()
    torch.testing.assert_close(ours.grad, expected.grad)
