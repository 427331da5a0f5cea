"""The cuDNN graphs: attention forward and backward, LayerNorm and RMSNorm forward and backward, through
cudnn-frontend's Python graph API (`cudnn.pygraph`, as in cudnn-frontend 1.32).

Each function takes and returns torch tensors. A graph is built (validate, build_operation_graph,
create_execution_plans, check_support, build_plans) the first time a signature is seen: the shapes, strides and
dtypes of its tensors, the device, and the options baked into the graph (causal, scale, dropout probability, the
presence of a bias). Later calls with the same signature reuse it (`GraphCache`, one per process, with hit and
miss counts for tests). cuDNN handles are per thread and device, bound to torch's current stream on every call.

A graph cuDNN refuses (an error while building it) is remembered as refused: that signature then runs in
PyTorch (`fallback.py`), after one `CudnnFallbackWarning`; attention with dropout raises instead.

Layouts: cuDNN reads any strides whose last dimension is dense (q, k, v as transposed views of [B, S, H, D]
projections are read in place); an operand with a strided last dimension, a broadcast (stride 0) dimension or a
base address that is not 16-byte aligned is copied first. Attention's output takes the query's layout, each
gradient its input's layout, so that the transposes around attention stay views.

cudnn-frontend is imported on first use, never at import time: the executor's claiming logic is importable (and
tested) on a machine without it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from thunder_executors_cudnn import fallback


class CudnnGraphError(RuntimeError):
    """cuDNN could not build or run a graph the executor's checker accepted."""


@dataclass
class GraphCache:
    """Built graphs by signature (or the CudnnGraphError of a signature cuDNN refused). `hits` and `misses` count
    lookups (a miss builds a graph)."""

    entries: dict = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_or_build(self, key: tuple, build):
        entry = self.entries.get(key)
        if entry is not None:
            self.hits += 1
            return entry
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                self.misses += 1
                try:
                    entry = build()
                except CudnnGraphError as refused:
                    entry = refused
                self.entries[key] = entry
            else:
                self.hits += 1
        return entry

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.hits = self.misses = 0


#: The process's graphs (see `GraphCache`).
graph_cache = GraphCache()
_local = threading.local()


@dataclass(frozen=True)
class BuiltGraph:
    graph: object
    workspace_size: int
    uids: tuple  # the uids of the tensors `execute` is given, in order


def _cudnn():
    import cudnn

    return cudnn


def _data_type(dtype: torch.dtype):
    cudnn = _cudnn()
    types = {torch.float16: cudnn.data_type.HALF, torch.bfloat16: cudnn.data_type.BFLOAT16,
             torch.float32: cudnn.data_type.FLOAT, torch.int64: cudnn.data_type.INT64}  # fmt: skip
    return types[dtype]


def _handle(device: torch.device):
    """This thread's cuDNN handle for `device`, on torch's current stream."""
    cudnn = _cudnn()
    handles = getattr(_local, "handles", None)
    if handles is None:
        handles = _local.handles = {}
    if device not in handles:
        with torch.cuda.device(device):
            handles[device] = cudnn.create_handle()
    cudnn.set_stream(handle=handles[device], stream=torch.cuda.current_stream(device).cuda_stream)
    return handles[device]


def _new_graph(device: torch.device, io_dtype: torch.dtype):
    cudnn = _cudnn()
    return cudnn.pygraph(handle=_handle(device), io_data_type=_data_type(io_dtype),
                         intermediate_data_type=cudnn.data_type.FLOAT,
                         compute_data_type=cudnn.data_type.FLOAT)  # fmt: skip


def _finish(graph, uids, what: str) -> BuiltGraph:
    """Builds the graph's plans; a failure names what was being built (the checker should not have let it in)."""
    cudnn = _cudnn()
    try:
        graph.validate()
        graph.build_operation_graph()
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        graph.check_support()
        graph.build_plans()
    except Exception as e:
        raise CudnnGraphError(
            f"cudnn executor: cuDNN {cudnn.backend_version()} cannot run {what}: {e}. Leave 'cudnn' out of "
            "thunder.jit(..., executors=[...]) for this program, and please report the case"
        ) from e
    return BuiltGraph(graph, int(graph.get_workspace_size()), tuple(int(u) for u in uids))


def _execute(built: BuiltGraph, device: torch.device, tensors) -> None:
    workspace = torch.empty(max(built.workspace_size, 1), dtype=torch.uint8, device=device)
    built.graph.execute(list(tensors), workspace, handle=_handle(device), tensor_uids=built.uids)


