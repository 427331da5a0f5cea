"""Backends: each turns a plain callable (a function or an ``nn.Module``) into the callable that is timed.

A backend spec is a name plus options: ``eager``, ``torchcompile`` (optionally a ``torch.compile`` mode) and
``thunder`` (optionally an explicit executor list, passed by name to ``thunder.jit(fn, executors=[...])``;
``None`` means Thunder's default executors). Several thunder variants may run side by side; their rows
are named ``thunder[default]``, ``thunder[torchcompile,sdpa]``...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendSpec:
    kind: str  # "eager" | "torchcompile" | "thunder"
    executors: tuple[str, ...] | None = None  # thunder only; None = thunder's defaults
    compile_mode: str | None = None  # torchcompile only: torch.compile(mode=...)
    transforms: tuple[str, ...] = ()  # thunder only: transforms by name, thunder.jit(fn, transforms=[...])

    @property
    def name(self) -> str:
        if self.kind == "thunder":
            name = f"thunder[{','.join(self.executors) if self.executors is not None else 'default'}]"
            return "+".join((name, *self.transforms))
        if self.kind == "torchcompile" and self.compile_mode:
            return f"torchcompile[{self.compile_mode}]"
        return self.kind

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "executors": list(self.executors) if self.executors is not None else None,
            "compile_mode": self.compile_mode,
            "transforms": list(self.transforms),
        }

    @classmethod
    def from_json(cls, d: dict) -> BackendSpec:
        ex = d.get("executors")
        return cls(d["kind"], tuple(ex) if ex is not None else None, d.get("compile_mode"), tuple(d.get("transforms", ())))


BACKEND_KINDS = ("eager", "torchcompile", "thunder")


def parse_thunder_variant(text: str) -> tuple[str, ...] | None:
    """``"default"`` or ``""`` -> None (thunder's defaults); ``"torchcompile,sdpa"`` -> ("torchcompile", "sdpa").
    Transforms after ``+`` are not part of the executor list (see ``parse_thunder_transforms``)."""
    text = text.split("+")[0].strip()
    if text in ("", "default"):
        return None
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse_thunder_transforms(text: str) -> tuple[str, ...]:
    """The transforms named after the executor list: ``"default+cudagraphs"`` -> ("cudagraphs",)."""
    return tuple(name.strip() for name in text.split("+")[1:] if name.strip())


def prepare(spec: BackendSpec) -> None:
    """Import the backend's library (done before memory is measured; its time is reported as ``import_s``)."""
    # Every backend: constructing a torch.optim optimizer imports torch._dynamo (about 120 MiB of RSS on the
    # CPU); the train-step rows of eager and thunder counted it in their peak memory, torchcompile's did not.
    import torch._dynamo  # noqa: F401

    if spec.kind == "thunder" and "torchcompile" in (spec.executors or ()):
        import torch._inductor.compile_fx  # noqa: F401  (the torchcompile executor's compiler, as below)
    if spec.kind == "torchcompile":
        import torch._dynamo  # noqa: F401
        import torch._inductor.compile_fx  # noqa: F401
    elif spec.kind == "thunder":
        import thunder  # noqa: F401


def wrap(spec: BackendSpec, fn: Callable) -> Callable:
    """The callable to time. Compilation is lazy in every backend: it happens at the first call."""
    if spec.kind == "eager":
        return fn
    if spec.kind == "torchcompile":
        import torch

        return torch.compile(fn, mode=spec.compile_mode) if spec.compile_mode else torch.compile(fn)
    if spec.kind == "thunder":
        import thunder

        executors = list(spec.executors) if spec.executors is not None else None
        return thunder.jit(fn, executors=executors, transforms=list(spec.transforms) or None)
    raise ValueError(f"unknown backend {spec.kind!r}; choose from {BACKEND_KINDS}")
