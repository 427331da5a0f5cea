"""Batching: re-records a per-example program so that it runs on a whole batch at once.

Expects: the bound symbols of a function traced on per-example proxies, and for some of those proxies
their batched values (batch dimension at 0). Guarantees: the batched program is recorded into the
current trace, each operation through its batching rule (thunder/prims/batching.py) or, for a symbol
without one, through its decomposition; an operation with neither stops with an error naming it.
"""

from __future__ import annotations

import torch

from thunder import prims
from thunder.core.proxies import Proxy, TensorProxy
from thunder.core.trace import get_tracectx
from thunder.prims.batching import BATCHING_RULES

# symbols that act on each element alone (any shape in, the same shape out): batched by calling them as they are
_ELEMENTWISE_SYMBOLS = frozenset({"ltorch.detach", "ltorch.clone", "ltorch.contiguous"})


def _same_symbol(sym):
    def rule(batch, batched, *args, **kwargs):
        return sym(*args, **kwargs)

    return rule


class Batcher:
    """Maps per-example proxy names to their batched values while the program is re-recorded."""

    def __init__(self, batch: int, batched: dict[str, TensorProxy]):
        self.batch = batch
        self.batched = dict(batched)  # per-example name -> batched proxy (batch dim 0)

    def run(self, bsyms) -> None:
        for bsym in bsyms:
            self.process(bsym)

    def value(self, x):
        """The batched value of a per-example output, or the output itself where it does not depend on the batch."""
        if isinstance(x, Proxy):
            return self.batched.get(x.name, x)
        if isinstance(x, (tuple, list)):
            return type(x)(self.value(v) for v in x)
        return x

    def is_batched(self, x) -> bool:
        return isinstance(x, Proxy) and x.name in self.batched

    def process(self, bsym) -> None:
        if not any(self.is_batched(a) for a in bsym.flat_args):
            get_tracectx().record(bsym)
            return
        rule = BATCHING_RULES.get(bsym.sym.id)
        if rule is None and bsym.sym.id in _ELEMENTWISE_SYMBOLS:
            rule = _same_symbol(bsym.sym)
        if rule is None:
            if not bsym.subsymbols:
                raise NotImplementedError(
                    f"vmap: no batching rule for the operator {bsym.sym.id} (and it has no decomposition); "
                    "add one to BATCHING_RULES in thunder/prims/batching.py, or call the function in a loop"
                )
            self.run(bsym.subsymbols)
            return
        batched_positions = set()
        for i, a in enumerate(bsym.args):
            if self.is_batched(a):
                batched_positions.add(i)
            elif isinstance(a, (tuple, list)):
                batched_positions.update((i, j) for j, v in enumerate(a) if self.is_batched(v))
        args = [self.value(a) for a in bsym.args]
        kwargs = {k: self.value(v) for k, v in bsym.kwargs.items()}
        out = rule(self.batch, batched_positions, *args, **kwargs)
        self._bind_outputs(bsym, out)

    def _bind_outputs(self, bsym, out) -> None:
        old = bsym.flat_outs
        new = [out] if isinstance(out, TensorProxy) else [o for o in out if isinstance(o, Proxy)]
        if len(old) != len(new):
            raise RuntimeError(f"vmap: the batching rule of {bsym.sym.id} returned {len(new)} outputs, expected {len(old)}")
        for o, n in zip(old, new):
            self.batched[o.name] = n


def move_dim(t, source: int, destination: int):
    """`t` with dimension `source` moved to position `destination` (torch.movedim)."""
    if source == destination:
        return t
    perm = [d for d in range(t.ndim) if d != source]
    perm.insert(destination, source)
    return prims.permute(t, tuple(perm))


def canonical_dim(dim: int, ndim: int, what: str) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(f"vmap: {what} {dim} is out of range for a tensor with {ndim} dimension(s)")
    return dim % ndim


def per_example_like(t: torch.Tensor, dim: int) -> TensorProxy:
    shape = tuple(s for i, s in enumerate(t.shape) if i != dim)
    return TensorProxy(like=t, shape=shape, prefix="example")
