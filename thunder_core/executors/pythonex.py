"""The `python` executor: runs pure-Python symbols (bookkeeping such as `del`, and symbols tagged
"python" whose implementation is plain Python), always last."""

from __future__ import annotations

from thunder.core.symbol import BoundSymbol
from thunder.extend.executors import OperatorExecutor


class PythonExecutor(OperatorExecutor):
    def __init__(self):
        super().__init__("python", version="builtin")

    def can_execute(self, bsym: BoundSymbol) -> bool:
        if "python" in bsym.sym.tags and bsym.sym.python_impl is not None:
            return True
        return super().can_execute(bsym)

    def lower(self, bsym: BoundSymbol) -> list[BoundSymbol]:
        if "python" in bsym.sym.tags and bsym.sym.python_impl is not None:
            return [bsym]
        return super().lower(bsym)


ex = PythonExecutor()
pythonex = ex
