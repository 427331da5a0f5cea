"""
Inspecting traces
=================

Every stage of compilation leaves a trace behind. This tutorial walks through them, then asks
`thunder.examine` which operations of a program Thunder supports.
"""

# %%
# The stages
# ----------
# `thunder.last_traces` returns every trace of the last compilation, first the acquired program, last the one
# that ran. Each trace says which pass made it and how long the pass took.
import torch

import thunder


def mlp(x, w1, w2):
    return torch.relu(x @ w1) @ w2


x, w1, w2 = torch.randn(4, 8), torch.randn(8, 16), torch.randn(16, 2)
jmlp = thunder.jit(mlp)
jmlp(x, w1, w2)

traces = thunder.last_traces(jmlp)
for trace in traces:
    print(f"{trace.provenance!r:40} {len(trace.bound_symbols):3} operations")

# %%
# The acquired trace records `thunder.torch` operations (``ltorch.*``), one per torch call the program made:
print(traces[0])

# %%
# The last one is what runs: every operation is claimed by an executor (here PyTorch eager, ``torch.*``),
# and ``del`` statements free intermediates as early as possible.
print(traces[-1])

# %%
# A trace is Python
# -----------------
# `str(trace)` is the program's source and `trace.python_callable()` compiles it, so a trace can be run, or
# read, like any Python function. It returns the flattened outputs (the jitted function rebuilds the
# structure the user's function returned).
run = traces[-1].python_callable()
(out,) = run(x, w1, w2)
torch.testing.assert_close(out, mlp(x, w1, w2))
print(out)

# %%
# Cache hits and misses
# ---------------------
# A call whose inputs match a compiled entry reuses it; a call with new metadata (here a new batch size)
# compiles a new entry.
jmlp(torch.randn(4, 8), w1, w2)
jmlp(torch.randn(6, 8), w1, w2)
print("hits:", thunder.cache_hits(jmlp), "misses:", thunder.cache_misses(jmlp))

# %%
# examine
# -------
# `thunder.examine.examine` runs a program eagerly and through `thunder.jit`, lists the torch operations it
# called and how Thunder handles each, and compares the results. ``torch.special.i0`` has no Thunder symbol:
# it runs through the *fallback*, with shapes from torch's meta kernel.
from thunder.examine import examine  # noqa: E402 (imported where the tutorial needs it)


def program(x):
    return torch.special.i0(torch.fft.fft(x).abs()).sum() + x.T.sum()


report = examine(program, torch.randn(4, 4))
print("ok:", report.ok)
