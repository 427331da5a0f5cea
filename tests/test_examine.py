"""`thunder.examine`: the torch operations a program uses, their support, and the comparison with eager."""

from __future__ import annotations

import inspect

import pytest
import torch

import thunder
from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol
from thunder.core.trace import TraceCtx, tracectx
from thunder.examine import ExamineResult, examine, get_fusion_symbols, get_fusions
from thunder.extend import OperatorExecutor, PluginRegistry, set_default_registry

# Thunder has no symbol for this operator (and is unlikely to get one), but torch has a meta kernel for it.
FALLBACK_OP = torch.special.scaled_modified_bessel_k0


@pytest.fixture(autouse=True)
def fresh_registry():
    previous = set_default_registry(PluginRegistry(autoload=False))
    yield
    set_default_registry(previous)


@torch.library.custom_op("thunder_examine_test::twice", mutates_args=())
def twice_without_fake(x: torch.Tensor) -> torch.Tensor:
    """A custom operator without a fake (meta) implementation: Thunder cannot infer its outputs."""
    return x * 2


def line_of(marker: str) -> int:
    """The line of this file that contains `marker` (the call sites examine reports point there)."""
    source = inspect.getsource(inspect.getmodule(line_of)).splitlines()
    return next(i for i, line in enumerate(source, 1) if marker in line and "line_of(" not in line)


def test_examine_counts_the_calls_of_each_torch_operation():
    def fn(x):
        return (x * 2) * 3 + x.sum()

    result = examine(fn, torch.randn(3))
    assert {name: op.calls for name, op in result.operations.items()} == {
        "torch.Tensor.mul": 2,
        "torch.Tensor.sum": 1,
        "torch.Tensor.add": 1,
    }


def test_examine_reports_operations_with_a_thunder_symbol_as_native():
    result = examine(lambda x: torch.exp(x).sum(), torch.randn(3))
    assert result.names("native") == ["torch.Tensor.sum", "torch.exp"]
    assert result.unsupported == [] and result.fallback == []


def test_examine_reports_in_place_operations_the_tracer_functionalizes_as_native():
    def fn(x):
        y = x.clone()
        y.add_(1)
        y[0] = 5.0
        return y

    result = examine(fn, torch.randn(3))
    assert result.operations["torch.Tensor.add_"].support == "native"
    assert result.operations["torch.Tensor.__setitem__"].support == "native"
    assert result.ok


def test_examine_reports_an_operator_without_symbol_as_fallback():
    result = examine(lambda x: FALLBACK_OP(x) + 1, torch.rand(3) + 0.5)
    (name,) = result.fallback
    assert result.operations[name].support == "fallback"
    assert name in result.fallback_ops
    assert result.matches_eager


def test_examine_reports_an_operator_whose_outputs_cannot_be_inferred_as_unsupported():
    def fn(x):
        return torch.ops.thunder_examine_test.twice(x) + 1  # marker: custom op call

    result = examine(fn, torch.randn(3))
    (name,) = result.unsupported
    op = result.operations[name]
    assert "fake impl" in op.detail
    assert op.call_sites == [f"{__file__}:{line_of('marker: custom op call')} (in fn)"]
    assert result.jit_error is not None and result.failed_operation == name


def test_examine_reports_data_dependent_control_flow_with_its_call_site():
    def fn(x):
        if x.sum() > 0:  # marker: data-dependent branch
            return x * 2
        return x

    result = examine(fn, torch.ones(3))
    assert result.unsupported == ["torch.Tensor.__bool__"]
    assert result.failed_at == f"{__file__}:{line_of('marker: data-dependent branch')} (in fn)"
    assert not result.ok


def test_examine_reports_an_executor_replacement_as_executor_support():
    ex = OperatorExecutor("examine_ex")
    ex.register_operator("my_sin", like=torch.sin, fn=torch.sin, replaces=torch.sin)
    thunder.add_default_executor(ex)
    result = examine(lambda x: torch.sin(x), torch.randn(3))
    op = result.operations["torch.sin"]
    assert (op.support, op.detail) == ("executor", "examine_ex")
    assert result.matches_eager