def _layout(t: torch.Tensor) -> tuple:
    return tuple(t.shape), tuple(t.stride()), t.dtype


def operand(t: torch.Tensor) -> torch.Tensor:
    """t as cuDNN reads it: dense last dimension, no broadcast dimension, 16-byte aligned base (a copy otherwise)."""
    broadcast = any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape))
    if t.stride(-1) != 1 or broadcast or t.data_ptr() % 16:
        return t.clone(memory_format=torch.contiguous_format)
    return t


def empty_like_layout(shape, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An empty tensor of `shape` whose dimensions are ordered in memory as `like`'s are."""
    order = sorted(range(like.ndim), key=lambda d: (like.stride(d), d))  # innermost first
    strides = [0] * like.ndim
    step = 1
    for d in order:
        strides[d] = step
        step *= shape[d]
    return torch.empty_strided(tuple(shape), tuple(strides), dtype=dtype or like.dtype, device=like.device)


# -- attention ---------------------------------------------------------------------------------------------------

# Tensor uids: inputs from 1, outputs from 100 (a tensor that is an output of one graph and an input of the next
# keeps its uid), so that no uid given here collides with one cudnn-frontend assigns to an output before set_uid.
_Q, _K, _V, _BIAS, _SEED, _OFFSET, _DO = range(1, 8)
_O, _STATS = 100, 101
_DQ, _DK, _DV = 200, 201, 202


def _attention_inputs(graph, q, k, v, bias, dropout_p: float):
    """The graph tensors of q, k, v (and bias, dropout state); returns (tensors, dict of sdpa arguments)."""
    cudnn = _cudnn()
    made = {}
    for uid, name, t in ((_Q, "q", q), (_K, "k", k), (_V, "v", v)):
        made[name] = graph.tensor(name=name, dim=list(t.shape), stride=list(t.stride()), data_type=_data_type(t.dtype),
                                  uid=uid)  # fmt: skip
    options = {}
    if bias is not None:
        options["bias"] = graph.tensor(name="bias", dim=list(bias.shape), stride=list(bias.stride()),
                                       data_type=_data_type(bias.dtype), uid=_BIAS)  # fmt: skip
    if dropout_p > 0:
        seed_t, offset_t = (graph.tensor(name=name, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1],
                                         data_type=cudnn.data_type.INT64, uid=uid)
                            for name, uid in (("seed", _SEED), ("offset", _OFFSET)))  # fmt: skip
        options["dropout"] = (float(dropout_p), seed_t, offset_t)
    return made, options


def _mask_options(is_causal: bool) -> dict:
    """Causal attention as cuDNN spells it: a diagonal band ending on the diagonal, aligned top-left (torch's
    `is_causal`, also where S_q != S_kv)."""
    if not is_causal:
        return {}
    cudnn = _cudnn()
    return {"diagonal_alignment": cudnn.diagonal_alignment.TOP_LEFT, "diagonal_band_right_bound": 0}


def _optional(bias, seed, offset, dropout_p):
    """The uids and tensors of the optional operands, in a fixed order."""
    pairs = [(_BIAS, bias)] if bias is not None else []
    if dropout_p > 0:
        pairs += [(_SEED, seed), (_OFFSET, offset)]
    return pairs


def _signature(*tensors) -> tuple:
    return tuple(None if t is None else _layout(t) for t in tensors)


def sdpa_forward(q, k, v, bias, seed, offset, dropout_p: float, is_causal: bool, scale: float):
    """Attention's output O (in q's layout) and softmax statistics [B, H, S_q, 1] (float32 logsumexp of each row
    of scaled, biased scores), for q [B, H, S_q, D], k [B, H_kv, S_kv, D], v [B, H_kv, S_kv, D_v]."""
    q, k, v = operand(q), operand(k), operand(v)
    bias = operand(bias) if bias is not None else None
    device = q.device
    o = empty_like_layout((*q.shape[:-1], v.shape[-1]), q)
    stats = torch.empty((*q.shape[:-1], 1), dtype=torch.float32, device=device)
    optional = _optional(bias, seed, offset, dropout_p)
    key = ("sdpa_fwd", device, _signature(q, k, v, o, bias), float(dropout_p), bool(is_causal), float(scale))

    def build() -> BuiltGraph:
        graph = _new_graph(device, q.dtype)
        made, options = _attention_inputs(graph, q, k, v, bias, dropout_p)
        out, lse = graph.sdpa(name="sdpa", q=made["q"], k=made["k"], v=made["v"], generate_stats=True,
                              attn_scale=float(scale), **options, **_mask_options(is_causal))  # fmt: skip
        out.set_uid(_O).set_output(True).set_dim(list(o.shape)).set_stride(list(o.stride())).set_data_type(
            _data_type(o.dtype))
        lse.set_uid(_STATS).set_output(True).set_dim(list(stats.shape)).set_stride(list(stats.stride())).set_data_type(
            _data_type(torch.float32))
        return _finish(graph, [_Q, _K, _V, _O, _STATS, *(u for u, _ in optional)], f"attention forward {key}")

    built = graph_cache.get_or_build(key, build)
    if isinstance(built, CudnnGraphError):
        if dropout_p > 0:  # PyTorch cannot draw cuDNN's dropout mask: no fallback
            raise built
        fallback.warn_once("attention forward", built)
        return fallback.sdpa_forward(q, k, v, bias, is_causal, scale)
    _execute(built, device, [q, k, v, o, stats, *(t for _, t in optional)])
    return o, stats


