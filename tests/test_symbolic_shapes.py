"""cache="symbolic values": tensor sizes are symbols of the trace (thunder.frontend.symbolic_shapes).

Every test compares with eager on each call and counts compilations through thunder's cache statistics: a new
length must reuse the program while the relations the program relied on still hold, and compile again (never
return a wrong result) when one of them fails.
"""

from __future__ import annotations

import pytest
import torch

import thunder


def _jit(fn, **kwargs):
    return thunder.jit(fn, cache="symbolic values", **kwargs)


def _check(fn, shape_lists, *, grad=False, dtype=torch.float64):
    """Calls jit(fn) on inputs of each list of shapes; compares outputs (and input gradients) with eager."""
    jf = _jit(fn)
    for shapes in shape_lists:
        inputs = [torch.randn(*s, dtype=dtype) for s in shapes]
        args = [x.clone().requires_grad_(grad) for x in inputs]
        ref_args = [x.clone().requires_grad_(grad) for x in inputs]
        out, ref = jf(*args), fn(*ref_args)
        torch.testing.assert_close(out, ref)
        if grad:
            out.sum().backward()
            ref.sum().backward()
            for a, r in zip(args, ref_args):
                torch.testing.assert_close(a.grad, r.grad)
    return jf


SEQ_LENGTHS = ((2, 3), (4, 5), (3, 7), (6, 4), (5, 9))  # no slice below leaves a length of 1
CASES = {
    "elementwise": (lambda x, y: (x * y).sin() + x.exp() / 2, lambda b, s: ((b, s), (b, s))),
    "broadcast": (lambda x, y: x + y, lambda b, s: ((b, s), (s,))),
    "reductions": (lambda x: x.sum(-1) * x.mean(0).sum() + x.amax(1), lambda b, s: ((b, s),)),
    "softmax": (lambda x: torch.softmax(x, -1) + torch.log_softmax(x, 0), lambda b, s: ((b, s),)),
    "matmul": (lambda x, y: x @ y, lambda b, s: ((b, s), (s, 4))),
    "batched_matmul": (lambda x, y: torch.matmul(x, y.transpose(-1, -2)), lambda b, s: ((2, b, s), (2, 3, s))),
    "reshape_minus_one": (lambda x: x.reshape(x.shape[0], -1, 2).sum(1), lambda b, s: ((b, s, 2),)),
    "view_flat": (lambda x: x.view(-1) * 2, lambda b, s: ((b, s),)),
    "cat": (lambda x, y: torch.cat([x, y], 1).cos(), lambda b, s: ((b, s), (b, 3))),
    "slicing": (lambda x: x[:, 1:] * 2 + x[:, :-1], lambda b, s: ((b, s),)),
    "half_of_last_dim": (lambda x: torch.cat([-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]], -1),
                         lambda b, s: ((b, 2 * s),)),
    "index_last": (lambda x: x[:, -1] + x[0], lambda b, s: ((b, b),)),
    "new_zeros_of_a_size": (lambda x: x + x.new_zeros(x.shape[0], x.shape[1]), lambda b, s: ((b, s),)),
    "factories": (lambda x: x + torch.zeros(x.shape[0], x.shape[1]) + torch.ones(x.shape, dtype=x.dtype)
                  + torch.full((x.shape[0], x.shape[1]), 2.0) + x.new_zeros(x.shape),
                  lambda b, s: ((b, s),)),
    "arange": (lambda x: x * torch.arange(x.shape[1], dtype=x.dtype) + torch.arange(1, x.shape[0] + 1)[:, None],
               lambda b, s: ((b, s),)),
    "expand": (lambda x, y: x.expand(y.shape[0], -1, -1) + y, lambda b, s: ((1, b, s), (3, b, s))),
}


