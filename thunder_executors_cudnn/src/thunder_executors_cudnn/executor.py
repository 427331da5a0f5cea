"""The `cudnn` executor: its operators, the Thunder operations it claims, and their gradients.

Attention: `thunder.torch.scaled_dot_product_attention`, where `checkers.sdpa_checker` accepts the call, runs as
`sdpa_fwd` (one cuDNN graph returning the output and the softmax statistics); its grad transform pairs it with
`sdpa_bwd`, which recomputes the attention matrix from q, k and the statistics, so the forward saves only its
inputs, the output and the statistics (float32 [B, H, S_q, 1]), never an S_q x S_kv matrix. Around the graphs,
traced Thunder operations (fused by the fusion executors) prepare what cuDNN takes:

- a mask becomes a 4-d additive bias ``[1|B, 1|H, S_q, S_kv]`` of the query's dtype: a boolean mask's False, and
  an additive mask's -inf, become the dtype's lowest finite value; rows that the mask hides entirely then give
  zeros (their output, and their gradient, are zeroed), as torch's attention gives for them;
- dropout draws its (seed, offset) from torch's generator with `dropout_seed` (an operation tagged random, run
  once per call, never recomputed): the backward regenerates the forward's mask from them.

LayerNorm and RMSNorm run as cuDNN graphs only when the executor option ``enable_norms`` is on
(``thunder.jit(fn, executors=[...], executor_options={"cudnn": {"enable_norms": True}})``): a pass before
autodiff then rewrites the calls its checkers accept into this executor's `layer_norm` and `rms_norm` operators.
Off (the default) until a benchmark shows them faster than the alternatives in the executor list.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import thunder.torch as ltorch
from thunder.core.trace import torch_tracing, tracectx
from thunder.extend import BEFORE_AUTODIFF, ExecutorOption, OperatorExecutor, OpTag, TensorProxy, get_grad, put_grad
from thunder_executors_cudnn import __version__, checkers, graphs

ENABLE_NORMS = ExecutorOption("enable_norms", bool, False, "run LayerNorm and RMSNorm (forward and backward) as cuDNN "
                              "graphs; off until measured faster than the alternatives")  # fmt: skip

ex = OperatorExecutor("cudnn", version=__version__, options=[ENABLE_NORMS])


# -- attention operators -------------------------------------------------------------------------------------------
# The implementations look the graph functions up on `graphs` when called, so that tests without a GPU can stand a
# reference implementation in for them.


def _sdpa_fwd_meta(query, key, value, bias, seed, offset, dropout_p, is_causal, scale):
    out = TensorProxy(like=query, shape=(*query.shape[:-1], value.shape[-1]), requires_grad=False)
    stats = TensorProxy(like=query, shape=(*query.shape[:-1], 1), dtype=torch.float32, requires_grad=False)
    return out, stats


def _sdpa_bwd_meta(grad, query, key, value, out, stats, bias, seed, offset, dropout_p, is_causal, scale):
    return tuple(TensorProxy(like=t, requires_grad=False) for t in (query, key, value))


def _dropout_seed_meta(query, draws):
    return tuple(TensorProxy(like=query, shape=(1, 1, 1, 1), dtype=torch.int64, requires_grad=False) for _ in range(2))


sdpa_fwd = ex.register_operator("sdpa_fwd", meta=_sdpa_fwd_meta, fn=lambda *args: graphs.sdpa_forward(*args))
sdpa_bwd = ex.register_operator("sdpa_bwd", meta=_sdpa_bwd_meta, fn=lambda *args: graphs.sdpa_backward(*args))
#: (seed, offset) of one attention's dropout, drawn from torch's generator (see graphs.draw_dropout_seed).
dropout_seed = ex.register_operator("dropout_seed", meta=_dropout_seed_meta, tags=(OpTag.RANDOM,),
                                    fn=lambda query, draws: graphs.draw_dropout_seed(query, draws))  # fmt: skip


def _lowest(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).min)


def _attention_bias(attn_mask, query, key):
    """(bias, live_rows): the mask as cuDNN's additive bias, and which query rows it leaves anything to attend to
    (None where every row is live). See the module docstring for the treatment of -inf."""
    if attn_mask is None:
        return None, None
    mask = ltorch.reshape(attn_mask, (1,) * (4 - attn_mask.ndim) + tuple(attn_mask.shape))
    lowest = _lowest(query.dtype)
    if mask.dtype == torch.bool:
        live_rows = ltorch.any(mask, -1, True)
        bias = ltorch.to(ltorch.where(mask, 0.0, lowest), query.dtype)
    else:
        live_rows = ltorch.any(ltorch.ne(mask, -math.inf), -1, True)
        bias = ltorch.clamp(mask, lowest)
    shape = (mask.shape[0], mask.shape[1], query.shape[2], key.shape[2])  # cuDNN broadcasts batch and heads only
    bias = ltorch.contiguous(ltorch.expand(bias, shape))
    return bias, live_rows


def _dropout_state(query, key, dropout_p):
    if dropout_p <= 0:
        return None, None
    draws = query.shape[0] * query.shape[1] * query.shape[2] * key.shape[2]
    return dropout_seed(query, draws)


def _scale(query, scale) -> float:
    return 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)


def _attention_forward(query, key, value, attn_mask, dropout_p, is_causal, scale):
    """Traced: the cuDNN forward and what surrounds it. Returns (output, raw output, stats, saved state)."""
    bias, live_rows = _attention_bias(attn_mask, query, key)
    seed, offset = _dropout_state(query, key, dropout_p)
    scale = _scale(query, scale)
    raw, stats = sdpa_fwd(query, key, value, bias, seed, offset, float(dropout_p), bool(is_causal), scale)
    out = raw if live_rows is None else ltorch.where(live_rows, raw, 0.0)
    return out, raw, stats, (bias, live_rows, seed, offset, scale)


def _sdpa_execution(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    out, *_ = _attention_forward(query, key, value, attn_mask, dropout_p, is_causal, scale)
    return out


def _sdpa_grad(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    out, raw, stats, (bias, live_rows, seed, offset, scale) = _attention_forward(query, key, value, attn_mask,
                                                                                 dropout_p, is_causal, scale)  # fmt: skip
    grad = get_grad(out)
    if live_rows is not None:
        grad = ltorch.where(live_rows, grad, 0.0)
    grad_q, grad_k, grad_v = sdpa_bwd(grad, query, key, value, raw, stats, bias, seed, offset, float(dropout_p),
                                      bool(is_causal), scale)  # fmt: skip
    put_grad(query, grad_q)
    put_grad(key, grad_k)
    put_grad(value, grad_v)
    return out


ex.register_implementation(ltorch.scaled_dot_product_attention, checker=checkers.sdpa_checker,
                           execution_transform=_sdpa_execution, grad_transform=_sdpa_grad,
                           grad_checker=checkers.sdpa_grad_checker)  # fmt: skip


# -- LayerNorm and RMSNorm (behind `enable_norms`) -----------------------------------------------------------------


def _rms_eps(eps) -> float:
    # torch's default: the machine epsilon of the computation dtype, float32 for every dtype claimed here
    return float(torch.finfo(torch.float32).eps) if eps is None else float(eps)


def _rows_stat(x) -> TensorProxy:
    return TensorProxy(like=x, shape=(x.numel() // x.shape[-1], 1, 1, 1), dtype=torch.float32, requires_grad=False)


def _fresh(t, dtype=None) -> TensorProxy:
    return TensorProxy(like=t, dtype=dtype or t.dtype, requires_grad=False)


def _layer_norm_bwd_meta(grad, x, weight, mean, rstd):
    param = TensorProxy(like=x, shape=(x.shape[-1],), dtype=torch.float32, requires_grad=False)
    return _fresh(x), param, _fresh(param)


layer_norm_fwd = ex.register_operator(
    "layer_norm_fwd", meta=lambda x, weight, bias, eps: (_fresh(x), _rows_stat(x), _rows_stat(x)),
    fn=lambda *args: graphs.layer_norm_forward(*args))  # fmt: skip
layer_norm_bwd = ex.register_operator("layer_norm_bwd", meta=_layer_norm_bwd_meta,
                                      fn=lambda *args: graphs.layer_norm_backward(*args))  # fmt: skip
rms_norm_fwd = ex.register_operator("rms_norm_fwd", meta=lambda x, weight, eps: (_fresh(x), _rows_stat(x)),
                                    fn=lambda *args: graphs.rms_norm_forward(*args))  # fmt: skip
rms_norm_bwd = ex.register_operator(
    "rms_norm_bwd", meta=lambda grad, x, weight, rstd: (_fresh(x), TensorProxy(like=x, shape=(x.shape[-1],),
                                                                               requires_grad=False)),
    fn=lambda *args: graphs.rms_norm_backward(*args))  # fmt: skip


def _layer_norm_impl(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return graphs.layer_norm_forward(input, weight, bias, float(eps))[0]


def _rms_norm_impl(input, normalized_shape, weight=None, eps=None):
    return graphs.rms_norm_forward(input, weight, _rms_eps(eps))[0]


#: LayerNorm over the last dimension on cuDNN (what the `enable_norms` pass puts in place of `layer_norm`).
layer_norm = ex.register_operator("layer_norm", like=F.layer_norm, fn=_layer_norm_impl)
#: RMSNorm over the last dimension on cuDNN (what the `enable_norms` pass puts in place of `rms_norm`).
rms_norm = ex.register_operator("rms_norm", like=F.rms_norm, fn=_rms_norm_impl)


def _layer_norm_exec(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return layer_norm_fwd(input, weight, bias, float(eps))[0]


def _layer_norm_grad(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    out, mean, rstd = layer_norm_fwd(input, weight, bias, float(eps))
    grad_x, grad_w, grad_b = layer_norm_bwd(get_grad(out), input, weight, mean, rstd)
    put_grad(input, grad_x)
    if weight is not None:
        put_grad(weight, ltorch.to(grad_w, weight.dtype))
    if bias is not None:
        put_grad(bias, ltorch.to(grad_b, bias.dtype))
    return out


def _rms_norm_exec(input, normalized_shape, weight=None, eps=None):
    return rms_norm_fwd(input, weight, _rms_eps(eps))[0]


def _rms_norm_grad(input, normalized_shape, weight=None, eps=None):
    out, rstd = rms_norm_fwd(input, weight, _rms_eps(eps))
    grad_x, grad_w = rms_norm_bwd(get_grad(out), input, weight, rstd)
    put_grad(input, grad_x)
    if weight is not None:
        put_grad(weight, grad_w)
    return out


ex.register_implementation(layer_norm, checker=checkers.layer_norm_checker, execution_transform=_layer_norm_exec,
                           grad_transform=_layer_norm_grad)  # fmt: skip
ex.register_implementation(rms_norm, checker=checkers.rms_norm_checker, execution_transform=_rms_norm_exec,
                           grad_transform=_rms_norm_grad)  # fmt: skip

_NORM_REWRITES = {ltorch.layer_norm.id: (layer_norm, checkers.layer_norm_checker),
                  ltorch.rms_norm.id: (rms_norm, checkers.rms_norm_checker)}  # fmt: skip


def route_norms_to_cudnn(trace, context):
    """Before autodiff, with ``enable_norms`` on: each `layer_norm`/`rms_norm` call the checkers accept becomes
    this executor's operator of the same signature (so that autodiff uses its grad transform); else unchanged."""
    if not context.options.get("enable_norms", False):
        return trace
    matches = [i for i, b in enumerate(trace.bound_symbols)
               if b.sym.id in _NORM_REWRITES and _NORM_REWRITES[b.sym.id][1](*b.args, **b.kwargs)]  # fmt: skip
    if not matches:
        return trace
    new = trace.from_trace("cudnn: LayerNorm and RMSNorm on cuDNN", [])
    for index, bsym in enumerate(trace.bound_symbols):
        if index not in matches:
            new.bound_symbols.append(bsym)
            continue
        operator = _NORM_REWRITES[bsym.sym.id][0]
        with tracectx(new), new.collecting() as recorded, torch_tracing():
            out = operator(*bsym.args, **bsym.kwargs)
        new.bound_symbols.extend(b.swap_proxies({out.name: bsym.output}) for b in recorded)
    return new


ex.register_pass(route_norms_to_cudnn, stage=BEFORE_AUTODIFF, name="LayerNorm and RMSNorm on cuDNN")
