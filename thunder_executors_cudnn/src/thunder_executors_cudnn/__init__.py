"""Thunder's `cudnn` executor: attention and normalizations as cuDNN graphs, through cudnn-frontend.

Thunder imports `thunder_executors_cudnn.plugin` (the entry point) when it discovers plugins; the executor
(`thunder_executors_cudnn.executor`) is imported when first used, and cudnn-frontend only when a graph is built
(`thunder_executors_cudnn.graphs`). This module stays empty of imports so that discovery is cheap.
"""

__version__ = "0.1.0"
