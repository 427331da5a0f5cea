"""Devices: device strings without an index, 0-d CPU tensors among CUDA tensors, device transfers inside the
jitted function, recurrent modules on CUDA, and the default device (Core-7).

A proxy reports whatever device it is given, CUDA included, on a machine without CUDA: the tests that acquire
traces for CUDA inputs (`_acquire`) check devices and the recorded ops without running anything, so they run
everywhere. The tests that run programs compare with eager on the test device (--device), or need CUDA.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.core.proxies import TensorProxy
from thunder.core.pytree import tree_flatten
from thunder.frontend.tracer import DataDependentError, acquire_trace
from thunder.transforms.autodiff import forward_and_backward

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _current_cuda() -> torch.device:
    """Where torch puts a tensor made with device="cuda": the current device (index 0 on a host without CUDA,
    the index a one-device host would give)."""
    return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)


def _cuda_proxy(name, shape, dtype=torch.float32, device=None, requires_grad=False):
    return TensorProxy(name, shape=shape, dtype=dtype, device=device or _current_cuda(), requires_grad=requires_grad)


@contextmanager
def default_device(device):
    """torch.set_default_device(device) for the block; then the default device as it was (none set, or one)."""
    context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    torch.set_default_device(device)
    try:
        yield
    finally:
        torch.set_default_device(None if context is None else context.device)


def _acquire(fn, *proxies):
    leaves, spec = tree_flatten((proxies, {}))
    trace, _, _ = acquire_trace(fn, leaves, spec)
    return trace


def _prim_calls(trace, name: str) -> list:
    """The bound symbols of `name` at any depth of the trace's decompositions."""
    found, pending = [], list(trace.bound_symbols)
    while pending:
        bsym = pending.pop()
        if bsym.sym.id == name:
            found.append(bsym)
        pending.extend(bsym.subsymbols)
    return found


# -- device strings without an index ---------------------------------------------------------------------------
def test_device_strings_without_an_index_resolve_to_the_current_device():
    def fn(x):
        a = torch.arange(x.shape[0], device="cuda")
        z = torch.zeros(x.shape, device="cuda")
        f = torch.full(x.shape, 2.0, device=torch.device("cuda"))
        e = torch.ones(3, device="cuda").new_zeros(x.shape)
        return x * a + z + f + e + x.to("cuda") + x.cuda()

    trace = _acquire(fn, _cuda_proxy("x", (3,)))
    assert [o.device for o in trace.output] == [_current_cuda()]


def test_the_default_device_resolves_to_the_current_device():
    def fn(x):
        return x + torch.zeros(x.shape) + torch.arange(x.shape[0]) + torch.tensor([1.0, 2.0, 3.0])

    with default_device("cuda"):
        trace = _acquire(fn, _cuda_proxy("x", (3,)))
    assert trace.output[0].device == _current_cuda()
    with torch.device("cuda"):
        trace = _acquire(fn, _cuda_proxy("x", (3,)))
    assert trace.output[0].device == _current_cuda()


def test_a_jitted_function_follows_the_default_device_it_is_called_under():
    jfn = thunder.jit(lambda n: torch.zeros(n) + 1)
    assert jfn(3).device == torch.zeros(3).device
    with torch.device("meta"):
        out, expected = jfn(3), torch.zeros(3) + 1
    assert (out.device, out.shape) == (expected.device, expected.shape)


def _linspace_of_tensor_ends(a, b):
    return torch.linspace(a, b, 7) * 2


def _full_of_a_tensor(x):
    return torch.full((2, 3), x.sum()) + torch.zeros(3)


@pytest.mark.parametrize("fn, make_args", [
    (_linspace_of_tensor_ends, lambda: (torch.tensor(-2.5), torch.tensor(3, dtype=torch.int32))),
    (_full_of_a_tensor, lambda: (torch.randn(4),)),
    (lambda x: torch.where(x > 0, x - x.mean(), 1 - x), lambda: (torch.randn(5),)),
], ids=["linspace", "full", "where"])  # fmt: skip
def test_programs_run_under_a_default_device_context_as_in_eager(fn, make_args):
    # torch.set_default_device keeps a TorchFunctionMode on while symbols run: Python operators that a symbol
    # applies to its tensor arguments (linspace's `end - start`) must still be recorded, not reach torch
    device = torch.get_default_device()
    with default_device(device):
        args = make_args()
        torch.testing.assert_close(thunder.jit(fn)(*args), fn(*args))


