"""A Thunder executor over Liger's Triton kernels (https://github.com/linkedin/Liger-Kernel).

Thunder imports `thunder_liger.plugin` (the entry point) when it discovers plugins; the executor lives in
`thunder_liger.executor` and Liger itself is imported only when a kernel first runs.
"""

__version__ = "0.1.0"
