"""CUDA graphs (thunder.transforms.cudagraph): the trace rewrite on any device, the graphs themselves on CUDA.

On the CPU: the transform by name and as the "reduce-overhead" bundle, its warning and pass-through on a CPU
program, and the rewrite (which operations a region takes, where the graph splits) run with an eager runner
standing in for the graph. On CUDA (skipped with "needs CUDA" elsewhere): forward and backward of an MLP and of
a Llama-style model against eager, recapture on new shapes, earlier outputs and saved tensors never clobbered
by later replays, in-place inputs and parameters updated in place, and the fallback when a capture fails.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.core.symbol import OpTag
from thunder.transforms.cudagraph import CUDAGraphTransform, CUDAGraphWarning, graph_regions, graphable

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _mlp(x, w1, w2):
    return F.linear(torch.tanh(F.linear(x, w1)), w2).sum(-1)


def _cudagraph_symbols(trace):
    return [b for b in trace.bound_symbols if b.sym.id.startswith("cudagraph.")]


# --- on any device: the rewrite ----------------------------------------------------------------------------


class _EagerRegions(thunder.Transform):
    """The rewrite of CUDAGraphTransform on the test's device, each region run by its own program (no graph)."""

    def __init__(self, device):
        self.device = device
        self.regions = []

    def transform_trace_post_optimization(self, trace, **kwargs):
        def runner(region, index):
            self.regions.append(region)
            return region.as_trace(f"region{index}").python_callable()

        return graph_regions(trace, lambda b: graphable(b, self.device), runner)


def test_regions_hold_the_program_and_match_eager(device):
    x, w1, w2 = (torch.randn(s, device=device) for s in ((8, 16), (32, 16), (4, 32)))
    w1.requires_grad_(True)
    rewrite = _EagerRegions(device)
    jfn = thunder.jit(_mlp, transforms=[rewrite])
    out = jfn(x, w1, w2)
    out.sum().backward()
    expected_w1 = w1.detach().clone().requires_grad_(True)
    expected = _mlp(x, expected_w1, w2)
    expected.sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(w1.grad, expected_w1.grad)
    # the whole forward and the whole backward are one region each
    assert len(_cudagraph_symbols(thunder.last_traces(jfn)[-1])) == 1
    assert len(_cudagraph_symbols(thunder.last_backward_traces(jfn)[-1])) == 1


def test_random_operations_split_the_region(device):
    def fn(x):
        y = torch.sin(x) * 2
        return F.dropout(y, 0.5, training=True).cos() + y

    rewrite = _EagerRegions(device)
    # without a fusion executor: nvFuser (the CUDA default) would fuse the draw with its neighbours, and a fusion
    # that draws is kept out of the graphs whole
    jfn = thunder.jit(fn, executors=[], transforms=[rewrite])
    x = torch.randn(64, device=device)
    torch.manual_seed(1)
    out = jfn(x)
    torch.manual_seed(1)
    torch.testing.assert_close(out, fn(x))  # the mask is the one eager draws: the random op ran outside the graphs
    for region in rewrite.regions:
        assert not any(OpTag.RANDOM in b.sym.tags for b in region.bound_symbols)
    assert len(rewrite.regions) >= 2


def test_an_in_place_write_into_an_input_is_captured(device):
    def fn(x, cache):
        cache.mul_(0.5).add_(x)
        return cache.sum()

    rewrite = _EagerRegions(device)
    jfn = thunder.jit(fn, transforms=[rewrite])
    x, cache = torch.randn(5, device=device), torch.randn(5, device=device)
    expected_cache = cache.clone()
    out = jfn(x, cache)
    expected = fn(x, expected_cache)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(cache, expected_cache)
    assert len(rewrite.regions) == 1
    assert any(OpTag.DEVICE_WRITE in b.sym.tags for b in rewrite.regions[0].bound_symbols)


def test_claimed_operations_keep_their_properties():
    def fn(x, cache):
        cache.add_(F.dropout(x, 0.5))
        return cache

    jfn = thunder.jit(fn, executors=[])  # no fusion executor (nvFuser on CUDA) hides the operations in a fusion
    jfn(torch.randn(4), torch.zeros(4))
    tags = [b.sym.tags for b in thunder.last_traces(jfn)[-1].bound_symbols]
    assert any(OpTag.RANDOM in t for t in tags)
    assert any(OpTag.SIDE_EFFECT in t and OpTag.DEVICE_WRITE in t for t in tags)


