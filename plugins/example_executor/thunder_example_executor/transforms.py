"""A transform offered by name: `thunder.jit(fn, transforms=["example-scale-grads"])`.

It acts after autodiff, on the forward/backward pair, where gradient scaling, communication and offloading
belong: it multiplies every gradient the backward returns by a factor.
"""

from __future__ import annotations

import thunder.torch as ltorch
from thunder import Transform
from thunder.core.trace import TraceCtx, tracectx
from thunder.extend import TensorProxy


class ScaleGradients(Transform):
    """Multiplies every gradient by `factor` (e.g. a loss scale, or 1 / the number of accumulation steps)."""

    def __init__(self, factor: float = 0.5):
        self.factor = factor

    def transform_traces_post_autodiff(self, forward_trace: TraceCtx, backward_trace: TraceCtx, **kwargs):
        scaled = backward_trace.from_trace(f"scale gradients by {self.factor}")
        with tracectx(scaled):  # the operations called here record into the new backward trace
            scaled.output = [ltorch.mul(g, self.factor) if isinstance(g, TensorProxy) else g
                             for g in backward_trace.output]  # fmt: skip
        return forward_trace, scaled