# -- 0-d CPU tensors among CUDA tensors --------------------------------------------------------------------------
def test_a_zero_dim_cpu_tensor_with_cuda_tensors_acts_as_a_scalar():
    def inverted_mask(mask):  # Hugging Face's _expand_mask / _prepare_4d_attention_mask
        inverted = torch.tensor(1.0, dtype=mask.dtype) - mask
        return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(mask.dtype).min)

    with default_device(None):  # no default device (under --device cuda the test's is CUDA): torch.tensor on the CPU
        trace = _acquire(inverted_mask, _cuda_proxy("mask", (2, 1, 4, 4)))
    assert trace.output[0].device == _current_cuda()
    moved = _prim_calls(trace, "prims.to_device")
    assert len(moved) == 1 and moved[0].output.device == _current_cuda()


def test_a_zero_dim_cpu_input_with_a_cuda_input_acts_as_a_scalar_in_every_elementwise_family():
    def fn(x, s):
        return (x * s, s - x, torch.where(x > 0, s, x), torch.maximum(x, s), x.clamp(min=s), torch.lerp(x, x, s))

    s = TensorProxy("s", shape=(), dtype=torch.float32, device="cpu")
    trace = _acquire(fn, _cuda_proxy("x", (2, 3)), s)
    assert {o.device for o in trace.output} == {_current_cuda()}


def test_an_operator_without_a_thunder_symbol_puts_its_result_with_the_cuda_operands():
    # torch.special.zeta runs through the meta-kernel fallback; a 0-d CPU operand does not decide its device
    s = TensorProxy("s", shape=(), dtype=torch.float32, device="cpu")
    trace = _acquire(lambda s, x: torch.special.zeta(s, x), s, _cuda_proxy("x", (3,)))
    assert trace.output[0].device == _current_cuda()


def test_a_dimensioned_cpu_tensor_with_a_cuda_tensor_is_an_error_as_in_eager():
    s = TensorProxy("s", shape=(3,), dtype=torch.float32, device="cpu")
    with pytest.raises(RuntimeError, match="devices"):
        _acquire(lambda x, s: x + s, _cuda_proxy("x", (3,)), s)


# -- device transfers ----------------------------------------------------------------------------------------------
def test_moving_a_cpu_tensor_to_the_cuda_device_is_an_op_whose_gradient_goes_back():
    def rotate(x, table):  # GPT-J / CodeGen rotary tables: `self.table.to(x.device)`
        return x * table.to(x.device)

    table = TensorProxy("table", shape=(4,), dtype=torch.float32, device="cpu", requires_grad=True)
    trace = _acquire(rotate, _cuda_proxy("x", (2, 4), requires_grad=True), table)
    assert trace.output[0].device == _current_cuda()
    fwd, bwd = forward_and_backward(trace, ())
    back = _prim_calls(bwd, "prims.to_device")
    assert [b.output.device for b in back] == [torch.device("cpu")]
    grads = [o for o in bwd.output if isinstance(o, torch.Tensor)]
    assert sorted(str(g.device) for g in grads) == sorted(["cpu", str(_current_cuda())])


def test_copy_and_fill_into_a_cuda_tensor_move_the_cpu_source_as_eager_does():
    def fn(x, w, s):
        buffer = torch.zeros(3, device="cuda")
        buffer.copy_(w)  # a CPU tensor copied into a CUDA one
        filled = torch.empty(3, device="cuda").fill_(s)  # filled from a 0-d CPU tensor
        return buffer + x, filled

    w = TensorProxy("w", shape=(3,), dtype=torch.float32, device="cpu")
    s = TensorProxy("s", shape=(), dtype=torch.float32, device="cpu")
    trace = _acquire(fn, _cuda_proxy("x", (3,)), w, s)
    assert [o.device for o in trace.output] == [_current_cuda()] * 2
    assert len(_prim_calls(trace, "prims.to_device")) == 2


def test_an_in_place_op_that_would_move_its_destination_is_an_error():
    def fn(x, y):
        x.add_(y)  # the sum of a 0-d CPU tensor and a CUDA tensor is on CUDA: eager refuses to write it to the CPU
        return x

    x = TensorProxy("x", shape=(), dtype=torch.float32, device="cpu")
    with pytest.raises(RuntimeError, match="destination"):
        _acquire(fn, x, _cuda_proxy("y", ()))


