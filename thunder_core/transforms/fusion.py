"""Fusion partitioning: cuts a trace into maximal regions of operations a fusion executor can fuse.

Implemented with the torchcompile executor (Core-4); until a fusion executor is active this pass is
not run.
"""

from __future__ import annotations


def fuse_regions(trace, executor, executors, progress=None):
    raise NotImplementedError("fusion executors are not supported yet")
