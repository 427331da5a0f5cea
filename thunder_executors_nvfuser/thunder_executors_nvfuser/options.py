"""The nvFuser executor's options: typed, validated, with defaults.

`NvFuserOptions` is a frozen dataclass so that it can be part of a cache key. Until `thunder.jit` takes
`executor_options={"nvfuser": {...}}`, an executor with other options is made by `ex.with_options(...)`
and passed in the executor list in place of the name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class NvFuserOptions:
    """Options of the `nvfuser` executor.

    enable_matmul: fuse `matmul` and `linear` into regions (nvFuser runs them with its own matmul support);
        off by default, since cuBLAS through the torch executor has not been measured slower.
    enable_random: translate `uniform`, `randn` and `bernoulli` (dropout) to nvFuser's Philox generator, seeded
        from torch's CUDA generator; off, they stay with the torch executor.
    own_grad_rules: differentiate layer_norm, softmax, log_softmax, gelu and silu with rules written in primitives
        (grads.py), which nvFuser fuses with their neighbours, instead of the torch executor's aten backward kernels.
    max_fusion_ops: the most primitives one nvFuser fusion holds; a longer region runs as several fusions in a
        row. Very large fusions are where nvFuser's segmenter has failed (INTERNAL ASSERT) in training steps.
    """

    enable_matmul: bool = False
    enable_random: bool = True
    own_grad_rules: bool = True
    max_fusion_ops: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = bool if f.type in ("bool", bool) else int
            if type(value) is not expected:
                raise TypeError(f"nvfuser option {f.name} must be a {expected.__name__}, got {value!r}")
        if self.max_fusion_ops < 1:
            raise ValueError(f"nvfuser option max_fusion_ops must be at least 1, got {self.max_fusion_ops}")

    @classmethod
    def from_dict(cls, values: dict) -> NvFuserOptions:
        """Options from a dict (`executor_options["nvfuser"]`); an unknown key is an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"unknown nvfuser options {sorted(unknown)}; the options are {sorted(known)}")
        return cls(**values)


_HELP = {
    "enable_matmul": "fuse matmul and linear into regions (off: cuBLAS through the torch executor)",
    "enable_random": "run uniform/randn/bernoulli (dropout) on nvFuser's Philox generator",
    "own_grad_rules": "differentiate layer_norm, softmax, gelu, silu with prim rules nvFuser fuses "
    "(only through ex.with_options: the rules are registered with the executor)",
    "max_fusion_ops": "the most primitives one nvFuser fusion holds; longer regions run as several fusions",
}


def declared_options(defaults: NvFuserOptions) -> list:
    """The options as Thunder's `executor_options={"nvfuser": {...}}` takes them (validated at jit time, listed by
    `python -m thunder plugins --options`), with `defaults`' values as their defaults."""
    from thunder.extend import ExecutorOption

    return [ExecutorOption(f.name, bool if f.type in ("bool", bool) else int, getattr(defaults, f.name), _HELP[f.name])
            for f in fields(NvFuserOptions)]  # fmt: skip