def test_non_blocking_is_recorded_on_the_transfer():
    trace = _acquire(lambda w: w.to("cuda", non_blocking=True), TensorProxy("w", shape=(3,), dtype=torch.float32,
                                                                            device="cpu"))  # fmt: skip
    (move,) = _prim_calls(trace, "prims.to_device")
    assert move.args[2] is True and move.output.device == _current_cuda()


@pytest.mark.parametrize("copy", [False, True])
def test_to_the_same_device_aliases_or_copies_as_eager(copy):
    def fn(x):
        y = x.to(x.device, copy=copy)
        y.add_(1)
        return y * 2

    x = torch.randn(3)
    expected_x = x.clone()
    expected = fn(expected_x)
    out = thunder.jit(fn)(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x, expected_x)


def test_moving_to_the_meta_device_matches_eager():
    def fn(x):
        return x.to("meta", torch.float64) * 2

    x = torch.randn(2, 3)
    out, expected = thunder.jit(fn)(x), fn(x)
    assert (out.device, out.dtype, out.shape) == (expected.device, expected.dtype, expected.shape)


class _CachesTheMovedTable(torch.nn.Module):
    """GPT-J's rotary table: a plain attribute, moved to the input's device in forward and kept there."""

    def __init__(self):
        super().__init__()
        self.table = torch.arange(4.0, device="cpu")

    def forward(self, x):
        table = self.table
        if table.device != x.device:
            table = table.to(x.device)
            self.table = table
        self.scaled = table * 2  # a new plain attribute
        return x * table + self.scaled


def test_a_traced_value_assigned_to_a_module_attribute_does_not_outlive_the_trace():
    model = _CachesTheMovedTable()
    original = model.table
    jmodel = thunder.jit(model)
    x = torch.ones(4, device="meta")
    for _ in range(2):  # the second call runs the cached trace with the module as the first call left it
        out = jmodel(x)
        assert (out.device, out.shape) == (x.device, x.shape)
        assert model.table is original and not hasattr(model, "scaled")


def test_results_stay_eager_when_forward_caches_a_tensor_in_a_module_attribute():
    model = _CachesTheMovedTable()
    jmodel = thunder.jit(model)
    x = torch.randn(4)
    for _ in range(2):
        torch.testing.assert_close(jmodel(x), _CachesTheMovedTable()(x))


# -- recurrent modules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN])
def test_recurrent_modules_trace_for_cuda_weights_that_cudnn_accepts(cls, monkeypatch):
    # On a CUDA host forward() calls flatten_parameters, which reads data_ptr() of cuDNN-acceptable weights;
    # here cuDNN is said to accept them, so that the same path runs without a GPU.
    monkeypatch.setattr(torch.backends.cudnn, "is_acceptable", lambda t: True)
    rnn = cls(4, 5, num_layers=2, batch_first=True)
    names = [name for name, _ in rnn.named_parameters()]

    def fn(x, *params):
        for name, p in zip(names, params):
            rnn._parameters[name] = p
        return rnn(x)[0]

    params = [_cuda_proxy(f"p{i}", tuple(p.shape), requires_grad=True) for i, p in enumerate(rnn.parameters())]
    try:
        trace = _acquire(fn, _cuda_proxy("x", (2, 3, 4)), *params)
    finally:
        rnn._init_flat_weights()
    assert tuple(trace.output[0].shape) == (2, 3, 5) and trace.output[0].device == _current_cuda()


def test_data_ptr_outside_flatten_parameters_still_stops_tracing():
    with pytest.raises(DataDependentError, match="data_ptr"):
        _acquire(lambda x: x + x.data_ptr(), _cuda_proxy("x", (3,)))


