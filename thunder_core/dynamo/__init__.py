"""ThunderFX: `torch.compile` with Thunder as the backend, for programs `thunder.jit` cannot trace whole.

Dynamo captures FX graphs (breaking the graph at data-dependent Python control flow such as `if tensor:`,
`.item()` or `.tolist()`); Thunder compiles the regions of each graph it supports, and the rest runs on Inductor
(or eagerly). Either::

    import torch
    from thunder.dynamo import ThunderCompiler, thunderfx

    cmodel = torch.compile(model, backend=ThunderCompiler(executors=["torch"]))
    # or
    cmodel = thunderfx(model, fallback="eager")
    cmodel(x).sum().backward()
    print(cmodel.report())          # graphs, Thunder regions and why anything ran elsewhere
"""

from thunder.dynamo.compiler import ThunderCompiler
from thunder.dynamo.splitter import SplitReason
from thunder.dynamo.thunderfx import ThunderFXCompiledObject, thunderfx

__all__ = ["ThunderCompiler", "thunderfx", "ThunderFXCompiledObject", "SplitReason"]
