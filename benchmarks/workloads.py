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

from benchmarks.kernels import ATTENTION_CASES, build_kernel_case
from benchmarks.models import GPT, Chain, GPTConfig, HFLlama, Llama, LlamaConfig, LlamaDecodeStep, llama3_config

SIZES = ("tiny", "small", "full")
MODES = ("train", "inference")


@dataclass
class Case:
    workload: str
    case: str
    fn: Callable  # a function or an nn.Module; the backend wraps it
    args: tuple  # positional inputs
    kind: str  # "overhead": per-call time over many calls; "step": one forward (+ backward) per step;
    # "train-step": fn is a whole training step (forward, backward, optimizer step, zero_grad) returning the loss
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
    default: bool = True  # in the default --workloads list


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
        Workload("llama3", ("llama3",), MODES, "step",
                 "Llama-3-8B's width (dim 4096, 32 heads, 8 KV heads, hidden 14336, vocab 128256), 2 layers, seq 4096, "
                 "batch 1", default=False),
        Workload("hf_llama", ("hf_llama",), MODES, "step",
                 "transformers' LlamaForCausalLM from a config with the llama workload's dimensions", default=False),
        Workload("cross_entropy", ("cross_entropy",), MODES, "step",
                 "kernel: F.cross_entropy of (tokens, vocab) logits, full 8192 x 50257", default=False),
        Workload("linear_ce", ("linear_ce",), MODES, "step",
                 "kernel: cross-entropy of a linear layer's logits, full 8192 tokens, 768 -> 50257", default=False),
        Workload("rms_norm", ("rms_norm",), MODES, "step", "kernel: F.rms_norm, full 8192 x 4096", default=False),
        Workload("attention", ATTENTION_CASES, MODES, "step",
                 "kernel: causal SDPA, full batch 8, 16 heads, head dim 64/128, seq 1024/2048/4096", default=False),
    )
}
#: workloads run when --workloads is not given; `kernels` in --workloads stands for the kernel workloads,
#: `all` for every workload
DEFAULT_WORKLOADS = tuple(name for name, w in WORKLOADS.items() if w.default)
KERNEL_WORKLOADS = ("cross_entropy", "linear_ce", "rms_norm", "attention")

# chain: (rows, cols) of x; w and b have cols elements
CHAIN_SHAPES = {"tiny": (8, 128), "small": (4096, 1024), "full": (65536, 1024)}
WORKLOADS["train-step"] = Workload(
    "train-step",
    ("adamw", "adamw-fused"),
    ("train",),
    "train-step",
    "the whole Llama training step as one callable: forward, loss.backward(), AdamW step, zero_grad; case "
    "adamw-fused uses torch's fused=True AdamW (its eager row is torch's fused optimizer)",
)


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

    if workload in KERNEL_WORKLOADS:
        return build_kernel_case(Case, workload, case, size, mode, dev, dtype)

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

    if workload == "train-step":
        return _train_step_case(case, size, dev, dtype)

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
    elif workload in ("llama", "llama3", "hf_llama"):
        cfg = llama3_config(size) if workload == "llama3" else LlamaConfig.preset(size)
        with dev:
            model = _prepare_module((HFLlama if workload == "hf_llama" else Llama)(cfg), mode, dtype)
            idx = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len))
            targets = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len))
    else:  # pragma: no cover - guarded above
        raise AssertionError(workload)

    n_params = sum(p.numel() for p in model.parameters())
    info = {"config": dataclasses.asdict(cfg), "params": n_params}
    if mode == "train":
        return Case(workload, case, model, (idx, targets), "step", None, _module_grads(model), info)
    return Case(workload, case, model, (idx,), "step", info=info)


def _train_step_case(case: str, size: str, dev: torch.device, dtype: torch.dtype) -> Case:
    """A Llama training step closed over its model and AdamW optimizer; the backend wraps the step itself."""
    cfg = LlamaConfig.preset(size)
    with dev:
        model = _prepare_module(Llama(cfg), "train", dtype)
        idx = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len))
        targets = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.max_seq_len))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, fused=case == "adamw-fused")

    def train_step(idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = model(idx, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    info = {"config": dataclasses.asdict(cfg), "params": sum(p.numel() for p in model.parameters()),
            "optimizer": "AdamW(fused=True)" if case == "adamw-fused" else "AdamW"}  # fmt: skip
    # compared with eager after the same number of steps: the parameters (no .grad is left after the step)
    return Case("train-step", case, train_step, (idx, targets), "train-step", None, _module_grads(model), info)


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
