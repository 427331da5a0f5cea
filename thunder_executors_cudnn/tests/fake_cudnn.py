"""A stand-in for the parts of cudnn-frontend's graph API that `thunder_executors_cudnn.graphs` uses, for tests
without a GPU: it records the graph (tensors with their uids, dims, strides, dtypes; the operation and its
arguments) and, at execute, checks that every buffer bound to a uid has the dims, strides and dtype declared for
it, then computes the outputs in float32 with PyTorch. What it checks is the plumbing (declarations, uids, the
order of the buffers, layouts, the arguments each operation receives); cuDNN's numerics are checked on the GPU.

The method and argument names are those of cudnn-frontend 1.32 (`cudnn.pygraph`), read from its wheel."""

from __future__ import annotations

import enum

import torch

data_type = enum.Enum("data_type", "HALF BFLOAT16 FLOAT INT64 INT32")
heur_mode = enum.Enum("heur_mode", "A B FALLBACK")
diagonal_alignment = enum.Enum("diagonal_alignment", "TOP_LEFT BOTTOM_RIGHT")
norm_forward_phase = enum.Enum("norm_forward_phase", "TRAINING INFERENCE")
_TORCH = {data_type.HALF: torch.float16, data_type.BFLOAT16: torch.bfloat16, data_type.FLOAT: torch.float32,
          data_type.INT64: torch.int64}  # fmt: skip
__version__ = "1.32.0-fake"
built: list[pygraph] = []


def backend_version() -> int:
    return 91000


def create_handle():
    return object()


def set_stream(handle=None, stream=None):
    pass


class Tensor:
    def __init__(self, name, dim=None, stride=None, data_type=None, uid=None, is_pass_by_value=False):
        self.name, self.dim, self.stride, self.data_type = name, dim, stride, data_type
        self.uid, self.is_output, self.is_pass_by_value = uid, False, is_pass_by_value

    def set_uid(self, uid):
        self.uid = uid
        return self

    def set_output(self, value):
        self.is_output = value
        return self

    def set_dim(self, dim):
        self.dim = list(dim)
        return self

    def set_stride(self, stride):
        self.stride = list(stride)
        return self

    def set_data_type(self, dtype):
        self.data_type = dtype
        return self


class pygraph:
    def __init__(self, handle=None, io_data_type=None, intermediate_data_type=None, compute_data_type=None):
        assert intermediate_data_type == data_type.FLOAT and compute_data_type == data_type.FLOAT
        self.tensors, self.op, self.stage = [], None, "new"
        built.append(self)

    def tensor(self, name, dim, stride, data_type, uid, is_pass_by_value=False):
        t = Tensor(name, list(dim), list(stride), data_type, uid, is_pass_by_value)
        self.tensors.append(t)
        return t

    def _node(self, op, inputs: dict, outputs: list[str], **params):
        assert self.op is None, "one operation per graph"
        self.op, self.inputs, self.params = op, inputs, params
        self.outputs = [Tensor(f"{op}::{o}") for o in outputs]
        self.tensors += self.outputs
        return self.outputs

    def sdpa(self, name, q, k, v, generate_stats, attn_scale, bias=None, dropout=None, diagonal_alignment=None,
             diagonal_band_right_bound=None):  # fmt: skip
        assert generate_stats is True
        return self._node("sdpa", dict(q=q, k=k, v=v, bias=bias), ["O", "Stats"], attn_scale=attn_scale,
                          dropout=dropout, causal=_causal(diagonal_alignment, diagonal_band_right_bound))  # fmt: skip

    def sdpa_backward(self, name, q, k, v, o, dO, stats, attn_scale, use_deterministic_algorithm, bias=None,
                      dropout=None, diagonal_alignment=None, diagonal_band_right_bound=None):  # fmt: skip
        return self._node("sdpa_backward", dict(q=q, k=k, v=v, o=o, dO=dO, stats=stats, bias=bias), ["dQ", "dK", "dV"],
                          attn_scale=attn_scale, dropout=dropout,
                          causal=_causal(diagonal_alignment, diagonal_band_right_bound))  # fmt: skip

    def layernorm(self, name, norm_forward_phase, input, scale, bias, epsilon):
        assert norm_forward_phase == norm_forward_phase.TRAINING
        return self._node("layernorm", dict(x=input, scale=scale, bias=bias, eps=epsilon), ["Y", "mean", "inv_var"])

    def layernorm_backward(self, name, grad, input, scale, mean, inv_variance):
        return self._node("layernorm_backward", dict(dy=grad, x=input, scale=scale, mean=mean, rstd=inv_variance),
                          ["DX", "DScale", "DBias"])  # fmt: skip

    def rmsnorm(self, name, norm_forward_phase, input, scale, epsilon):
        return self._node("rmsnorm", dict(x=input, scale=scale, eps=epsilon), ["Y", "inv_var"])

    def rmsnorm_backward(self, name, grad, input, scale, inv_variance, has_dbias):
        assert has_dbias is False
        outputs = self._node("rmsnorm_backward", dict(dy=grad, x=input, scale=scale, rstd=inv_variance),
                             ["DX", "DScale"])  # fmt: skip
        return [*outputs, None]

    def _advance(self, expected, following):
        assert self.stage == expected, f"graph calls out of order: {following} after {self.stage}"
        self.stage = following

    def validate(self):
        self._advance("new", "validated")

    def build_operation_graph(self):
        self._advance("validated", "operation graph")

    def create_execution_plans(self, modes):
        self._advance("operation graph", "plans")

    def check_support(self):
        self._advance("plans", "supported")

    def build_plans(self):
        self._advance("supported", "built")

    def get_workspace_size(self):
        return 16

    def execute(self, buffers, workspace, handle=None, tensor_uids=None):
        assert self.stage == "built" and workspace.dtype == torch.uint8 and workspace.numel() >= 16
        assert len(buffers) == len(tensor_uids) == len(set(tensor_uids))
        by_uid = dict(zip(tensor_uids, buffers))
        declared = {t.uid: t for t in self.tensors if t.uid is not None}
        assert set(by_uid) == set(declared), f"bound uids {sorted(by_uid)}, declared {sorted(declared)}"
        for uid, buffer in by_uid.items():
            t = declared[uid]
            assert list(buffer.shape) == t.dim, f"{t.name}: buffer {tuple(buffer.shape)}, declared {t.dim}"
            assert list(buffer.stride()) == t.stride, f"{t.name}: buffer strides {buffer.stride()}, declared {t.stride}"
            assert buffer.dtype == _TORCH[t.data_type], f"{t.name}: buffer {buffer.dtype}, declared {t.data_type}"
            if t.is_pass_by_value:
                assert buffer.device.type == "cpu" and buffer.numel() == 1, f"{t.name}: not a host scalar"
        assert all(o is None or o.is_output for o in self.outputs)
        value = {name: (None if t is None else by_uid[t.uid]) for name, t in self.inputs.items()}
        if self.params.get("dropout") is not None:
            value["seed"], value["offset"] = (by_uid[t.uid] for t in self.params["dropout"][1:])
        results = _COMPUTE[self.op](value, self.params)
        for out, result in zip(self.outputs, results):
            if out is not None:
                by_uid[out.uid].copy_(result)