@pytest.mark.cpu_only(reason="the CPU program's pass-through")
def test_a_cpu_program_runs_unchanged_with_one_warning():
    jfn = thunder.jit(_mlp, transforms=["cudagraphs"])
    x, w1, w2 = torch.randn(8, 16), torch.randn(32, 16, requires_grad=True), torch.randn(4, 32)
    with pytest.warns(CUDAGraphWarning, match="no CUDA operation"):
        out = jfn(x, w1, w2)
    out.sum().backward()
    torch.testing.assert_close(out, _mlp(x, w1, w2))
    assert not _cudagraph_symbols(thunder.last_traces(jfn)[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CUDAGraphWarning)  # once per transform, not per trace or call
        jfn(torch.randn(3, 16), w1, w2)


def test_offered_by_name_and_as_the_reduce_overhead_bundle():
    jfn = thunder.jit(_mlp, transforms=["cudagraphs"])
    assert any(isinstance(t, CUDAGraphTransform) for t in jfn.transforms)
    assert isinstance(CUDAGraphTransform(), thunder.Transform)
    bundle = thunder.extend.get_plugin_bundle("reduce-overhead")
    assert [type(factory()) for factory in bundle.transforms] == [CUDAGraphTransform]


# --- on CUDA: the graphs ----------------------------------------------------------------------------------


def _train_step(model, *inputs):
    out = model(*inputs)
    loss = out if out.ndim == 0 else out.float().square().mean()
    loss.backward()
    return out.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _check_matches_eager(make_model, make_inputs, steps=3, **tolerance):
    torch.manual_seed(0)
    model, reference = make_model(), make_model()
    reference.load_state_dict(model.state_dict())
    transform = CUDAGraphTransform()
    jmodel = thunder.jit(model, transforms=[transform])
    for _ in range(steps):
        inputs = make_inputs()
        model.zero_grad(set_to_none=True)
        reference.zero_grad(set_to_none=True)
        out, grads = _train_step(jmodel, *inputs)
        expected, expected_grads = _train_step(reference, *inputs)
        torch.testing.assert_close(out, expected, **tolerance)
        for name, grad in grads.items():
            torch.testing.assert_close(grad, expected_grads[name], **tolerance)
    return transform


@needs_cuda
def test_mlp_forward_and_backward_match_eager():
    def make_model():
        return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 8)).cuda()

    transform = _check_matches_eager(make_model, lambda: (torch.randn(16, 32, device="cuda"),))
    assert transform.stats.regions >= 2  # at least one in the forward, one in the backward
    assert transform.stats.captures == transform.stats.regions  # each captured once, in the first step
    assert transform.stats.replays == 2 * transform.stats.regions  # and replayed in the two steps after
    assert transform.stats.fallbacks == 0


@needs_cuda
def test_llama_style_model_forward_and_backward_match_eager():
    from benchmarks.models import Llama, LlamaConfig

    config = LlamaConfig.preset("tiny", n_layer=2)

    def make_inputs():
        return (torch.randint(0, config.vocab_size, (2, 16), device="cuda"),
                torch.randint(0, config.vocab_size, (2, 16), device="cuda"))  # fmt: skip

    transform = _check_matches_eager(lambda: Llama(config).cuda(), make_inputs, atol=1e-4, rtol=1e-4)
    assert transform.stats.captures >= 2 and transform.stats.replays >= 4
    assert transform.stats.fallbacks == 0


@needs_cuda
def test_inference_replays_and_matches_eager():
    model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).cuda()
    transform = CUDAGraphTransform()
    jmodel = thunder.jit(model, transforms=[transform])
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(8, 32, device="cuda")
            torch.testing.assert_close(jmodel(x), model(x))
    assert (transform.stats.captures, transform.stats.replays) == (1, 2)
    assert len(_cudagraph_symbols(thunder.last_traces(jmodel)[-1])) == 1


@needs_cuda
def test_new_shapes_capture_new_graphs_and_old_ones_are_reused():
    transform = CUDAGraphTransform()
    jfn = thunder.jit(lambda x, w: torch.tanh(x @ w), transforms=[transform])
    w = torch.randn(16, 16, device="cuda")
    for batch in (4, 8, 4, 8):
        x = torch.randn(batch, 16, device="cuda")
        torch.testing.assert_close(jfn(x, w), torch.tanh(x @ w))
    assert (transform.stats.captures, transform.stats.replays) == (2, 2)
    # a new layout (a transposed input) is a new signature too
    x = torch.randn(16, 4, device="cuda").t()
    torch.testing.assert_close(jfn(x, w), torch.tanh(x @ w))
    assert transform.stats.captures == 3


@needs_cuda
def test_a_new_parameter_tensor_captures_a_new_graph():
    # the graph reads parameters where they are: a parameter replaced by another tensor needs another graph
    model = torch.nn.Linear(8, 8).cuda()
    transform = CUDAGraphTransform()
    jmodel = thunder.jit(model, transforms=[transform])
    x = torch.randn(4, 8, device="cuda")
    with torch.no_grad():
        jmodel(x)
        jmodel(x)
        assert (transform.stats.captures, transform.stats.replays) == (1, 1)
        model.weight = torch.nn.Parameter(torch.randn(8, 8, device="cuda"))
        torch.testing.assert_close(jmodel(x), model(x))
        torch.testing.assert_close(jmodel(x), model(x))
    assert (transform.stats.captures, transform.stats.replays) == (2, 2)


@needs_cuda
def test_outputs_of_earlier_calls_are_not_overwritten():
    jfn = thunder.jit(lambda x: (x * 2).sin(), transforms=["cudagraphs"])
    xs = [torch.randn(32, device="cuda") for _ in range(4)]
    outs = [jfn(x) for x in xs]
    for x, out in zip(xs, outs):
        torch.testing.assert_close(out, (x * 2).sin())