def test_examine_detects_a_result_that_differs_from_eager():
    ex = OperatorExecutor("wrong_ex")
    ex.register_operator("wrong_sin", like=torch.sin, fn=torch.cos, replaces=torch.sin)
    thunder.add_default_executor(ex)
    result = examine(lambda x: torch.sin(x), torch.randn(3))
    assert result.matches_eager is False
    assert "differs from eager" in result.mismatch
    assert not result.ok


def test_examine_confirms_a_result_that_matches_eager():
    result = examine(lambda a, b: (a @ b).softmax(-1), torch.randn(2, 3), torch.randn(3, 4))
    assert result.matches_eager is True and result.ok


def test_examine_accepts_a_module_and_keyword_arguments():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())

    def fn(x, *, scale):
        return model(x) * scale

    result = examine(fn, torch.randn(2, 4), scale=2.0)
    assert result.ok
    assert examine(model, torch.randn(2, 4)).ok


def test_examine_runs_eager_on_copies_so_inputs_are_updated_once():
    def fn(x):
        x.add_(1)
        return x * 2

    x = torch.zeros(3)
    result = examine(fn, x)
    assert result.ok
    torch.testing.assert_close(x, torch.ones(3))  # by the jitted run only


def test_examine_reports_a_program_that_fails_without_thunder():
    def fn(x):
        raise ValueError("the user's own bug")

    result = examine(fn, torch.randn(2))
    assert "the user's own bug" in result.eager_error
    assert result.operations == {} and result.matches_eager is None


def test_examine_prints_its_report(capsys):
    result = examine(lambda x: FALLBACK_OP(x).exp(), torch.rand(3) + 0.5)
    printed = capsys.readouterr().out
    assert printed.strip() == result.report().strip()
    assert "torch.Tensor.exp" in printed and result.fallback[0] in printed
    assert "matches eager" in printed


def test_examine_returns_a_result_for_something_not_callable():
    result = examine(42)
    assert isinstance(result, ExamineResult) and "function or an nn.Module" in result.eager_error


# -- get_fusions ----------------------------------------------------------------------------------------------


def _trace_with_a_fusion() -> tuple[TraceCtx, Symbol]:
    def fused_impl(a, b):
        return torch.exp(a) * b

    fusion = Symbol("ExampleFusion0", meta=lambda a, b: TensorProxy(like=a), is_prim=True,
                    python_impl=fused_impl, tags=("fusion",))  # fmt: skip
    neg = Symbol("neg", meta=lambda a: TensorProxy(like=a), is_prim=True, python_impl=torch.neg)
    trace = TraceCtx()
    with tracectx(trace):
        a = TensorProxy("a", shape=(3,), dtype=torch.float32, device="cpu")
        b = TensorProxy("b", shape=(3,), dtype=torch.float32, device="cpu")
        trace.args = [a, b]
        trace.output = neg(fusion(a, b))
    return trace, fusion


def test_get_fusions_lists_each_fusion_region_with_its_callable():
    trace, fusion = _trace_with_a_fusion()
    [(name, fn)] = get_fusions(trace)
    assert name == "ExampleFusion0"
    a, b = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(fn(a, b), torch.exp(a) * b)


def test_get_fusion_symbols_returns_the_fusion_bound_symbols():
    trace, fusion = _trace_with_a_fusion()
    assert [bsym.sym for bsym in get_fusion_symbols(trace)] == [fusion]


def test_get_fusions_of_an_execution_trace_without_a_fusion_executor_is_empty():
    jfn = thunder.jit(lambda x: x.exp() * 2, executors=["torch"])
    jfn(torch.randn(3))
    assert get_fusions(thunder.last_traces(jfn)[-1]) == []


def test_examine_records_the_paths_the_tracer_takes():
    def fn(x):
        # the shape of Hugging Face's mask creation: a data-dependent shortcut, skipped when compiling
        if not torch.compiler.is_compiling() and bool((x > 0).all()):
            return x * 2
        return torch.where(x > 0, x * 2, x)

    result = examine(fn, torch.ones(3))
    assert result.unsupported == [] and result.matches_eager, result.report()


