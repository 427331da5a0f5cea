"""The pipeline as a plugin contract (Core-6): a plugin package, installed as a real distribution, offers a
transform by name that edits the forward and backward traces after autodiff, and a fusion executor with an
option; both work through thunder.jit, checked against torch eager."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch

import thunder
from thunder.extend import ENTRY_POINT_GROUP, STAGES, PluginRegistry, set_default_registry

GRAD_SCALE = 4.0

PLUGIN_SOURCE = f'''
"""A test plugin: the `gradscale` transform and the `toyfuse` fusion executor, on the public API only."""
import torch

import thunder.torch as ltorch
from thunder.core.trace import tracectx
from thunder.extend import (CompileCache, CompileOnFirstCall, ExecutorOption, ExecutorSpec, FusionExecutor, OpTag,
                            Symbol, TensorProxy, TransformSpec, get_executor, hookimpl, lower_region)


class GradScale:
    """Multiplies every gradient the backward returns by `factor`, and marks the forward as scaled."""

    def __init__(self, factor={GRAD_SCALE}):
        self.factor = factor

    def transform_traces_post_autodiff(self, forward_trace, backward_trace, **kwargs):
        new_bwd = backward_trace.from_trace("grad scale")
        with tracectx(new_bwd):
            new_bwd.output = [ltorch.mul(g, self.factor) if isinstance(g, TensorProxy) else g
                              for g in backward_trace.output]
        new_fwd = forward_trace.from_trace("grad scale")
        new_fwd.tags["grad_scale"] = self.factor
        return new_fwd, new_bwd


CACHE = CompileCache()


class ToyFuse(FusionExecutor):
    """Fuses elementwise operations into one Python callable per region; declines regions smaller than
    the `min_region_size` option."""

    def __init__(self):
        super().__init__("toyfuse", version="1.0", options=[
            ExecutorOption("min_region_size", int, 2, "regions with fewer operations are left to other executors"),
            ExecutorOption("label", str, "Toy", "prefix of the fusion symbols' names"),
        ])
        self.regions_seen = []

    def can_fuse(self, bsym, *, options):
        return OpTag.ELEMENTWISE in bsym.sym.tags and get_executor("torch").can_execute(bsym)

    def fuse(self, region, fusion_index, *, options):
        self.regions_seen.append(len(region.bound_symbols))
        if len(region.bound_symbols) < options["min_region_size"]:
            return None
        program = region.as_trace("toy_region")
        program.bound_symbols = lower_region(region, [get_executor("torch")])
        name = options["label"] + "Fusion" + str(fusion_index)
        impl = CompileOnFirstCall(lambda args: program.python_callable(), key=None, cache=CACHE)
        sym = Symbol(name, python_impl=impl, id="toyfuse." + name, tags=(OpTag.FUSION,))
        return sym.bind(*region.inputs, output=tuple(region.outputs), subsymbols=tuple(region.bound_symbols))


EXECUTOR = ToyFuse()


@hookimpl
def thunder_executors():
    return [ExecutorSpec("toyfuse", priority=40, load=lambda: EXECUTOR, default=False, description="toy fusion")]


@hookimpl
def thunder_transforms():
    return [TransformSpec("gradscale", factory=GradScale, description="scales every gradient by {GRAD_SCALE}")]
'''


@pytest.fixture
def plugin_registry(tmp_path, monkeypatch):
    """A default registry that discovers the test plugin, installed as a distribution with a dist-info."""
    info = tmp_path / "thunder_test_pipeline_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thunder-test-pipeline-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\npipeline_test = pipeline_test_plugin\n")
    (tmp_path / "pipeline_test_plugin.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    registry = PluginRegistry(autoload=True)
    previous = set_default_registry(registry)
    yield registry
    set_default_registry(previous)
    sys.modules.pop("pipeline_test_plugin", None)


def _mlp(x, w, b):
    h = torch.tanh(x @ w + b)
    return (h * torch.sigmoid(h) - 0.5 * h).sum()


def _inputs():
    torch.manual_seed(0)
    return [torch.randn(4, 5, requires_grad=True), torch.randn(5, 3, requires_grad=True),
            torch.randn(3, requires_grad=True)]  # fmt: skip


def _eager_grads(fn, inputs):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs)


def _fusions(jfn) -> list[str]:
    return [b.sym.name for b in thunder.last_traces(jfn)[-1].bound_symbols if "fusion" in b.sym.tags]


def test_plugin_transform_by_name_and_fusion_executor_with_option_match_eager(plugin_registry):
    inputs = _inputs()
    jfn = thunder.jit(_mlp, executors=["toyfuse"], transforms=["gradscale"],
                      executor_options={"toyfuse": {"min_region_size": 2, "label": "Mine"}})  # fmt: skip
    out = jfn(*inputs)
    grads = torch.autograd.grad(out, inputs)
    expected_out, expected_grads = _eager_grads(_mlp, inputs)
    torch.testing.assert_close(out, expected_out)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e * GRAD_SCALE)
    names = _fusions(jfn)
    assert names and all(n.startswith("MineFusion") for n in names)
    fwd_labels = [t.provenance for t in thunder.last_traces(jfn)]
    bwd_labels = [t.provenance for t in thunder.last_backward_traces(jfn)]
    assert "GradScale.transform_traces_post_autodiff" in fwd_labels
    assert "GradScale.transform_traces_post_autodiff" in bwd_labels


def test_executor_option_changes_the_compiled_program(plugin_registry):
    inputs = _inputs()
    declined = thunder.jit(_mlp, executors=["toyfuse"], executor_options={"toyfuse": {"min_region_size": 1000}})
    fused = thunder.jit(_mlp, executors=["toyfuse"], executor_options={"toyfuse": {"min_region_size": 1}})
    for jfn in (declined, fused):
        torch.testing.assert_close(jfn(*inputs), _mlp(*inputs))
    executor = thunder.extend.get_executor("toyfuse")
    assert executor.regions_seen, "the executor was offered regions"
    assert _fusions(declined) == []
    assert _fusions(fused)


def test_unknown_executor_option_names_the_executor_and_lists_its_options(plugin_registry):
    with pytest.raises(thunder.extend.ExecutorOptionError, match=r"'toyfuse' has no option 'min_size'.*min_region_size"):
        thunder.jit(_mlp, executors=["toyfuse"], executor_options={"toyfuse": {"min_size": 3}})


def test_mistyped_executor_option_is_an_error_naming_the_expected_type(plugin_registry):
    with pytest.raises(thunder.extend.ExecutorOptionError, match=r"'toyfuse': option 'min_region_size' must be int"):
        thunder.jit(_mlp, executors=["toyfuse"], executor_options={"toyfuse": {"min_region_size": "3"}})


def test_options_for_an_executor_not_in_the_list_are_an_error(plugin_registry):
    with pytest.raises(thunder.extend.ExecutorOptionError, match=r"'toyfuse', not in the executor list"):
        thunder.jit(_mlp, executors=["torch"], executor_options={"toyfuse": {"min_region_size": 3}})


def test_unknown_transform_name_lists_the_known_ones(plugin_registry):
    with pytest.raises(thunder.extend.UnknownTransformError, match=r"'gradscal'.*did you mean 'gradscale'.*known"):
        thunder.jit(_mlp, transforms=["gradscal"])


def test_cli_lists_the_plugin_transform_and_executor_options(plugin_registry):
    from thunder.__main__ import describe_plugins

    report = "\n".join(describe_plugins(plugin_registry, options=True))
    assert "gradscale" in report and f"scales every gradient by {GRAD_SCALE}" in report
    assert "min_region_size" in report and "regions with fewer operations" in report


def test_every_trace_is_labelled_with_its_pass_stage_and_duration(plugin_registry):
    inputs = _inputs()
    jfn = thunder.jit(_mlp, executors=["toyfuse"], transforms=["gradscale"])
    torch.autograd.grad(jfn(*inputs), inputs)
    for traces in (thunder.last_traces(jfn), thunder.last_backward_traces(jfn)):
        stages = [t.stage for t in traces]
        assert all(s in STAGES for s in stages), stages
        assert stages == sorted(stages, key=STAGES.index), "stages appear in pipeline order"
        assert all(t.provenance and t.duration_ms is not None for t in traces)
        assert stages[-1] == "before execution"
        assert f"stage {stages[-1]!r}" in str(traces[-1]), "the printed trace names its stage"
    fwd_stages = {t.stage for t in thunder.last_traces(jfn)}
    assert {"acquired", "before autodiff", "after autodiff", "fusion and claiming", "before execution"} <= fwd_stages


# --- executor trace passes ------------------------------------------------------------------------------

def _swiglu_executor(order_log: list):
    """An executor whose pass rewrites `silu(a) * b` into its own `swiglu` operator before autodiff."""
    import thunder.torch as ltorch
    from thunder.core.trace import tracectx
    from thunder.extend import BEFORE_AUTODIFF, OperatorExecutor, get_grad, put_grad

    ex = OperatorExecutor("swiglu_test")
    swiglu = ex.register_operator("swiglu", meta=lambda a, b: thunder.extend.TensorProxy(like=a),
                                  fn=lambda a, b: torch.nn.functional.silu(a) * b)  # fmt: skip

    def swiglu_grad(a, b):
        out = swiglu(a, b)
        g = get_grad(out)
        sig = ltorch.sigmoid(a)
        put_grad(a, g * b * (sig + a * sig * (1 - sig)))
        put_grad(b, g * a * sig)
        return out

    ex.register_implementation(swiglu, grad_transform=swiglu_grad)

    def fuse_swiglu(trace, context):
        order_log.append(("swiglu_test", dict(context.options)))
        silu_out = {b.output.name: b for b in trace.bound_symbols if b.sym.id == "ltorch.silu"}
        new = trace.from_trace("fuse swiglu", [])
        with tracectx(new):
            for bsym in trace.bound_symbols:
                a, b = (bsym.args + (None, None))[:2]
                if bsym.sym.id == "ltorch.mul" and getattr(a, "name", None) in silu_out:
                    (x,) = silu_out[a.name].args[:1]
                    swiglu(x, b)
                    new.bound_symbols[-1] = new.bound_symbols[-1].from_bsym(output=bsym.output)
                else:
                    new.bound_symbols.append(bsym)
        return new

    ex.register_pass(fuse_swiglu, stage=BEFORE_AUTODIFF)
    return ex


def test_executor_pass_rewrites_a_pattern_before_autodiff_with_eager_gradients():
    log: list = []
    ex = _swiglu_executor(log)

    def f(a, b):
        return torch.nn.functional.silu(a) * b

    a, b = torch.randn(4, 6, dtype=torch.float64, requires_grad=True), torch.randn(4, 6, dtype=torch.float64,
                                                                                 requires_grad=True)  # fmt: skip
    jfn = thunder.jit(f, executors=[ex])
    out = jfn(a, b)
    grads = torch.autograd.grad(out.sum(), (a, b))
    expected = f(a, b)
    torch.testing.assert_close(out, expected)
    for g, e in zip(grads, torch.autograd.grad(expected.sum(), (a, b))):
        torch.testing.assert_close(g, e)
    labels = [t.provenance for t in thunder.last_traces(jfn)]
    assert "swiglu_test: fuse_swiglu" in labels
    # the pass leaves silu's now unused result to dead-code elimination, which runs next in the same stage
    cleaned = next(t for t in thunder.last_traces(jfn) if t.provenance == "dead code elimination")
    assert [b.sym.id for b in cleaned.bound_symbols] == ["swiglu_test.swiglu"]


def test_executor_pass_runs_only_when_its_executor_is_listed():
    log: list = []
    _swiglu_executor(log)
    jfn = thunder.jit(lambda a, b: torch.nn.functional.silu(a) * b, executors=["torch"])
    jfn(torch.randn(3), torch.randn(3))
    assert log == []
    assert not any(t.provenance.startswith("swiglu_test") for t in thunder.last_traces(jfn))


def test_executor_passes_run_in_the_order_of_the_executor_list():
    from thunder.extend import BEFORE_FUSION, ExecutorOption, OperatorExecutor

    order: list = []

    def make(name):
        ex = OperatorExecutor(name, options=[ExecutorOption("tag", str, "default", "recorded by the pass")])
        ex.register_pass(lambda trace, context: order.append((name, context.options["tag"])) or trace,
                         stage=BEFORE_FUSION, name="record")  # fmt: skip
        return ex

    first, second = make("first_ex"), make("second_ex")
    jfn = thunder.jit(lambda x: x + 1, executors=[second, first], executor_options={"first_ex": {"tag": "given"}})
    jfn(torch.ones(2))
    assert order == [("second_ex", "default"), ("first_ex", "given")]


# --- fusion executors: declining and splitting regions ---------------------------------------------------

def test_fusion_executor_may_split_a_region_and_results_match_eager():
    from thunder.extend import FusionExecutor, OpTag, Symbol, get_executor, lower_region

    class Halves(FusionExecutor):
        def can_fuse(self, bsym):  # the two-argument form of earlier executors keeps working
            return OpTag.ELEMENTWISE in bsym.sym.tags

        def fuse(self, region, fusion_index):
            parts = region.split_at([len(region.bound_symbols) // 2])
            result = list(parts[0].bound_symbols)  # the first half declined, the second fused
            program = parts[-1].as_trace("half")
            program.bound_symbols = lower_region(parts[-1], [get_executor("torch")])
            sym = Symbol(f"Half{fusion_index}", python_impl=program.python_callable(), tags=(OpTag.FUSION,))
            result.append(sym.bind(*parts[-1].inputs, output=tuple(parts[-1].outputs)))
            return result

    def f(x, y):
        a = torch.exp(x) + y
        b = a * 3 - x
        return torch.sin(b) * a, b.sum()

    x, y = torch.randn(5, 4), torch.randn(5, 4)
    jfn = thunder.jit(f, executors=[Halves("halves")])
    for got, expected in zip(jfn(x, y), f(x, y)):
        torch.testing.assert_close(got, expected)
    assert any(b.sym.name.startswith("Half") for b in thunder.last_traces(jfn)[-1].bound_symbols)


# --- transforms: state dict, thread safety ---------------------------------------------------------------

def test_state_dict_goes_through_transform_state_dict_for_submodule():
    class Halve(thunder.Transform):
        def transform_state_dict_for_submodule(self, model, submodule_name, state_dict):
            return {k: v / 2 if submodule_name == "1" else v for k, v in state_dict.items()}

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    jmodel = thunder.jit(model, transforms=[Halve()])
    got, original = jmodel.state_dict(), model.state_dict()
    assert list(got) == list(original)
    torch.testing.assert_close(got["0.weight"], original["0.weight"])
    torch.testing.assert_close(got["1.weight"], original["1.weight"] / 2)
    torch.testing.assert_close(got["1.bias"], original["1.bias"] / 2)


def test_compiling_from_eight_threads_at_once_gives_eager_results():
    import threading

    failures: list = []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            def f(x, w):
                y = torch.nn.functional.gelu(x @ w) * (i + 1)
                return y.sum(dim=-1) + torch.softmax(y, -1).mean()

            torch.manual_seed(i)
            x, w = torch.randn(4, 8, requires_grad=True), torch.randn(8, 8, requires_grad=True)
            jfn = thunder.jit(f)
            barrier.wait()
            out = jfn(x, w)
            grads = torch.autograd.grad(out.sum(), (x, w))
            expected = f(x, w)
            torch.testing.assert_close(out, expected)
            for g, e in zip(grads, torch.autograd.grad(expected.sum(), (x, w))):
                torch.testing.assert_close(g, e)
        except Exception as e:  # collected: an exception in a thread would not fail the test
            failures.append(f"thread {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, "\n".join(failures)


def test_torchcompile_declares_options_and_declines_small_regions():
    def f(x):
        return torch.sin(x) * 2

    x = torch.randn(8)
    jfn = thunder.jit(f, executors=["torchcompile"], executor_options={"torchcompile": {"min_region_size": 100}})
    torch.testing.assert_close(jfn(x), f(x))
    assert not any(b.sym.name.startswith("TorchCompile") for b in thunder.last_traces(jfn)[-1].bound_symbols)
    with pytest.raises(thunder.extend.ExecutorOptionError, match=r"'torchcompile' has no option 'autotune'.*max_autotune"):
        thunder.jit(f, executors=["torchcompile"], executor_options={"torchcompile": {"autotune": True}})


def test_registry_reads_are_safe_while_another_thread_registers_executors():
    import threading
    import time

    from thunder.extend import OperatorExecutor

    stop = threading.Event()
    failures: list = []

    def churn():
        i = 0
        while not stop.is_set():
            ex = OperatorExecutor(f"churn{i % 7}")
            thunder.extend.register_executor(ex, priority=i % 5, default=True, always=i % 2 == 0)
            thunder.extend.add_default_executor(ex)
            thunder.extend.deregister_executor(ex)
            i += 1

    def read():
        try:
            while not stop.is_set():
                thunder.extend.get_default_executors()
                thunder.extend.get_always_executors()
        except Exception as e:  # collected: an exception in a thread would not fail the test
            failures.append(f"{type(e).__name__}: {e}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so that a race shows within a second
    try:
        threads = [threading.Thread(target=churn)] + [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures, "\n".join(failures[:3])


def test_is_compiling_is_false_again_after_threads_compile_at_once():
    import threading

    barrier = threading.Barrier(4)

    def work(k):
        def f(x):
            return torch.sin(x) + k

        jfn = thunder.jit(f)
        barrier.wait()
        jfn(torch.randn(2))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.compiler.is_compiling() is False
