"""An example Thunder executor plugin: `a + alpha * b` as one fused operation.

Thunder imports `thunder_example_executor.plugin` (the entry point) when it discovers plugins; the executor
itself lives in `thunder_example_executor.executor` and is imported only when first used. This module stays
empty of imports so that discovery is cheap.
"""

__version__ = "0.1.0"
