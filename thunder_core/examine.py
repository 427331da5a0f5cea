"""`thunder.examine`: is a program supported by Thunder, and does the jitted program match eager?

    from thunder.examine import examine
    result = examine(model, x)        # prints a report; returns an ExamineResult
    result.unsupported                # the torch operations Thunder cannot trace, with call sites in the report

`get_fusions(trace)` lists the fusion regions of an execution trace (`thunder.last_traces(jfn)[-1]`).
The implementation lives in `thunder.frontend.examine`.
"""

from thunder.frontend.examine import (
    ExamineResult,
    OperationReport,
    examine,
    get_fusion_symbols,
    get_fusions,
)

__all__ = ["ExamineResult", "OperationReport", "examine", "get_fusion_symbols", "get_fusions"]