def _causal(alignment, right_bound) -> bool:
    if right_bound is None:
        return False
    assert alignment == diagonal_alignment.TOP_LEFT and right_bound == 0
    return True


def _attention(v, p, leaves=None):
    q, k, vv = leaves or (v["q"].float(), v["k"].float(), v["v"].float())
    groups = q.shape[1] // k.shape[1]
    k, vv = k.repeat_interleave(groups, 1), vv.repeat_interleave(groups, 1)
    scores = q @ k.transpose(-2, -1) * p["attn_scale"]
    if v["bias"] is not None:
        scores = scores + v["bias"].float()
    if p["causal"]:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1), -torch.inf)
    stats = torch.logsumexp(scores, -1, keepdim=True)
    probs = torch.exp(scores - stats)
    if p["dropout"] is not None:
        probability = p["dropout"][0]
        assert isinstance(probability, float) and isinstance(p["dropout"][1], Tensor)
        generator = torch.Generator().manual_seed((int(v["seed"].item()) * 1000003 + int(v["offset"].item())) % 2**62)
        probs = probs * (torch.rand(probs.shape, generator=generator) >= probability)
        probs = probs / (1 - probability)
    return probs @ vv, stats


def _sdpa_backward(v, p):
    leaves = [v[n].detach().float().requires_grad_() for n in ("q", "k", "v")]
    with torch.enable_grad():
        out, _ = _attention(v, p, leaves)
        return torch.autograd.grad(out, leaves, v["dO"].float())


def _layernorm(v, p):
    x = v["x"].float()
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    rstd = torch.rsqrt(var + v["eps"].item())
    return (x - mean) * rstd * v["scale"] + v["bias"], mean, rstd


def _layernorm_backward(v, p):
    x, dy = v["x"].float(), v["dy"].float()
    xhat = (x - v["mean"]) * v["rstd"]
    g = dy * v["scale"].float()
    dx = v["rstd"] * (g - g.mean(1, keepdim=True) - xhat * (g * xhat).mean(1, keepdim=True))
    return dx, (dy * xhat).sum(0, keepdim=True), dy.sum(0, keepdim=True)


def _rmsnorm(v, p):
    x = v["x"].float()
    rstd = torch.rsqrt(x.pow(2).mean(1, keepdim=True) + v["eps"].item())
    return x * rstd * v["scale"].float(), rstd


def _rmsnorm_backward(v, p):
    x, dy = v["x"].float(), v["dy"].float()
    xhat = x * v["rstd"]
    g = dy * v["scale"].float()
    return v["rstd"] * (g - xhat * (g * xhat).mean(1, keepdim=True)), (dy * xhat).sum(0, keepdim=True)


_COMPUTE = {"sdpa": _attention, "sdpa_backward": _sdpa_backward, "layernorm": _layernorm,
            "layernorm_backward": _layernorm_backward, "rmsnorm": _rmsnorm, "rmsnorm_backward": _rmsnorm_backward}  # fmt: skip