def test_examine_takes_the_eager_path_where_the_compile_path_fails_as_thunder_jit_does():
    def fn(x):
        if torch.compiler.is_compiling():  # a library's compile-only path with a bug (transformers 4.5x's BART)
            return x + torch.zeros(x.shape[0] + 1)
        return x.exp()

    with pytest.warns(UserWarning, match="traced the path eager takes"):
        result = examine(fn, torch.ones(3))
    assert result.eager_error is None and result.jit_error is None, result.report()
    assert result.matches_eager and set(result.operations) == {"torch.Tensor.exp"}, result.report()  # not the failed run's


# -- names and executors as users know them ------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, name",
    [
        (torch.fft.fft, "torch.fft.fft"),
        (torch.fft.rfft, "torch.fft.rfft"),
        (torch.special.scaled_modified_bessel_k0, "torch.special.scaled_modified_bessel_k0"),
        (torch.linalg.vector_norm, "torch.linalg.vector_norm"),
        (torch.nn.functional.gelu, "torch.nn.functional.gelu"),
    ],
)
def test_examine_names_operations_as_users_write_them(op, name):
    result = examine(lambda x: op(x), torch.rand(4) + 0.5)
    assert list(result.operations) == [name], result.report()
    assert eval(name) is op  # the reported name is the user's spelling of the very same function


def test_examine_reports_a_fallback_property_by_its_name_and_nothing_else():
    # Tensor.real of a complex tensor runs through the fallback; its getter must not appear as a second row.
    result = examine(lambda x: torch.fft.fft(x).real * 2, torch.randn(4))
    assert sorted(result.operations) == ["torch.Tensor.mul", "torch.Tensor.real", "torch.fft.fft"], result.report()
    assert result.fallback_ops == {"torch.Tensor.real", "torch.fft.fft"}
    assert "getset_descriptor" not in result.report()
    assert result.ok


def test_examine_accepts_nan_where_eager_has_nan():
    result = examine(lambda x: torch.log(x), torch.tensor([-1.0, 2.0]))  # log(-1) is NaN, eagerly too
    assert result.matches_eager is True, result.report()


def test_examine_reports_a_nan_that_eager_does_not_produce_as_a_mismatch():
    ex = OperatorExecutor("nan_ex")
    ex.register_operator("nan_exp", like=torch.exp, fn=lambda x: torch.full_like(x, float("nan")), replaces=torch.exp)
    thunder.add_default_executor(ex)
    assert examine(lambda x: torch.exp(x), torch.randn(3)).matches_eager is False


def _claiming_executor(name: str, claims_dtype: torch.dtype) -> OperatorExecutor:
    """An executor that claims `thunder.torch.exp` for tensors of one dtype, as a plugin executor would."""
    import thunder.torch as ltorch

    ex = OperatorExecutor(name)
    own_exp = ex.register_operator(f"{name}_exp", like=torch.exp, fn=torch.exp)
    ex.register_implementation(ltorch.exp, checker=lambda a: a.dtype == claims_dtype, execution_transform=own_exp)
    return ex


def test_examine_names_the_executor_that_claims_an_operation():
    thunder.add_default_executor(_claiming_executor("claim_ex", torch.float32))
    result = examine(lambda x: torch.exp(x) * 2, torch.randn(3))
    exp, mul = result.operations["torch.exp"], result.operations["torch.Tensor.mul"]
    assert (exp.support, exp.detail) == ("executor", "claim_ex"), result.report()
    assert (mul.support, mul.detail) == ("native", "")
    assert "executor (claim_ex)" in result.report()
    assert result.ok


def test_examine_says_when_an_executor_claims_only_some_calls():
    thunder.add_default_executor(_claiming_executor("claim_ex", torch.float64))
    result = examine(lambda x, y: torch.exp(x).double() + torch.exp(y), torch.randn(3), torch.randn(3).double())
    exp = result.operations["torch.exp"]
    assert exp.support == "executor" and exp.detail.startswith("claim_ex for some calls, natively for others")
    assert result.ok


def test_examine_reports_native_when_the_claiming_executor_declines():
    thunder.add_default_executor(_claiming_executor("claim_ex", torch.float64))
    result = examine(lambda x: torch.exp(x), torch.randn(3))  # float32: the checker declines
    assert result.operations["torch.exp"].support == "native"
