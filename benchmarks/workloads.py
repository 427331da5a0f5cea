"""The benchmark workloads: what is run, on which inputs, at each size.

A workload has one or more *cases*; ``build_case`` turns (workload, case, size, mode, device, dtype, seed)
into a ``Case``: a plain callable (a function or an ``nn.Module``) and its inputs, built from a fixed seed,
so that building it twice gives identical weights and inputs (this is how the eager reference is made).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from benchmarks.models import GPT, Chain, GPTConfig, Llama, LlamaConfig, LlamaDecodeStep

SIZES = ("tiny", "small", "full")
MODES = ("train", "inference")


@dataclass
class Case:
    workload: str
    case: str
    fn: Callable  # a function or an nn.Module; the backend wraps it
    args: tuple  # positional inputs
    kind: str  # "overhead": per-call time over many calls; "step": one forward (+ backward) per step
    # train mode: the gradient fed to backward() when the output is not a scalar loss
    grad_out: torch.Tensor | None = None
    # train mode: the tensors whose .grad is filled by backward and compared with eager, by name
    grad_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # shapes and configuration, copied into the result row


@dataclass(frozen=True)
class Workload:
    name: str
    cases: tuple[str, ...]
    modes: tuple[str, ...]  # the modes it supports
    kind: str
    description: str


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "overhead",
            ("add", "elementwise10", "module10"),
            ("inference",),
            "overhead",
            "per-call overhead: a + b, 10 elementwise ops, and a module call (10 parameters, 5 attributes read by "
            "forward) on 2x2 tensors, no grad (microseconds per call)",
        ),
        Workload(
            "chain",
            ("chain",),
            MODES,
            "step",
            "memory-bound elementwise chain tanh(gelu(x*w+b)*sigmoid(x))+x (full 64M, small 4M, tiny 1024 elements)",
        ),
        Workload("gpt2", ("gpt2",), MODES, "step", "GPT-2 (nanoGPT), cross-entropy loss on random targets"),
        Workload("llama", ("llama",), MODES, "step", "Llama-style decoder: RMSNorm, RoPE, GQA, SwiGLU"),
        Workload(
            "decode",
            ("llama_decode",),
            ("inference",),
            "step",
            "one decoding step of the Llama-style model (batch of the preset, one token, static KV cache half full): "
            "launch-bound, the case for CUDA graphs",
        ),
    )
}

# chain: (rows, cols) of x; w and b have cols elements
CHAIN_SHAPES = {"tiny": (8, 128), "small": (4096, 1024), "full": (65536, 1024)}


# --------------------------------------------------------------------------------------------------
# overhead functions
# --------------------------------------------------------------------------------------------------


def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


def elementwise10(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    t = a + b
    t = t * b
    t = torch.sin(t)
    t = t - a
    t = torch.exp(t)
    t = torch.tanh(t)
    t = t * 0.5
    t = torch.sigmoid(t)
    t = t + a
    return torch.relu(t)


class TenParameters(nn.Module):
    """A module call's overhead: 10 parameters (inputs of the trace) and 5 plain attributes that forward reads
    (each one a per-call guard under thunder.jit)."""

    def __init__(self):
        super().__init__()
        for i in range(10):
            self.register_parameter(f"p{i}", nn.Parameter(torch.randn(2, 2)))
        self.scale, self.shift, self.use_relu, self.eps, self.repeats = 0.5, 1.0, True, 1e-6, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale + self.shift + self.eps
        y = y * self.p0 + self.p1 + self.p2 * self.p3 + self.p4 * self.p5 + self.p6 * self.p7 + self.p8 * self.p9
        y = y.repeat(self.repeats, 1)
        return torch.relu(y) if self.use_relu else y


OVERHEAD_FNS = {"add": add, "elementwise10": elementwise10}


# --------------------------------------------------------------------------------------------------
# building cases
# --------------------------------------------------------------------------------------------------


def _module_grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def _prepare_module(module: nn.Module, mode: str, dtype: torch.dtype) -> nn.Module:
    module = module.to(dtype=dtype)
    module.train(mode == "train")
    module.requires_grad_(mode == "train")
    return module


def build_case(workload: str, case: str, size: str, mode: str, device: str, dtype: torch.dtype, seed: int = 0) -> Case:
    """Build a case from a fixed seed: calling it twice gives identical weights and inputs."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose from {list(WORKLOADS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {SIZES}")
    torch.manual_seed(seed)
    dev = torch.device(device)

    if workload == "overhead" and case == "module10":
        module = _prepare_module(TenParameters().to(dev), "inference", dtype)
        x = torch.randn(2, 2, device=dev, dtype=dtype)
        return Case(workload, case, module, (x,), "overhead", info={"shape": [2, 2], "parameters": 10})
    if workload == "overhead":
        fn = OVERHEAD_FNS[case]
        a = torch.randn(2, 2, device=dev, dtype=dtype)
        b = torch.randn(2, 2, device=dev, dtype=dtype)
        return Case(workload, case, fn, (a, b), "overhead", info={"shape": [2, 2]})

    if workload == "chain":
        rows, cols = CHAIN_SHAPES[size]
        with dev:
            model = _prepare_module(Chain(cols), mode, dtype)
            x = torch.randn(rows, cols, dtype=dtype)
            grad_out = torch.randn(rows, cols, dtype=dtype) if mode == "train" else None
        grads = _module_grads(model) if mode == "train" else {}
        return Case(
            workload, case, model, (x,), "step", grad_out, grads, info={"shape": [rows, cols], "numel": rows * cols}
        )

    if workload == "decode":
        cfg = LlamaConfig.preset(size)
        with dev:
            model = _prepare_module(LlamaDecodeStep(Llama(cfg), cfg.batch_size), "inference", dtype)
            idx = torch.randint(0, cfg.vocab_size, (cfg.batch_size, 1))
            input_pos = torch.tensor([cfg.max_seq_len // 2])
        info = {"config": dataclasses.asdict(cfg), "params": sum(p.numel() for p in model.parameters())}
        return Case(workload, case, model, (idx, input_pos), "step", info=info)

    if workload == "gpt2":
        cfg = GPTConfig.preset(size)
        with dev:
            model = _prepare_module(GPT(cfg), mode, dtype)
            idx = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
            targets = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
    elif workload == "llama":
        cfg = LlamaConfig.preset(size)
        with dev:
            model = _prepare_module(Llama(cfg), mode, dtype)
            idx = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len))
            targets = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len))
    else:  # pragma: no cover - guarded above
        raise AssertionError(workload)

    n_params = sum(p.numel() for p in model.parameters())
    info = {"config": dataclasses.asdict(cfg), "params": n_params}
    if mode == "train":
        return Case(workload, case, model, (idx, targets), "step", None, _module_grads(model), info)
    return Case(workload, case, model, (idx,), "step", info=info)


def plan_rows(workloads: list[str], modes: list[str]) -> list[tuple[str, str, str]]:
    """(workload, case, mode) triples in a stable order. ``overhead`` runs once, in inference mode, whatever ``modes``."""
    rows = []
    for name in workloads:
        w = WORKLOADS[name]
        wmodes = [m for m in modes if m in w.modes] or list(w.modes)
        for case in w.cases:
            for mode in wmodes:
                rows.append((name, case, mode))
    return rows
