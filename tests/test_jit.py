"""thunder.jit on functions and modules: results vs eager, caching and recompilation, pytrees, printing."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import thunder
from thunder.frontend.jit import CompilePathFallbackWarning
from thunder.frontend.tracer import DataDependentError


def test_hello_world_matches_eager():
    jf = thunder.jit(lambda a, b: a + b)
    a, b = torch.full((2, 2), 1), torch.full((2, 2), 3)
    assert torch.equal(jf(a, b), a + b)


def test_cache_hits_and_misses_follow_input_metadata():
    jf = thunder.jit(lambda a: a * 2)
    jf(torch.randn(2, 3))
    jf(torch.randn(2, 3))
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (1, 1)
    jf(torch.randn(3, 3))  # new shape
    jf(torch.randn(2, 3, dtype=torch.float64))  # new dtype
    jf(torch.randn(2, 3).t())  # new strides
    jf(torch.randn(2, 3, requires_grad=True))  # new requires_grad
    assert thunder.cache_misses(jf) == 5


def test_python_scalars_are_constants_in_the_key():
    jf = thunder.jit(lambda a, s: a * s)
    x = torch.randn(3)
    assert torch.equal(jf(x, 2.0), x * 2.0)
    assert torch.equal(jf(x, 3.0), x * 3.0)
    assert thunder.cache_misses(jf) == 2


def test_scalar_arguments_key_by_type_and_value():
    jf = thunder.jit(lambda a, s, flag, none: a * s if flag and none is None else a)
    x = torch.randn(3)
    jf(x, 2, True, None)
    jf(x, 2.0, True, None)  # 2 == 2.0, but an int and a float promote differently
    jf(x, 2, False, None)
    assert thunder.cache_misses(jf) == 3
    assert torch.equal(jf(x, 2, True, None), x * 2) and thunder.cache_hits(jf) == 1


def test_grad_mode_is_part_of_the_key():
    jf = thunder.jit(lambda a: a.sin())
    x = torch.randn(3, requires_grad=True)
    jf(x)
    with torch.no_grad():
        out = jf(x)
    assert not out.requires_grad
    assert thunder.cache_misses(jf) == 2


def test_no_caching_recompiles_every_call():
    jf = thunder.jit(lambda a: a + 1, cache="no caching")
    jf(torch.randn(2))
    jf(torch.randn(2))
    assert thunder.cache_misses(jf) == 2 and thunder.cache_option(jf) == "no caching"


def test_same_input_skips_checks():
    jf = thunder.jit(lambda a: a + 1, cache="same input")
    x = torch.randn(2)
    jf(x)
    assert torch.equal(jf(x), x + 1)
    assert thunder.cache_hits(jf) == 1


def test_unknown_cache_option_lists_valid_ones():
    with pytest.raises(ValueError, match="constant values"):
        thunder.jit(lambda a: a, cache="sometimes")


def test_unknown_jit_option_is_an_error():
    with pytest.raises(TypeError, match="unknown options"):
        thunder.jit(lambda a: a, not_an_option=True)


def test_unknown_executor_name_is_an_error():
    with pytest.raises(KeyError, match="torch"):
        thunder.jit(lambda a: a, executors=["no_such_executor"])


def test_nested_inputs_and_outputs_round_trip():
    def fn(xs, d, *, scale):
        return {"sum": xs[0] + xs[1], "pair": (d["a"] * scale, [d["b"].exp()])}

    jf = thunder.jit(fn)
    xs = [torch.randn(2), torch.randn(2)]
    d = {"a": torch.randn(3), "b": torch.randn(1)}
    out, ref = jf(xs, d, scale=2.0), fn(xs, d, scale=2.0)
    assert set(out) == {"sum", "pair"}
    torch.testing.assert_close(out["sum"], ref["sum"])
    torch.testing.assert_close(out["pair"][0], ref["pair"][0])
    torch.testing.assert_close(out["pair"][1][0], ref["pair"][1][0])


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


def test_dataclass_outputs_keep_their_type():
    jf = thunder.jit(lambda x: Output(logits=x * 2, loss=x.sum()))
    x = torch.randn(3)
    out = jf(x)
    assert isinstance(out, Output)
    torch.testing.assert_close(out.loss, x.sum())


class _Pair:
    """A Python object holding tensors, registered with torch's pytree, as torch.export asks of such inputs."""

    def __init__(self, first, second):
        self.first, self.second = first, second


torch.utils._pytree.register_pytree_node(
    _Pair,
    lambda pair: ([pair.first, pair.second], {"fields": ["first", "second"]}),  # an unhashable context
    lambda values, context: _Pair(*values),
)