def sdpa_backward(grad, q, k, v, o, stats, bias, seed, offset, dropout_p: float, is_causal: bool, scale: float):
    """The gradients of q, k, v (each in its input's layout) from the forward's O and statistics."""
    q, k, v, o, stats = operand(q), operand(k), operand(v), operand(o), operand(stats)
    bias = operand(bias) if bias is not None else None
    grad = operand(grad)
    if grad.stride() != o.stride():  # dO is described with O's layout
        grad = empty_like_layout(o.shape, o).copy_(grad)
    device = q.device
    dq, dk, dv = (empty_like_layout(t.shape, t) for t in (q, k, v))
    deterministic = torch.are_deterministic_algorithms_enabled()
    optional = _optional(bias, seed, offset, dropout_p)
    key = ("sdpa_bwd", device, _signature(q, k, v, o, grad, stats, dq, dk, dv, bias), float(dropout_p),
           bool(is_causal), float(scale), deterministic)  # fmt: skip

    def build() -> BuiltGraph:
        graph = _new_graph(device, q.dtype)
        made, options = _attention_inputs(graph, q, k, v, bias, dropout_p)
        o_t = graph.tensor(name="o", dim=list(o.shape), stride=list(o.stride()), data_type=_data_type(o.dtype), uid=_O)
        do_t = graph.tensor(name="dO", dim=list(grad.shape), stride=list(grad.stride()),
                            data_type=_data_type(grad.dtype), uid=_DO)  # fmt: skip
        stats_t = graph.tensor(name="stats", dim=list(stats.shape), stride=list(stats.stride()),
                               data_type=_data_type(torch.float32), uid=_STATS)  # fmt: skip
        grads = graph.sdpa_backward(name="sdpa_backward", q=made["q"], k=made["k"], v=made["v"], o=o_t, dO=do_t,
                                    stats=stats_t, attn_scale=float(scale), use_deterministic_algorithm=deterministic,
                                    **options, **_mask_options(is_causal))  # fmt: skip
        for g, t, uid in zip(grads, (dq, dk, dv), (_DQ, _DK, _DV)):
            g.set_uid(uid).set_output(True).set_dim(list(t.shape)).set_stride(list(t.stride())).set_data_type(
                _data_type(t.dtype))
        uids = [_Q, _K, _V, _O, _DO, _STATS, _DQ, _DK, _DV, *(u for u, _ in optional)]
        return _finish(graph, uids, f"attention backward {key}")

    built = graph_cache.get_or_build(key, build)
    if isinstance(built, CudnnGraphError):
        if dropout_p > 0:
            raise built
        fallback.warn_once("attention backward", built)
        return fallback.sdpa_backward(grad, q, k, v, o, stats, bias, is_causal, scale)
    _execute(built, device, [q, k, v, o, grad, stats, dq, dk, dv, *(t for _, t in optional)])
    return dq, dk, dv


