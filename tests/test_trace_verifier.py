"""The trace verifier (`thunder.core.verify.verify_trace`): each kind of invalid trace is refused with a message
naming the value and the problem, and the traces `thunder.jit` makes pass it.

The traces below are written by hand from bound symbols of a stand-in symbol, so that each breaks exactly one
rule; the verifier never runs them.
"""

from __future__ import annotations

import pytest
import torch

import thunder
from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol
from thunder.core.trace import TraceCtx
from thunder.core.verify import TraceVerificationError, verify_trace
from thunder.transforms.del_last_used import python_del

op = Symbol("op", id="test.op")


def proxy(name: str, shape=(2, 3), dtype=torch.float32) -> TensorProxy:
    return TensorProxy(name, shape=shape, dtype=dtype, device="cpu")


def trace_of(args: list, bound_symbols: list, output) -> TraceCtx:
    trace = TraceCtx()
    trace.args, trace.bound_symbols, trace.output = args, bound_symbols, output
    trace.provenance = "a hand-written pass"
    return trace


def test_a_valid_trace_passes():
    a, b, c = proxy("a"), proxy("b"), proxy("c")
    trace = trace_of([a], [op.bind(a, output=b), op.bind(b, output=c), python_del.bind("a", "b")], [c])
    verify_trace(trace)


def test_a_use_before_the_definition_is_refused():
    a, b, c = proxy("a"), proxy("b"), proxy("c")
    trace = trace_of([a], [op.bind(b, output=c), op.bind(a, output=b)], [c])
    with pytest.raises(TraceVerificationError, match="a hand-written pass: b is used before it is defined, in op"):
        verify_trace(trace)


def test_a_use_after_del_is_refused():
    a, b = proxy("a"), proxy("b")
    trace = trace_of([a], [python_del.bind("a"), op.bind(a, output=b)], [b])
    with pytest.raises(TraceVerificationError, match="a is used after it was deleted, in op"):
        verify_trace(trace)


def test_returning_a_deleted_value_is_refused():
    a, b = proxy("a"), proxy("b")
    trace = trace_of([a], [op.bind(a, output=b), python_del.bind("b")], [b])
    with pytest.raises(TraceVerificationError, match="b is used after it was deleted, in the return statement"):
        verify_trace(trace)


def test_returning_an_undefined_value_is_refused():
    a, b = proxy("a"), proxy("b")
    trace = trace_of([a], [], [b])
    with pytest.raises(TraceVerificationError, match="b is used before it is defined, in the return statement"):
        verify_trace(trace)


def test_a_second_definition_is_refused():
    a, b = proxy("a"), proxy("b")
    trace = trace_of([a], [op.bind(a, output=b), op.bind(a, output=b)], [b])
    with pytest.raises(TraceVerificationError, match="b is defined twice"):
        verify_trace(trace)


def test_an_input_listed_twice_is_refused():
    a = proxy("a")
    with pytest.raises(TraceVerificationError, match="input a appears twice"):
        verify_trace(trace_of([a, a], [], [a]))


def test_del_of_an_undefined_name_is_refused():
    a = proxy("a")
    with pytest.raises(TraceVerificationError, match="del of undefined x"):
        verify_trace(trace_of([a], [python_del.bind("x")], [a]))


@pytest.mark.parametrize(
    "use, message",
    [
        (proxy("b", shape=(3, 2)), r"b is used as \(\(3, 2\), torch.float32\) but defined as \(\(2, 3\), torch.float32\)"),
        (proxy("b", dtype=torch.float64), r"b is used as \(\(2, 3\), torch.float64\) but defined as"),
    ],
    ids=["shape", "dtype"],
)
def test_a_use_whose_metadata_differs_from_the_definition_is_refused(use, message):
    # another proxy object with the defined name: a pass that rebuilt a value with the wrong metadata
    a, b, c = proxy("a"), proxy("b"), proxy("c")
    trace = trace_of([a], [op.bind(a, output=b), op.bind(use, output=c)], [c])
    with pytest.raises(TraceVerificationError, match=message):
        verify_trace(trace)


def test_a_use_by_an_equal_proxy_object_passes():
    a, b, c = proxy("a"), proxy("b"), proxy("c")
    trace = trace_of([a], [op.bind(a, output=b), op.bind(proxy("b"), output=c)], [c])
    verify_trace(trace)


def test_every_trace_of_a_jitted_training_step_passes(monkeypatch):
    monkeypatch.setenv("THUNDER_DEBUG_VERIFY", "1")
    w = torch.randn(4, 4, requires_grad=True)
    x = torch.randn(3, 4)
    jfn = thunder.jit(lambda x, w: torch.nn.functional.gelu(x @ w).sum())
    jfn(x, w).backward()
    traces = [*thunder.last_traces(jfn), *thunder.last_backward_traces(jfn)]
    assert len(traces) > 4
    for trace in traces:
        verify_trace(trace)
