"""ThunderFX (`thunder.dynamo`): graph breaks and in-graph splits, forward and backward compared with eager.

Most tests run the regions Thunder does not take eagerly (`fallback="eager"`): Inductor on this CPU is slow to
compile. One test uses the default, Inductor.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo

import thunder
from thunder.dynamo import ThunderCompiler, thunderfx


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_matches_eager(model, *inputs, **fx_options):
    """Runs `model` eagerly and through thunderfx on the same inputs: outputs and every gradient equal."""
    reference = copy.deepcopy(model)
    torch.manual_seed(0)
    expected = reference(*inputs)
    expected.sum().backward()
    compiled = thunderfx(model, **{"fallback": "eager", **fx_options})
    torch.manual_seed(0)
    actual = compiled(*inputs)
    actual.sum().backward()
    torch.testing.assert_close(actual, expected)
    ref_grads, grads = _grads(reference), _grads(model)
    assert ref_grads.keys() == grads.keys() and ref_grads
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], msg=f"gradient of {name}")
    return compiled


class DataDependentBranch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 8), torch.nn.Linear(8, 4)

    def forward(self, x):
        h = torch.tanh(self.fc1(x))
        if h.sum() > 0:  # needs the tensor's value: Dynamo breaks the graph here
            h = h * 2
        else:
            h = h - 1
        return self.fc2(h)


class ScalarReads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 6)

    def forward(self, x):
        h = self.fc(x)
        scale = h.abs().max().item()  # .item(): a Python float
        offsets = h[0, :2].tolist()  # .tolist(): Python floats
        return h / scale + offsets[0] - offsets[1]


class TopOneMoE(torch.nn.Module):
    """Mixture-of-experts routing: nonzero, one-argument torch.where and boolean-mask indexing."""

    def __init__(self, dim=8, experts=3):
        super().__init__()
        self.router = torch.nn.Linear(dim, experts)
        self.experts = torch.nn.ModuleList(torch.nn.Linear(dim, dim) for _ in range(experts))

    def forward(self, x):
        choice = self.router(x).argmax(-1)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            mask = choice == e
            rows = torch.where(mask)[0]
            picked = x[mask]  # boolean-mask indexing
            if rows.numel() > 0:
                out = out.index_add(0, rows, expert(picked))
        count = torch.nonzero(choice >= 0).shape[0]
        return out * count


class LayerDropStack(torch.nn.Module):
    """LayerDrop: in training each layer is skipped at random (a data-dependent, random branch)."""

    def __init__(self, layers=4, p=0.5):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(layers))
        self.p = p

    def forward(self, x):
        for layer in self.layers:
            if self.training and torch.rand(()).item() < self.p:
                continue
            x = torch.relu(layer(x)) + x
        return x


def test_if_tensor_breaks_the_graph_and_matches_eager():
    compiled = assert_matches_eager(DataDependentBranch(), torch.randn(4, 8))
    assert len(compiled.last_traces) >= 2  # one Thunder region before the branch, one after
    assert all(traces for traces in compiled.last_backward_traces)
    assert "FX graph(s)" in compiled.report()


def test_item_and_tolist_break_the_graph_and_match_eager():
    compiled = assert_matches_eager(ScalarReads(), torch.randn(3, 6))
    kinds = {reason.kind for reason in compiled.split_reasons}
    assert kinds == {"dynamo graph break"}
    assert any("item" in reason.message for reason in compiled.split_reasons)


def test_moe_routing_matches_eager_across_graph_breaks():
    torch.manual_seed(1)
    assert_matches_eager(TopOneMoE(), torch.randn(10, 8))


def test_moe_routing_captured_in_one_graph_is_split_around_data_dependent_nodes(monkeypatch):
    monkeypatch.setattr(torch._dynamo.config, "capture_dynamic_output_shape_ops", True)
    monkeypatch.setattr(torch._dynamo.config, "capture_scalar_outputs", True)

    class Routing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.router, self.expert = torch.nn.Linear(8, 2), torch.nn.Linear(8, 8)

        def forward(self, x):
            mask = self.router(x).argmax(-1) == 0
            picked = x[mask]
            rows = torch.where(mask)[0]
            nz = torch.nonzero(mask).shape[0]
            return torch.zeros_like(x).index_add(0, rows, self.expert(picked)) * nz + torch.sin(x)

    torch.manual_seed(2)
    compiled = assert_matches_eager(Routing(), torch.randn(12, 8))
    reasons = [r for r in compiled.split_reasons if r.kind == "data-dependent"]
    targets = " ".join(r.target + " " + r.message for r in reasons)
    assert "boolean mask" in targets and "torch.where" in targets and "nonzero" in targets
    assert compiled.last_traces  # the linear layers and the rest ran under Thunder
    assert "Split reasons" in compiled.report()


def test_layerdrop_in_training_matches_eager_with_the_same_seed():
    model = LayerDropStack()
    model.train()
    assert_matches_eager(model, torch.randn(2, 8))


def test_layerdrop_in_eval_is_one_thunder_graph():
    model = LayerDropStack().eval()
    compiled = thunderfx(model, fallback="eager")
    x = torch.randn(2, 8)
    torch.testing.assert_close(compiled(x), model(x))
    assert len(compiled.last_traces) == 1 and not compiled.split_reasons


def test_unsupported_region_runs_on_inductor_by_default(monkeypatch):
    monkeypatch.setattr(torch._dynamo.config, "capture_dynamic_output_shape_ops", True)

    def block(y):
        return torch.cos(y) * y

    def f(x, w):
        y = torch.sin(x @ w)
        z = torch.utils.checkpoint.checkpoint(block, y, use_reentrant=False)  # a higher-order op: Inductor's
        idx = torch.nonzero(y > 0)  # data-dependent: Inductor cannot take it either, so it runs eagerly
        return z.sum() + idx.shape[0]

    x, w = torch.randn(4, 4), torch.randn(4, 4, requires_grad=True)
    backend = ThunderCompiler(executors=["torch"])
    actual = torch.compile(f, backend=backend)(x, w)
    actual.backward()
    grad = w.grad.clone()
    w.grad = None
    expected = f(x, w)
    expected.backward()
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(grad, w.grad)
    kinds = {r.kind for r in backend.split_reasons}
    assert kinds == {"data-dependent", "unsupported operator", "inductor failed"}, backend.report()
    assert any("nonzero" in r.target for r in backend.split_reasons if r.kind == "data-dependent")
    inductor_regions = [m for m in backend.graphs[0].children() if getattr(m, "fallback", None) == "inductor"]
    assert inductor_regions and all(m._compiled is not None for m in inductor_regions)
    assert backend.thunder_regions and not any(r.uses_fallback for r in backend.thunder_regions)


def test_dynamic_shapes_recompile_a_bounded_number_of_times():
    def f(x):
        return torch.tanh(x).sum(0)

    compiled = thunderfx(f, dynamic=True, fallback="eager", max_thunder_specializations=2)
    for n in (3, 4, 5, 6):
        x = torch.randn(n, 2)
        torch.testing.assert_close(compiled(x), f(x))
    regions = compiled.compiler.thunder_regions
    assert len(regions) == 1 and regions[0].uses_fallback  # Dynamo compiled once; Thunder twice, then gave up
    assert thunder.cache_misses(regions[0].jitted) == 3
    assert any(r.kind == "recompile limit" for r in compiled.split_reasons)


def test_thunder_jit_error_message_example_works():
    def f(x):
        return x * 2 if x.sum() > 0 else x - 1

    with pytest.raises(Exception, match=r"torch.compile\(fn, backend=thunder.dynamo.ThunderCompiler\(\)\)"):
        thunder.jit(f)(torch.ones(3))
    fn = f
    compiled = torch.compile(fn, backend=thunder.dynamo.ThunderCompiler())  # as the message says
    for x in (torch.ones(3), -torch.ones(3)):
        torch.testing.assert_close(compiled(x), f(x))


def test_bad_options_are_rejected_with_the_way_out():
    with pytest.raises(ValueError, match="fallback must be one of"):
        ThunderCompiler(fallback="tvm")
    with pytest.raises(TypeError, match="unknown options"):
        ThunderCompiler(not_an_option=1)


def test_examine_reports_that_thunderfx_runs_what_thunder_jit_cannot(capsys):
    result = thunder.examine.examine(DataDependentBranch(), torch.randn(2, 8))
    assert result.jit_error is not None and "DataDependentError" in result.jit_error
    assert result.thunderfx is not None and result.thunderfx.startswith("thunderfx runs it and matches eager")
    assert "thunderfx runs it" in capsys.readouterr().out


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_hf_model_through_thunderfx_matches_eager(family):
    from tests.models import test_hf_models as hf

    torch.manual_seed(0)
    model = getattr(hf, family)("eager")
    model.eval()  # dropout off; gradients still flow
    input_ids = torch.randint(3, hf.VOCAB, (hf.BATCH, hf.SEQ))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :2] = 0  # left padding: the mask matters

    reference = copy.deepcopy(model)
    expected = reference(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    expected.sum().backward()
    compiled = thunderfx(model, fallback="eager", executors=["torch"])
    actual = compiled(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    actual.sum().backward()
    torch.testing.assert_close(actual, expected)
    ref_grads, grads = _grads(reference), _grads(model)
    assert ref_grads.keys() == grads.keys() and ref_grads
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], msg=f"gradient of {name}")
    assert compiled.last_traces and compiled.last_backward_traces


def test_a_region_thunder_fails_to_compile_runs_on_the_fallback_with_the_reason():
    class RefusesEveryTrace(thunder.Transform):
        def transform_traces_pre_prologue(self, prologue, computation, epilogue, **kwargs):
            raise NotImplementedError("this transform refuses every trace")

    def f(x):
        return torch.sin(x) * 3

    compiled = thunderfx(f, fallback="eager", transforms=[RefusesEveryTrace()])
    x = torch.randn(5)
    torch.testing.assert_close(compiled(x), f(x))
    torch.testing.assert_close(compiled(x), f(x))  # stays on the fallback, no second attempt
    (reason,) = compiled.split_reasons
    assert reason.kind == "thunder failed" and "refuses every trace" in reason.message
    assert compiled.compiler.thunder_regions[0].uses_fallback and compiled.last_traces == []


def test_a_vmap_that_dynamo_inlines_runs_on_the_fallback_and_leaves_no_vmap_level_open():
    # transformers 4.5x builds masks with nested torch.vmap; Dynamo inlines it as functorch level calls, which
    # Thunder once traced: the region failed and the vmap level it had opened stayed open, so a later
    # torch.rand raised vmap's randomness error
    def f(x, y, w):
        def pair(a, b):
            return (a < b).float()

        mask = torch.vmap(torch.vmap(pair, in_dims=(None, 0)), in_dims=(0, None))(x, y)
        return torch.sin(mask @ w) * 2

    x, y, w = torch.arange(4.0), torch.arange(5.0), torch.randn(5, 3, requires_grad=True)
    compiled = thunderfx(f, fallback="eager")
    actual = compiled(x, y, w)
    actual.sum().backward()
    grad, w.grad = w.grad, None
    expected = f(x, y, w)
    expected.sum().backward()
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(grad, w.grad)
    assert torch._C._functorch.maybe_current_level() is None, "a vmap level was left open"
    torch.rand(2)  # raises under an open vmap level
    (reason,) = compiled.split_reasons
    assert reason.kind == "unsupported operator" and "torch.func transform" in reason.message
    assert "test_dynamo.py" in reason.location
    assert compiled.last_traces and compiled.last_backward_traces, "the matmul and sin ran outside Thunder"


def _compile_only_path(x):
    if torch.compiler.is_compiling():  # a library's torch.compile-only path with a bug (transformers 4.55's BART)
        return x + torch.zeros(x.shape[0] + 1)
    return x + 1


def _scaled(x, w):
    return torch.tanh(x @ w) * 3


def test_a_frame_dynamo_fails_to_capture_runs_eagerly_and_its_callees_still_compile():
    def f(x, w):
        return _scaled(_compile_only_path(x).cos(), w)

    x, w = torch.randn(4), torch.randn(4, 2, requires_grad=True)
    compiled = thunderfx(f, fallback="eager")
    actual = compiled(x, w)
    actual.sum().backward()
    grad, w.grad = w.grad, None
    expected = f(x, w)
    expected.sum().backward()
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(grad, w.grad)
    failed = [r for r in compiled.split_reasons if r.kind == "dynamo failed"]
    assert failed and all("ran it eagerly" in r.message for r in failed)
    assert any("test_dynamo.py" in r.message and "broadcast" in r.message for r in failed), failed
    assert compiled.last_traces and compiled.last_backward_traces, "_scaled did not run under Thunder"


def test_fullgraph_raises_where_dynamo_fails_to_capture():
    compiled = thunderfx(_compile_only_path, fallback="eager", fullgraph=True)
    with pytest.raises(Exception, match="broadcast"):
        compiled(torch.randn(4))