def test_objects_registered_with_torch_pytree_are_inputs_and_outputs():
    jf = thunder.jit(lambda pair, x: _Pair(pair.first + x, pair.second * x))
    out = jf(_Pair(torch.ones(2), torch.full((2,), 2.0)), torch.full((2,), 3.0))
    assert isinstance(out, _Pair)
    torch.testing.assert_close((out.first, out.second), (torch.full((2,), 4.0), torch.full((2,), 6.0)))
    out = jf(_Pair(torch.zeros(2), torch.ones(2)), torch.ones(2))  # new values, same metadata: a cache hit
    torch.testing.assert_close((out.first, out.second), (torch.ones(2), torch.ones(2)))
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (1, 1)


def test_globals_and_closures_are_read_as_constants():
    weight = torch.randn(3)

    def fn(x):
        return x * weight

    jf = thunder.jit(fn)
    x = torch.randn(3)
    torch.testing.assert_close(jf(x), x * weight)
    weight.mul_(2)  # the captured tensor is passed by reference: an in-place update is seen
    torch.testing.assert_close(jf(x), x * weight)


def test_printed_final_trace_runs_on_its_own():
    def fn(a, b):
        return torch.nn.functional.relu(a @ b).sum(-1) / 3

    jf = thunder.jit(fn)
    a, b = torch.randn(2, 3), torch.randn(3, 4)
    expected = jf(a, b)
    trace = thunder.last_traces(jf)[-1]
    namespace = dict(trace.python_ctx())
    exec(str(trace), namespace)
    (result,) = namespace[trace.fn_name](a, b)
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(result, fn(a, b))


def test_last_traces_are_labelled_and_timed():
    jf = thunder.jit(lambda a: a.cos())
    jf(torch.randn(2))
    traces = thunder.last_traces(jf)
    assert traces[0].provenance == "acquisition"
    assert all(t.provenance and t.duration_ms is not None for t in traces)
    stats = thunder.compile_stats(jf)
    assert stats.last_trace_time_ms > 0 and stats.last_compile_time_ms >= stats.last_trace_time_ms


def test_data_dependent_control_flow_names_the_user_line():
    def fn(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(RuntimeError, match=r"test_jit\.py:\d+.*outside the jitted function"):
        thunder.jit(fn)(torch.randn(3))


def test_item_is_a_data_dependent_error():
    with pytest.raises(RuntimeError, match="item"):
        thunder.jit(lambda x: x * x.max().item())(torch.randn(3))


def test_torch_compiler_is_compiling_while_acquiring_only():
    # Libraries (Hugging Face's mask creation) skip data-dependent checks under torch.compile, torch.export, and so
    # under thunder.jit.
    seen = []

    def fn(x):
        seen.append(torch.compiler.is_compiling())
        return x + 1

    thunder.jit(fn)(torch.ones(2))
    assert seen == [True]
    assert not torch.compiler.is_compiling()


def test_a_compile_path_that_fails_to_trace_is_traced_again_on_the_eager_path_with_a_warning():
    # transformers 4.5x's BART: a mask one column too wide on its compile-only path (wrong under torch.compile too)
    seen = []

    def fn(x):
        seen.append(torch.compiler.is_compiling())
        if torch.compiler.is_compiling():
            return x + torch.zeros(x.shape[0] + 1)
        return x + 1

    x = torch.ones(3)
    with pytest.warns(CompilePathFallbackWarning, match=r"is_compiling\(\) True .* failed with RuntimeError"):
        out = thunder.jit(fn)(x)
    torch.testing.assert_close(out, x + 1)
    assert seen == [True, False]


def test_the_eager_path_trace_keeps_the_guards_the_failed_attempt_also_met():
    def fn(x, n):
        y = x * n if n > 0 else x - n  # a guard on n, met on both paths
        if torch.compiler.is_compiling():
            return y + torch.zeros(x.shape[0] + 1)
        return y

    jfn, x = thunder.jit(fn, cache="symbolic values"), torch.ones(3)
    with pytest.warns(CompilePathFallbackWarning):
        torch.testing.assert_close(jfn(x, 2.0), fn(x, 2.0))
        torch.testing.assert_close(jfn(x, -1.0), fn(x, -1.0))  # the guard on n > 0 fails: a new entry


def test_when_both_paths_fail_the_compile_path_error_is_raised_with_the_other_noted():
    def fn(x):
        if torch.compiler.is_compiling():
            return x + torch.zeros(x.shape[0] + 1)
        return x @ torch.zeros(x.shape[0] + 2)

    with pytest.raises(RuntimeError, match="cannot be broadcast") as info:
        thunder.jit(fn)(torch.ones(3))
    assert any("is_compiling() False); it failed too" in note for note in info.value.__notes__)


def test_a_data_dependent_error_is_not_traced_again():
    seen = []

    def fn(x):
        seen.append(torch.compiler.is_compiling())
        return x * 2 if x.sum() > 0 else x

    with pytest.raises(DataDependentError):
        thunder.jit(fn)(torch.ones(3))
    assert seen == [True]


def test_unsupported_fallback_ops_still_run_and_are_reported():
    jf = thunder.jit(lambda x: torch.special.i0(x) + torch.special.ndtri(torch.sigmoid(x)))
    x = torch.randn(4)
    torch.testing.assert_close(jf(x), torch.special.i0(x) + torch.special.ndtri(torch.sigmoid(x)))
    assert "torch.special_i0" in thunder.fallback_ops(jf)


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.drop = torch.nn.Dropout(0.5)
        self.fc2 = torch.nn.Linear(8, 2)
        self.register_buffer("offset", torch.ones(2))

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x)))) + self.offset