@pytest.mark.parametrize("grad", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_common_ops_compile_once_for_five_sizes(case, grad):
    fn, shapes = CASES[case]
    jf = _check(fn, [shapes(b, s) for b, s in SEQ_LENGTHS], grad=grad)
    assert thunder.cache_misses(jf) == 1, f"{case}: {thunder.cache_misses(jf)} compilations for 5 sizes"
    assert thunder.cache_hits(jf) == len(SEQ_LENGTHS) - 1


def test_sizes_are_names_in_the_trace():
    jf = _jit(lambda x: x.reshape(x.shape[0], -1).sum(-1))
    x = torch.randn(3, 4, 5)
    jf(x)
    source = str(thunder.last_traces(jf)[0])
    assert "sizes_of(x)" in source and f'x: "{x.device} f32[s0, s1, s2]"' in source


class _Block(torch.nn.Module):
    """A pre-norm transformer block: attention with a causal mask (reshapes by head), then an MLP."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.qkv, self.proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(c, dim=-1)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / (c // self.heads) ** 0.5
        mask = x.new_ones(t, t, dtype=torch.bool).tril()
        attn = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


def test_transformer_block_forward_and_backward_at_five_sequence_lengths_compiles_once():
    torch.manual_seed(0)
    model = _Block().double()
    reference = _Block().double()
    reference.load_state_dict(model.state_dict())
    jm = thunder.jit(model, cache="symbolic values")
    for t in (3, 5, 8, 11, 16):
        x = torch.randn(2, t, 16, dtype=torch.float64)
        out, ref = jm(x), reference(x)
        torch.testing.assert_close(out, ref)
        out.square().sum().backward()
        ref.square().sum().backward()
        for (name, p), r in zip(model.named_parameters(), reference.parameters()):
            torch.testing.assert_close(p.grad, r.grad, msg=name)
    assert thunder.cache_misses(jm) == 1


# -- guard failures compile again and give eager's result ------------------------------------------------------
def test_reshape_that_needed_divisibility_recompiles():
    def f(x):
        return x.reshape(-1, 4).sum(0)

    jf = _jit(f)
    for n in (8, 12, 16):  # multiples of 4: one program
        x = torch.randn(n)
        torch.testing.assert_close(jf(x), f(x))
    assert thunder.cache_misses(jf) == 1
    x = torch.randn(10)
    with pytest.raises(RuntimeError, match="invalid"):  # eager refuses too
        f(x)
    # the divisibility guard fails, so it traces again (instead of running the program) and refuses like eager
    with pytest.raises(RuntimeError, match="invalid"):
        jf(x)
    x = torch.randn(20)
    torch.testing.assert_close(jf(x), f(x))  # the first program still serves multiples of 4
    assert thunder.cache_misses(jf) == 1


def test_a_dim_that_becomes_one_broadcasts_like_eager():
    def f(x, y):
        return x * y

    jf = _jit(f)
    x = torch.randn(4, 3)
    for y in (torch.randn(4, 3), torch.randn(1, 3), torch.randn(4, 1), torch.randn(7, 4, 3), torch.randn(9, 5, 3)):
        x = torch.randn(*y.shape[-2:-1] if y.shape[-2] != 1 else (4,), 3)
        torch.testing.assert_close(jf(x, y), f(x, y))
    # one per pattern of size-1 dims and rank: (4, 3), (1, 3), (4, 1), then (7, 4, 3) and (9, 5, 3) share one
    assert thunder.cache_misses(jf) == 4


def test_a_branch_on_a_size_guards_its_outcome():
    def f(x):
        if x.shape[0] > 4:
            return x.sum(0)
        return x.mean(0)

    jf = _jit(f)
    for n in (2, 3, 6, 9, 4, 5):
        x = torch.randn(n, 3)
        torch.testing.assert_close(jf(x), f(x))
    assert thunder.cache_misses(jf) == 2  # n > 4 and n <= 4


def test_equal_dims_relied_on_recompile_when_they_differ():
    def f(x, y):
        return x @ y if x.shape[1] == y.shape[0] else x.sum() + y.sum()

    jf = _jit(f)
    for a, b in (((3, 4), (4, 5)), ((6, 7), (7, 2)), ((3, 4), (5, 6)), ((2, 8), (8, 3))):
        x, y = torch.randn(*a), torch.randn(*b)
        torch.testing.assert_close(jf(x, y), f(x, y))
    assert thunder.cache_misses(jf) == 2


def test_a_size_used_as_a_python_int_guards_its_value():
    def f(x):
        return x * len(range(x.shape[0]))  # range() needs the int itself

    jf = _jit(f)
    for n in (3, 5, 3):
        x = torch.randn(n)
        torch.testing.assert_close(jf(x), f(x))
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (2, 1)


def test_size_queries_through_torch_functions_are_symbolic_or_guarded():
    def f(x):
        # torch.numel and Tensor.size called as functions reach the tracer, not the proxy's own methods
        n = torch.numel(x)
        rows = torch.Tensor.size(x, 0)
        strided = x.stride(0)  # a stride is computed from the sizes: their values are guarded
        return x.reshape(-1) * n + rows + strided

    jf = _jit(f)
    for shape in ((3, 4), (5, 6), (3, 4)):
        x = torch.randn(*shape)
        torch.testing.assert_close(jf(x), f(x))
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (2, 1)


def test_non_contiguous_inputs_keep_static_sizes():
    def f(x):
        return x.reshape(-1) + 1

    jf = _jit(f)
    for n in (3, 5):
        x = torch.randn(4, n).t()
        torch.testing.assert_close(jf(x), f(x))
    assert thunder.cache_misses(jf) == 2


def test_default_cache_still_specializes_sizes():
    jf = thunder.jit(lambda x: x * 2)
    jf(torch.randn(3))
    jf(torch.randn(4))
    assert thunder.cache_misses(jf) == 2
    assert "sizes_of" not in str(thunder.last_traces(jf)[0])


def test_duplicate_tensor_arguments_guard_the_right_input():
    # the numbers after a tensor passed twice are read at their own position among the call's inputs
    def f(x, y, n):
        return x + y if n > 0 else x - y

    jf = _jit(f)
    t = torch.randn(3)
    for n in (1, -1, 2):
        torch.testing.assert_close(jf(t, t, n), f(t, t, n))
    assert thunder.cache_misses(jf) == 2


# -- greedy decoding with Hugging Face's DynamicCache -------------------------------------------------------------
NEW_TOKENS = 20
# The bound: the prompt compiles one program (an empty cache); every decoding step after it has the same
# relations between sizes (one new token, a cache and a mask that grow by one), so all 19 reuse a second one.
MAX_DECODE_COMPILATIONS = 2


def _tiny_llama(attn: str):
    transformers = pytest.importorskip("transformers", reason="the decoding test needs Hugging Face transformers")
    from transformers import DynamicCache
    from transformers.exporters.exporter_dynamo import register_pytree_node

    try:  # the cache's tensors become inputs of the trace (what torch.export asks of such inputs)
        register_pytree_node(DynamicCache)
    except ValueError:  # registered already (tests/models registers it too)
        pass
    config = transformers.LlamaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        attn_implementation=attn,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval(), DynamicCache


def _greedy_tokens(model, cache_class, prompt, mask):
    cache = cache_class(config=model.config)
    input_ids, tokens = prompt, []
    for _ in range(NEW_TOKENS):
        output = model(input_ids=input_ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        cache = output.past_key_values
        input_ids = output.logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(input_ids)
        mask = torch.cat([mask, torch.ones_like(input_ids)], dim=1)
    return torch.cat(tokens, dim=1)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_greedy_decoding_with_a_dynamic_cache_compiles_a_bounded_number_of_times(attn):
    import copy

    model, cache_class = _tiny_llama(attn)
    prompt = torch.randint(3, 100, (2, 5))
    mask = torch.ones_like(prompt)
    with torch.no_grad():
        expected = _greedy_tokens(copy.deepcopy(model), cache_class, prompt, mask)
        jitted = thunder.jit(model, cache="symbolic values")
        actual = _greedy_tokens(jitted, cache_class, prompt, mask)
    assert torch.equal(actual, expected), f"jitted {actual.tolist()} != eager {expected.tolist()}"
    assert thunder.cache_misses(jitted) <= MAX_DECODE_COMPILATIONS, (
        f"{thunder.cache_misses(jitted)} compilations for {NEW_TOKENS} tokens"
    )
    assert thunder.cache_hits(jitted) >= NEW_TOKENS - MAX_DECODE_COMPILATIONS


def test_torchcompile_regions_compile_per_concrete_shape_under_one_trace():
    from thunder.extend import get_executor

    torchcompile = get_executor("torchcompile")
    def f(x, y):
        return ((x * y).sin() + 1).cos()

    jf = _jit(f, executors=["torchcompile"])
    before = torchcompile.compilations
    for n in (5, 7, 5, 7):
        x, y = torch.randn(3, n), torch.randn(3, n)
        torch.testing.assert_close(jf(x, y), f(x, y))
    assert thunder.cache_misses(jf) == 1  # one trace, guards and all
    assert torchcompile.compilations - before == 2  # Inductor specializes underneath: one per concrete shape


def test_compiled_guards_compare_float_values_by_bits():
    import math

    def f(x, s):
        return x * math.copysign(1.0, s)  # needs the float itself: its value (by bits) is guarded

    jf = _jit(f)
    x = torch.randn(3)
    for s in (0.0, -0.0, 0.0, 2.5):
        torch.testing.assert_close(jf(x, s), f(x, s), rtol=0, atol=0)
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (3, 1)


def test_printed_trace_runs_on_other_sizes():
    def f(x, y):
        return (x @ y).reshape(-1).softmax(0)

    jf = _jit(f)
    jf(torch.randn(3, 4), torch.randn(4, 5))
    final = thunder.last_traces(jf)[-1]
    namespace = dict(final.python_ctx())
    exec(final.python(), namespace)
    x, y = torch.randn(6, 7), torch.randn(7, 2)
    torch.testing.assert_close(namespace["computation"](x, y)[0], f(x, y))