@needs_cuda
def test_two_forwards_then_two_backwards_keep_their_saved_tensors():
    # the second forward's replay must not overwrite what the first forward saved for its backward
    w = torch.randn(16, 16, device="cuda", requires_grad=True)
    jfn = thunder.jit(lambda x, w: torch.tanh(x @ w).square().sum(), transforms=["cudagraphs"])
    xs = [torch.randn(8, 16, device="cuda") for _ in range(3)]
    jfn(xs[2], w).backward()  # capture both graphs first
    w.grad = None
    losses = [jfn(x, w) for x in xs[:2]]
    (losses[0] + losses[1]).backward()
    expected_w = w.detach().clone().requires_grad_(True)
    sum(torch.tanh(x @ expected_w).square().sum() for x in xs[:2]).backward()
    torch.testing.assert_close(w.grad, expected_w.grad)


@needs_cuda
def test_gradients_accumulate_across_replays():
    w = torch.randn(8, 8, device="cuda", requires_grad=True)
    jfn = thunder.jit(lambda x, w: (x @ w).sin().sum(), transforms=["cudagraphs"])
    xs = [torch.randn(4, 8, device="cuda") for _ in range(3)]
    for x in xs:
        jfn(x, w).backward()  # .grad may keep the first gradient tensor it gets: a replay must not change it
    expected_w = w.detach().clone().requires_grad_(True)
    for x in xs:
        (x @ expected_w).sin().sum().backward()
    torch.testing.assert_close(w.grad, expected_w.grad)


@needs_cuda
def test_in_place_updates_of_an_input_and_of_parameters_are_seen():
    model = torch.nn.Linear(8, 8).cuda()
    reference = torch.nn.Linear(8, 8).cuda()
    reference.load_state_dict(model.state_dict())
    jmodel = thunder.jit(model, transforms=["cudagraphs"])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(4, 8, device="cuda")
        for m, opt in ((jmodel, optimizer), (reference, reference_optimizer)):
            opt.zero_grad()
            m(x).square().sum().backward()
            opt.step()  # in place: the graph reads the parameters where they are
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)

    def accumulate(x, cache):
        cache.add_(x)
        return cache * 2

    jfn = thunder.jit(accumulate, transforms=["cudagraphs"])
    cache, expected_cache = torch.zeros(6, device="cuda"), torch.zeros(6, device="cuda")
    for _ in range(3):
        x = torch.randn(6, device="cuda")
        torch.testing.assert_close(jfn(x, cache), accumulate(x, expected_cache))
        torch.testing.assert_close(cache, expected_cache)


@needs_cuda
def test_cpu_operations_split_the_graph():
    def fn(x, scale_cpu):
        y = torch.sin(x)
        z = (scale_cpu * 3).to("cuda")  # a CPU computation in the middle
        return torch.cos(y * z)

    transform = CUDAGraphTransform()
    jfn = thunder.jit(fn, transforms=[transform])
    for _ in range(2):
        x, s = torch.randn(16, device="cuda"), torch.randn(16)
        torch.testing.assert_close(jfn(x, s), fn(x, s))
    trace = thunder.last_traces(jfn)[-1]
    assert len(_cudagraph_symbols(trace)) >= 1
    for b in _cudagraph_symbols(trace):
        assert all(p.device.type == "cuda" for p in (*b.flat_args, *b.flat_outs))


@needs_cuda
def test_a_failing_capture_warns_once_and_runs_without_a_graph():
    from thunder.extend import OperatorExecutor, TensorProxy, deregister_executor, register_executor

    ex = OperatorExecutor("cudagraph_sync_test")

    def synchronizing(x):
        return x * float(x.sum().item() != 0.5)  # .item() waits for the GPU: not allowed while capturing

    op = ex.register_operator("synchronizing", meta=lambda x: TensorProxy(like=x), fn=synchronizing)
    register_executor(ex)
    try:
        transform = CUDAGraphTransform()
        jfn = thunder.jit(lambda x: op(torch.sin(x)) + 1, executors=[ex], transforms=[transform])
        xs = [torch.randn(8, device="cuda") for _ in range(3)]
        with pytest.warns(CUDAGraphWarning, match="capturing CUDAGraph0 failed"):
            out = jfn(xs[0])
        torch.testing.assert_close(out, synchronizing(torch.sin(xs[0])) + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CUDAGraphWarning)
            for x in xs[1:]:
                torch.testing.assert_close(jfn(x), synchronizing(torch.sin(x)) + 1)
        assert transform.stats.fallbacks == 1 and transform.stats.replays == 0
        # the failed capture left the random number generator as it was: random ops run, and draw what they
        # drew before the capture was tried
        torch.manual_seed(3)
        expected = torch.rand(4, device="cuda")
        torch.manual_seed(3)
        torch.testing.assert_close(torch.rand(4, device="cuda"), expected)
    finally:
        deregister_executor(ex)
