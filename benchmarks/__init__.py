"""Thunder's benchmark suite: ``python -m benchmarks --help``.

Workloads (``benchmarks.workloads``) x backends (``benchmarks.backends``: eager, torch.compile, thunder),
each row measured in a fresh subprocess (``benchmarks.harness``); models in ``benchmarks.models``.
"""