def draw_dropout_seed(q: torch.Tensor, draws: int):
    """(seed, offset) for one attention's dropout, as int64 tensors [1, 1, 1, 1] on q's device, from torch's
    generator of that device, which is advanced past `draws` random numbers: under `torch.manual_seed` the same
    program draws the same masks, and every later draw (torch's or cuDNN's) new ones."""
    if q.device.type == "cuda":
        index = q.device.index if q.device.index is not None else torch.cuda.current_device()
        generator = torch.cuda.default_generators[index]
        seed, offset = generator.initial_seed(), generator.get_offset()
        generator.set_offset(offset + (draws + 3) // 4 * 4)  # torch counts the offset in fours
        seed = seed - (1 << 64) if seed >= (1 << 63) else seed  # int64 holds the unsigned seed's bits
    else:  # only under tests without a GPU (with a stand-in for the graphs): a seed drawn from torch's CPU generator
        seed, offset = int(torch.randint(0, 2**62, ())), 0
    return (torch.full((1, 1, 1, 1), seed, dtype=torch.int64, device=q.device),
            torch.full((1, 1, 1, 1), offset, dtype=torch.int64, device=q.device))  # fmt: skip


# -- LayerNorm and RMSNorm -----------------------------------------------------------------------------------------
# Rows as cuDNN's normalization graphs take them: x [rows, N, 1, 1], scale and bias [1, N, 1, 1], statistics
# [rows, 1, 1, 1] in float32, epsilon a host scalar passed by value.

_X, _SCALE, _NBIAS, _EPS, _DY = range(1, 6)
_Y, _MEAN, _RSTD = 100, 101, 102
_DX, _DSCALE, _DBIAS = 200, 201, 202


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1], 1, 1).contiguous()


def _param(p, n: int, dtype: torch.dtype, fill: float, device) -> torch.Tensor:
    if p is None:
        return torch.full((1, n, 1, 1), fill, dtype=dtype, device=device)
    return p.to(dtype).reshape(1, n, 1, 1).contiguous()


def _eps_tensor(eps: float) -> torch.Tensor:
    return torch.tensor(float(eps), dtype=torch.float32).reshape(1, 1, 1, 1)


def _declare(graph, uid: int, name: str, t: torch.Tensor, **kwargs):
    return graph.tensor(name=name, dim=list(t.shape), stride=list(t.stride()), data_type=_data_type(t.dtype), uid=uid,
                        **kwargs)  # fmt: skip


def _set_output(t, uid: int, like: torch.Tensor) -> None:
    t.set_uid(uid).set_output(True).set_dim(list(like.shape)).set_stride(list(like.stride())).set_data_type(
        _data_type(like.dtype))


def _training_phase():
    return _cudnn().norm_forward_phase.TRAINING


def layer_norm_forward(x, weight, bias, eps: float):
    """LayerNorm of x over its last dimension: (y, mean, rstd), the statistics float32 [rows, 1, 1, 1]."""
    rows = _rows(x)
    n, device = x.shape[-1], x.device
    scale, shift = _param(weight, n, torch.float32, 1.0, device), _param(bias, n, torch.float32, 0.0, device)
    eps_t = _eps_tensor(eps)
    y = torch.empty_like(rows)
    mean, rstd = (torch.empty((rows.shape[0], 1, 1, 1), dtype=torch.float32, device=device) for _ in range(2))
    key = ("layer_norm_fwd", device, _signature(rows, scale, shift))

    def build() -> BuiltGraph:
        graph = _new_graph(device, x.dtype)
        y_t, mean_t, rstd_t = graph.layernorm(
            name="layernorm", norm_forward_phase=_training_phase(), input=_declare(graph, _X, "x", rows),
            scale=_declare(graph, _SCALE, "scale", scale), bias=_declare(graph, _NBIAS, "bias", shift),
            epsilon=_declare(graph, _EPS, "epsilon", eps_t, is_pass_by_value=True))  # fmt: skip
        for t, uid, like in ((y_t, _Y, y), (mean_t, _MEAN, mean), (rstd_t, _RSTD, rstd)):
            _set_output(t, uid, like)
        return _finish(graph, [_X, _SCALE, _NBIAS, _EPS, _Y, _MEAN, _RSTD], f"LayerNorm forward {key}")

    built = graph_cache.get_or_build(key, build)
    if isinstance(built, CudnnGraphError):
        fallback.warn_once("LayerNorm forward", built)
        return fallback.layer_norm_forward(x, weight, bias, eps)
    _execute(built, device, [rows, scale, shift, eps_t, y, mean, rstd])
    return y.reshape(x.shape), mean, rstd


