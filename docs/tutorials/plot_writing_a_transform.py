"""
Writing a transform
===================

A `thunder.Transform` rewrites traces at the stages it implements. This one runs after optimization, on each
execution trace, and wraps every matrix multiplication in a timer, leaving the program's results unchanged.
"""

# %%
# A trace's operations are *bound symbols*: a symbol (the operation) with its arguments and outputs. A pass
# builds a new trace from the old one; `from_trace` copies its signature and `tracectx` makes it the trace
# being recorded, so calling a symbol inside adds a line.
import time

import torch

import thunder
from thunder.core.symbol import Symbol
from thunder.core.trace import tracectx

TIMINGS: list[float] = []


def _tick():
    TIMINGS.append(time.perf_counter())


# A symbol with a Python implementation and no outputs: it runs in the program as written.
tick = Symbol("tick", meta=lambda: None, is_prim=True, python_impl=_tick)


class TimeMatmuls(thunder.Transform):
    """Calls `tick` before and after every matmul of each execution trace."""

    def transform_trace_post_optimization(self, trace, **kwargs):
        new = trace.from_trace("time matmuls", [])
        with tracectx(new):
            for bsym in trace.bound_symbols:
                timed = "matmul" in bsym.sym.name
                if timed:
                    tick()
                new.bound_symbols.append(bsym)
                if timed:
                    tick()
        return new


def fn(x, w):
    return torch.tanh(x @ w) @ w.T


x, w = torch.randn(64, 32), torch.randn(32, 32)
jfn = thunder.jit(fn, transforms=[TimeMatmuls()])
torch.testing.assert_close(jfn(x, w), fn(x, w))  # a transform must not change results
print(thunder.last_traces(jfn)[-1])

# %%
# Each call of the compiled function now records two timestamps per matmul.
TIMINGS.clear()
jfn(x, w)
pairs = list(zip(TIMINGS[::2], TIMINGS[1::2]))
print([f"{(end - start) * 1e6:.1f} us" for start, end in pairs])

# %%
# The stages a transform may implement are listed in :doc:`/advanced/writing_transforms`; the pipeline that
# calls them is described in :doc:`/advanced/pipeline`.
