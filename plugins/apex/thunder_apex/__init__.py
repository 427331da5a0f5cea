"""A Thunder executor over NVIDIA Apex's fused CUDA kernels (https://github.com/NVIDIA/apex).

Thunder imports `thunder_apex.plugin` (the entry point) when it discovers plugins; the executor lives in
`thunder_apex.executor` and Apex's extensions are imported only when a kernel first runs.
"""

__version__ = "0.1.0"
