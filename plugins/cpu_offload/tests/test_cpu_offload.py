"""Tests of the cpu_offload plugin. They expect the package to be installed (its entry point), e.g.

    pip install --no-deps --no-build-isolation -e plugins/cpu_offload

On the CPU: the transform by name, its pass-through on a CPU program, which saved tensors it picks, and the
rewrite itself run with real (synchronous) copies by offloading CPU tensors, against eager gradients. On CUDA
(skipped with "needs CUDA" elsewhere): the real offload through pinned memory and side streams, gradients
against eager, and the peak memory of a Llama-style training step against the same step without offloading.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from thunder_cpu_offload import CPUOffload
from thunder_cpu_offload.transform import CPUOffloadWarning

import thunder
from thunder.extend import PluginRegistry, set_default_registry

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class _OffloadEverywhere(CPUOffload):
    """Offloads CPU tensors too (a real copy each way, no memory saved): the rewrite, testable on the CPU."""

    def should_offload(self, t):
        return t.numel() * t.element_size() >= self.min_bytes


class MLP(torch.nn.Module):
    def __init__(self, width=32, depth=3):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x)) * torch.sigmoid(x)
        return x.square().mean()


def _grads_after_step(model, *inputs):
    model.zero_grad(set_to_none=True)
    loss = model(*inputs)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _check_against_eager(make_model, inputs, transform, **tolerance):
    torch.manual_seed(0)
    model = make_model()
    reference = make_model()
    reference.load_state_dict(model.state_dict())
    jmodel = thunder.jit(model, transforms=[transform])
    for _ in range(2):
        loss, grads = _grads_after_step(jmodel, *inputs)
        expected_loss, expected_grads = _grads_after_step(reference, *inputs)
        torch.testing.assert_close(loss, expected_loss, **tolerance)
        for g, e in zip(grads, expected_grads):
            torch.testing.assert_close(g, e, **tolerance)
    return jmodel


def _ops(trace, name):
    return [b for b in trace.bound_symbols if b.sym.id == f"cpu_offload.{name}"]


# --- on the CPU ------------------------------------------------------------------------------------------


@pytest.fixture
def registry():
    """A fresh registry that discovers installed plugins (whatever THUNDER_DISABLE_PLUGIN_AUTOLOAD says)."""
    fresh = PluginRegistry(autoload=True)
    previous = set_default_registry(fresh)
    yield fresh
    set_default_registry(previous)


def test_offered_by_name(registry):
    spec = registry.get_transform_spec("cpu_offload")
    assert isinstance(spec.factory(), CPUOffload)
    jmodel = thunder.jit(MLP(), transforms=["cpu_offload"])
    assert any(isinstance(t, CPUOffload) for t in jmodel._jfn.transforms)


def test_a_cpu_program_is_left_unchanged_with_one_warning():
    transform = CPUOffload(min_bytes=0)
    x = torch.randn(8, 32)
    with pytest.warns(CPUOffloadWarning, match="nothing is offloaded"):
        jmodel = _check_against_eager(MLP, (x,), transform)
    assert transform.offloaded == []
    assert not _ops(thunder.last_traces(jmodel)[-1], "to_host")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CPUOffloadWarning)  # once per transform object
        jmodel(torch.randn(4, 32))


def test_the_rewrite_passes_saved_tensors_through_host_copies_and_matches_eager():
    transform = _OffloadEverywhere(min_bytes=0)
    jmodel = _check_against_eager(MLP, (torch.randn(8, 32),), transform)
    forward, backward = thunder.last_traces(jmodel)[-1], thunder.last_backward_traces(jmodel)[-1]
    names = {t.name for t in transform.offloaded}
    assert names and transform.offloaded_bytes == sum(t.nbytes for t in transform.offloaded)
    assert len(_ops(forward, "to_host")) == len(names)
    # the forward returns host copies where it saved the tensors
    saved = forward.output[1]
    assert not names & {t.name for t in saved if isinstance(t, torch.Tensor)}
    # the backward brings each back before its first use, prefetching one ahead
    program = backward.bound_symbols
    position = {b.output.name: i for i, b in enumerate(program) if b.sym.id == "cpu_offload.ready"}
    assert set(position) == names
    for name, i in position.items():
        first_use = min(j for j, b in enumerate(program) if any(a.name == name for a in b.flat_args))
        assert i < first_use
    prefetches = _ops(backward, "prefetch")
    readies = [b for b in program if b.sym.id == "cpu_offload.ready"]
    assert program.index(prefetches[1]) < program.index(readies[0])  # the second copy starts before the first is used


def test_inputs_their_views_and_outputs_stay_where_they_are():
    def fn(x, w):
        h = x @ w.t()  # saves x and the view w.t() of an input: offloading them would free nothing
        y = torch.sin(h)
        return y, (y * h).sum()  # y is returned: the caller holds it anyway

    transform = _OffloadEverywhere(min_bytes=0)
    jfn = thunder.jit(fn, transforms=[transform])
    x, w = torch.randn(4, 8, requires_grad=True), torch.randn(6, 8, requires_grad=True)
    y, loss = jfn(x, w)
    loss.backward()
    forward = thunder.last_traces(jfn)[-1]
    inputs = {a.name for a in forward.args}
    assert transform.offloaded and not {t.name for t in transform.offloaded} & inputs
    assert all(t.name != forward.output[0][0].name for t in transform.offloaded)
    ex, ew = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ey, eloss = fn(ex, ew)
    eloss.backward()
    torch.testing.assert_close((y, loss, x.grad, w.grad), (ey, eloss, ex.grad, ew.grad))


def test_small_tensors_stay_on_the_device():
    transform = _OffloadEverywhere(min_bytes=8 * 32 * 4)  # an [8, 32] float32 activation and larger
    _check_against_eager(MLP, (torch.randn(8, 32),), transform)
    assert transform.offloaded and all(t.nbytes >= 8 * 32 * 4 for t in transform.offloaded)
    transform = _OffloadEverywhere(min_bytes=8 * 32 * 4 + 1)
    with pytest.warns(CPUOffloadWarning):
        _check_against_eager(MLP, (torch.randn(8, 32),), transform)
    assert transform.offloaded == []


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="min_bytes"):
        CPUOffload(min_bytes=-1)
    with pytest.raises(ValueError, match="max_copies_in_flight"):
        CPUOffload(max_copies_in_flight=0)


# --- on CUDA ---------------------------------------------------------------------------------------------


@needs_cuda
def test_mlp_gradients_match_eager_with_real_offload():
    transform = CPUOffload(min_bytes=0)
    jmodel = _check_against_eager(lambda: MLP(64).cuda(), (torch.randn(128, 64, device="cuda"),), transform)
    assert transform.offloaded
    forward = thunder.last_traces(jmodel)[-1]
    offloaded = {t.name for t in transform.offloaded}
    assert all(t.device.type == "cpu" for t in forward.output[1] if isinstance(t, torch.Tensor) and
               t.name.removesuffix("_host") in offloaded)  # fmt: skip


def _llama(config):
    from benchmarks.models import Llama

    return Llama(config).cuda()


def _llama_inputs(config, batch):
    return (torch.randint(0, config.vocab_size, (batch, config.max_seq_len), device="cuda"),
            torch.randint(0, config.vocab_size, (batch, config.max_seq_len), device="cuda"))  # fmt: skip


@needs_cuda
def test_llama_gradients_match_eager_with_real_offload():
    from benchmarks.models import LlamaConfig

    config = LlamaConfig.preset("tiny", n_layer=2, max_seq_len=64, dim=64, hidden_dim=128)
    transform = CPUOffload(min_bytes=0)
    _check_against_eager(lambda: _llama(config), _llama_inputs(config, 4), transform, atol=1e-4, rtol=1e-4)
    assert transform.offloaded


def _peak_step_bytes(model, inputs, transforms) -> int:
    jmodel = thunder.jit(model, transforms=transforms)
    jmodel(*inputs).backward()  # compile first: the peak of interest is a step's
    model.zero_grad(set_to_none=False)  # gradients stay allocated in both measurements
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    jmodel(*inputs).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


@needs_cuda
def test_llama_train_step_peak_memory_falls_by_the_offloaded_activations():
    from benchmarks.models import LlamaConfig

    # activations dominate: long sequences, a narrow model
    config = LlamaConfig.preset("tiny", n_layer=4, dim=256, n_head=4, n_kv_head=2, hidden_dim=688, max_seq_len=512,
                                vocab_size=512)  # fmt: skip
    inputs = _llama_inputs(config, 8)
    torch.manual_seed(0)
    model = _llama(config)
    baseline = _peak_step_bytes(model, inputs, [])
    transform = CPUOffload()
    offloaded = _peak_step_bytes(model, inputs, [transform])
    largest = max(t.nbytes for t in transform.offloaded)
    # In the backward the tensor in use and up to max_copies_in_flight (2) prefetched ones are on the device; in
    # the forward at most 2 copies are pending: a few of the largest tensors at most.
    slack = 3 * largest
    print(f"peak without offload {baseline / 2**20:.1f} MiB, with {offloaded / 2**20:.1f} MiB, offloaded "
          f"{transform.offloaded_bytes / 2**20:.1f} MiB in {len(transform.offloaded)} tensors (largest "
          f"{largest / 2**20:.1f} MiB)")  # fmt: skip
    assert transform.offloaded_bytes > 10 * largest  # many activations, so the slack is a small part
    assert baseline - offloaded >= transform.offloaded_bytes - slack