def test_module_shares_parameters_both_ways():
    model = TwoLayer().eval()
    jm = thunder.jit(model)
    x = torch.randn(3, 4)
    torch.testing.assert_close(jm(x), model(x))
    with torch.no_grad():
        model.fc1.weight.add_(1.0)  # an update to the original shows in the jitted module
    torch.testing.assert_close(jm(x), model(x))
    assert jm.fc1.weight is model.fc1.weight
    assert [n for n, _ in jm.named_parameters()] == [n for n, _ in model.named_parameters()]


def test_state_dict_round_trips_through_the_jitted_module():
    model, other = TwoLayer().eval(), TwoLayer().eval()
    jm = thunder.jit(model)
    assert set(jm.state_dict()) == set(model.state_dict())
    jm.load_state_dict(other.state_dict())
    x = torch.randn(3, 4)
    torch.testing.assert_close(jm(x), other(x))


def test_switching_train_and_eval_respecializes():
    model = TwoLayer()
    jm = thunder.jit(model)
    x = torch.randn(16, 4)
    jm.eval()
    torch.testing.assert_close(jm(x), model(x))
    jm.train()
    torch.manual_seed(0)
    train_out = jm(x)
    torch.manual_seed(0)
    torch.testing.assert_close(train_out, model(x))  # dropout active and drawing eager's mask
    assert thunder.cache_misses(jm) == 2


def test_buffer_updated_in_forward_is_written_back():
    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", torch.zeros(()))

        def forward(self, x):
            self.count.add_(1)
            return x * self.count

    model = Counter()
    jm = thunder.jit(model)
    x = torch.ones(2)
    jm(x)
    out = jm(x)
    assert model.count.item() == 2 and torch.equal(out, x * 2)


class _Total(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("total", torch.zeros(2))


class _Accumulator(torch.nn.Module):
    """Its state is made after thunder.jit, and made anew by reset(), like a KV cache."""

    def __init__(self):
        super().__init__()
        self.state = None

    def reset(self):
        self.state = _Total()

    def forward(self, x):
        self.state.total.add_(x)
        return self.state.total * 1


def test_state_made_after_jit_is_read_and_written_on_every_call():
    model = _Accumulator()
    jmodel = thunder.jit(model)
    for _ in range(2):  # the second state has the first's metadata: a cache hit
        model.reset()
        jmodel(torch.ones(2))
        torch.testing.assert_close(jmodel(torch.ones(2)), torch.full((2,), 2.0))
        torch.testing.assert_close(model.state.total, torch.full((2,), 2.0))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_casts_like_eager_and_keys_the_cache(dtype):
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    jm = thunder.jit(model)
    x = torch.randn(3, 8)
    with torch.no_grad():
        with torch.autocast(x.device.type, dtype=dtype):
            result, expected = jm(x), model(x)
        plain = jm(x)
    assert result.dtype == expected.dtype == dtype and plain.dtype == torch.float32
    torch.testing.assert_close(result, expected)
    assert thunder.cache_misses(jm) == 2


def test_documented_torchcompile_executor_list_works_after_a_bare_import():
    import subprocess
    import sys

    code = (
        "import torch, thunder\n"
        "exc_list = [thunder.extend.get_executor('torchcompile'), *thunder.get_always_executors()]\n"
        "jf = thunder.jit(lambda x, y: x + y, executors=exc_list)\n"
        "x = torch.ones(2)\n"
        "assert torch.equal(jf(x, x), x + x)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