def layer_norm_backward(grad, x, weight, mean, rstd):
    """The gradients of x, and of the weight and bias (float32 [N]), of LayerNorm."""
    rows, dy = _rows(x), _rows(grad)
    n, device = x.shape[-1], x.device
    scale = _param(weight, n, torch.float32, 1.0, device)
    mean, rstd = mean.contiguous(), rstd.contiguous()
    dx = torch.empty_like(rows)
    dscale, dbias = (torch.empty((1, n, 1, 1), dtype=torch.float32, device=device) for _ in range(2))
    key = ("layer_norm_bwd", device, _signature(dy, rows, scale, mean, rstd))

    def build() -> BuiltGraph:
        graph = _new_graph(device, x.dtype)
        dx_t, dscale_t, dbias_t = graph.layernorm_backward(
            name="layernorm_backward", grad=_declare(graph, _DY, "dy", dy), input=_declare(graph, _X, "x", rows),
            scale=_declare(graph, _SCALE, "scale", scale), mean=_declare(graph, _MEAN, "mean", mean),
            inv_variance=_declare(graph, _RSTD, "rstd", rstd))  # fmt: skip
        for t, uid, like in ((dx_t, _DX, dx), (dscale_t, _DSCALE, dscale), (dbias_t, _DBIAS, dbias)):
            _set_output(t, uid, like)
        return _finish(graph, [_DY, _X, _SCALE, _MEAN, _RSTD, _DX, _DSCALE, _DBIAS], f"LayerNorm backward {key}")

    built = graph_cache.get_or_build(key, build)
    if isinstance(built, CudnnGraphError):
        fallback.warn_once("LayerNorm backward", built)
        return fallback.layer_norm_backward(grad, x, weight, mean, rstd)
    _execute(built, device, [dy, rows, scale, mean, rstd, dx, dscale, dbias])
    return dx.reshape(x.shape), dscale.reshape(n), dbias.reshape(n)


def rms_norm_forward(x, weight, eps: float):
    """RMSNorm of x over its last dimension: (y, rstd), rstd float32 [rows, 1, 1, 1]."""
    rows = _rows(x)
    n, device = x.shape[-1], x.device
    scale = _param(weight, n, x.dtype, 1.0, device)
    eps_t = _eps_tensor(eps)
    y = torch.empty_like(rows)
    rstd = torch.empty((rows.shape[0], 1, 1, 1), dtype=torch.float32, device=device)
    key = ("rms_norm_fwd", device, _signature(rows, scale))

    def build() -> BuiltGraph:
        graph = _new_graph(device, x.dtype)
        y_t, rstd_t = graph.rmsnorm(
            name="rmsnorm", norm_forward_phase=_training_phase(), input=_declare(graph, _X, "x", rows),
            scale=_declare(graph, _SCALE, "scale", scale),
            epsilon=_declare(graph, _EPS, "epsilon", eps_t, is_pass_by_value=True))  # fmt: skip
        _set_output(y_t, _Y, y)
        _set_output(rstd_t, _RSTD, rstd)
        return _finish(graph, [_X, _SCALE, _EPS, _Y, _RSTD], f"RMSNorm forward {key}")

    built = graph_cache.get_or_build(key, build)
    if isinstance(built, CudnnGraphError):
        fallback.warn_once("RMSNorm forward", built)
        return fallback.rms_norm_forward(x, weight, eps)
    _execute(built, device, [rows, scale, eps_t, y, rstd])
    return y.reshape(x.shape), rstd


def rms_norm_backward(grad, x, weight, rstd):
    """The gradients of x and of the weight ([N], x's dtype) of RMSNorm."""
    rows, dy = _rows(x), _rows(grad)
    n, device = x.shape[-1], x.device
    scale = _param(weight, n, x.dtype, 1.0, device)
    rstd = rstd.contiguous()
    dx = torch.empty_like(rows)
    dscale = torch.empty((1, n, 1, 1), dtype=x.dtype, device=device)
    key = ("rms_norm_bwd", device, _signature(dy, rows, scale, rstd))

    def build() -> BuiltGraph:
        graph = _new_graph(device, x.dtype)
        dx_t, dscale_t, _ = graph.rmsnorm_backward(
            name="rmsnorm_backward", grad=_declare(graph, _DY, "dy", dy), input=_declare(graph, _X, "x", rows),
            scale=_declare(graph, _SCALE, "scale", scale), inv_variance=_declare(graph, _RSTD, "rstd", rstd),
            has_dbias=False)  # fmt: skip
        _set_output(dx_t, _DX, dx)
        _set_output(dscale_t, _DSCALE, dscale)
        return _finish(graph, [_DY, _X, _SCALE, _RSTD, _DX, _DSCALE], f"RMSNorm backward {key}")

    built = graph_cache.get_or_build(key, build)
    if isinstance(built, CudnnGraphError):
        fallback.warn_once("RMSNorm backward", built)
        return fallback.rms_norm_backward(grad, x, weight, rstd)
    _execute(built, device, [dy, rows, scale, rstd, dx, dscale])
    return dx.reshape(x.shape), dscale.reshape(n)