@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU])
def test_recurrent_module_forward_and_gradients_match_eager(cls):
    torch.manual_seed(0)
    rnn = cls(4, 6, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(3, 5, 4, requires_grad=True)
    expected = rnn(x)[0]
    expected.sum().backward()
    expected_grads = [p.grad.clone() for p in rnn.parameters()] + [x.grad.clone()]
    rnn.zero_grad()
    x.grad = None
    out = thunder.jit(rnn)(x)[0]
    out.sum().backward()
    torch.testing.assert_close(out, expected)
    for actual, wanted in zip([p.grad for p in rnn.parameters()] + [x.grad], expected_grads):
        torch.testing.assert_close(actual, wanted)


# -- the examples, run on CUDA ---------------------------------------------------------------------------
@needs_cuda
def test_factories_with_device_cuda_run_with_cuda_inputs_as_in_eager():
    def fn(x):
        return x * torch.arange(x.shape[-1], device="cuda") + torch.zeros(x.shape, device="cuda") + x.to("cuda")

    x = torch.randn(2, 4, device="cuda")
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))


@needs_cuda
def test_hugging_face_mask_arithmetic_with_a_cpu_scalar_tensor_runs_on_cuda():
    def fn(mask, scores):
        inverted = torch.tensor(1.0, dtype=mask.dtype) - mask
        return scores + inverted.masked_fill(inverted.to(torch.bool), torch.finfo(mask.dtype).min)

    mask = (torch.rand(2, 1, 4, 4, device="cuda") > 0.5).float()
    scores = torch.randn(2, 3, 4, 4, device="cuda")
    out = thunder.jit(fn)(mask, scores)
    assert out.device == scores.device
    torch.testing.assert_close(out, fn(mask, scores))


class _RotaryOnCpuTable(torch.nn.Module):
    """A module whose table stays on the CPU and moves to the input's device in forward (GPT-J, CodeGen)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8, device="cuda")
        self.table = torch.nn.Parameter(torch.randn(8, device="cpu"))

    def forward(self, x):
        return self.linear(x) * self.table.to(x.device, non_blocking=True)


@needs_cuda
def test_a_cpu_parameter_moved_to_cuda_in_forward_gets_its_gradient_on_the_cpu():
    torch.manual_seed(0)
    model = _RotaryOnCpuTable()
    x = torch.randn(2, 8, device="cuda")
    expected = model(x)
    expected.square().sum().backward()
    expected_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = thunder.jit(model)(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, expected)
    assert model.table.grad.device.type == "cpu"
    for p, wanted in zip(model.parameters(), expected_grads):
        torch.testing.assert_close(p.grad, wanted)


@needs_cuda
@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU])
def test_recurrent_modules_on_cuda_match_eager(cls):
    torch.manual_seed(0)
    rnn = cls(4, 6, num_layers=2, batch_first=True, device="cuda")
    x = torch.randn(3, 5, 4, device="cuda", requires_grad=True)
    expected = rnn(x)[0]
    expected.sum().backward()
    expected_grads = [p.grad.clone() for p in rnn.parameters()] + [x.grad.clone()]
    rnn.zero_grad()
    x.grad = None
    out = thunder.jit(rnn)(x)[0]
    out.sum().backward()
    torch.testing.assert_close(out, expected)
    for actual, wanted in zip([p.grad for p in rnn.parameters()] + [x.grad], expected_grads):
        torch.testing.assert_close(actual, wanted)


@needs_cuda
def test_moving_between_cpu_and_cuda_inside_the_function_matches_eager_with_gradients():
    def fn(x, w):
        return (x.cuda() * w).sum(-1, keepdim=True).cpu() + x

    x = torch.randn(3, 4, requires_grad=True, device="cpu")
    w = torch.randn(4, requires_grad=True, device="cuda")
    expected = fn(x, w)
    expected_grads = torch.autograd.grad(expected.sum(), (x, w))
    out = thunder.jit(fn)(x, w)
    grads = torch.autograd.grad(out.sum(), (x, w))
    assert out.device == expected.device
    torch.testing.assert_close(out, expected)
    for g, e in zip(grads, expected_grads):
        assert g.device == e.device
        torch.testing.assert_close(g, e)


def test_sdpa_style_functions_keep_working_with_cpu_scalars():
    # a float32 0-d CPU tensor scaling a tensor on the test device (a temperature held as a CPU tensor)
    def fn(q, k, temperature):
        return F.softmax(q @ k.transpose(-1, -2) / temperature, dim=-1)

    q, k = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    temperature = torch.tensor(2.0, device="cpu")
    torch.testing.assert_close(thunder.jit(fn)(q, k, temperature), fn(q, k, temperature))
