"""Thunder's `triton` executor: hand-written Triton kernels for the operations that dominate LLM training.

Thunder imports `thunder_executors_triton.plugin` (the entry point) when it discovers plugins; the executor
(`thunder_executors_triton.executor`) and the kernels (`thunder_executors_triton.kernels`) are imported only
when first used. This module stays empty of imports so that discovery is cheap.
"""

__version__ = "0.1.0"
