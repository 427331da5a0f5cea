"""The stages of compilation, and the trace passes executors contribute to them.

Compilation is a fixed sequence of named stages (see :mod:`thunder.frontend.compile` for the whole
pipeline). At each stage, ``thunder.Transform`` objects act through the method named for the stage,
and executors in the executor list run the :class:`TracePass` es they registered for it, in the
order of the executor list (priority order), before the core's own work of that stage.

An executor registers a pass with :meth:`thunder.extend.Executor.register_pass`::

    def fuse_swiglu(trace, context):           # a pattern rewrite, before autodiff
        ...                                     # build and return a new trace (trace.from_trace(...))
        return new_trace

    my_executor.register_pass(fuse_swiglu, stage=BEFORE_AUTODIFF)

The pass runs only when ``my_executor`` is in the jitted function's executor list; ``context.options``
holds that executor's validated options (see :class:`thunder.extend.ExecutorOption`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "ACQUIRED",
    "AFTER_AUTODIFF",
    "AFTER_CLAIMING",
    "BEFORE_AUTODIFF",
    "BEFORE_EXECUTION",
    "BEFORE_FUSION",
    "FUSION_AND_CLAIMING",
    "PASS_STAGES",
    "STAGES",
    "PassContext",
    "TracePass",
]

#: The trace as acquired from the user's program (no pass runs here; it is the first of last_traces).
ACQUIRED = "acquired"
#: On the computation trace, before autodiff: pattern rewrites whose result autodiff should differentiate
#: (an operator with a grad_transform), ``Transform.transform_traces_pre_prologue``.
BEFORE_AUTODIFF = "before autodiff"
#: On the forward/backward pair, when a backward is built: gradient scaling, communication, offloading,
#: ``Transform.transform_traces_post_autodiff``. Passes take and return the pair.
AFTER_AUTODIFF = "after autodiff"
#: On each execution trace (the forward, then the backward), before fusion executors partition it.
BEFORE_FUSION = "before fusion"
#: Fusion executors partition each execution trace, then every operation is claimed (core work: fusion
#: executors act through ``can_fuse``/``fuse``, not through passes).
FUSION_AND_CLAIMING = "fusion and claiming"
#: On each execution trace after fusion and claiming: every operation has its executor.
#: ``Transform.transform_trace_post_optimization`` runs here.
AFTER_CLAIMING = "after claiming"
#: The trace that runs, after the last pass (freeing of dead values): the last of last_traces.
BEFORE_EXECUTION = "before execution"

#: Every stage, in pipeline order.
STAGES = (ACQUIRED, BEFORE_AUTODIFF, AFTER_AUTODIFF, BEFORE_FUSION, FUSION_AND_CLAIMING, AFTER_CLAIMING,
          BEFORE_EXECUTION)  # fmt: skip
#: The stages at which an executor's TracePass may run.
PASS_STAGES = (BEFORE_AUTODIFF, AFTER_AUTODIFF, BEFORE_FUSION, AFTER_CLAIMING)


@dataclass(frozen=True)
class PassContext:
    """What a pass may read about the compilation it is part of.

    Attributes:
        executors: the executor list, in priority order (always-executors last).
        options: the validated options of the executor that registered the pass (every declared option,
            defaults filled in); empty for a transform.
        is_backward: for single-trace stages after autodiff, whether the trace is the backward.
    """

    executors: Sequence = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    is_backward: bool = False


@dataclass(frozen=True)
class TracePass:
    """A trace pass an executor contributes (see :meth:`thunder.extend.Executor.register_pass`).

    Attributes:
        name: how the pass is labelled in ``thunder.last_traces`` (``"<executor>: <name>"``).
        stage: one of :data:`PASS_STAGES`.
        fn: at :data:`AFTER_AUTODIFF`, ``fn(forward_trace, backward_trace, context) -> (forward, backward)``;
            at every other stage ``fn(trace, context) -> trace``. ``context`` is a :class:`PassContext`.
            A pass returns a new trace (``trace.from_trace(...)``) or the one it was given, unchanged; it
            must keep the program's results (the trace verifier checks every output in tests).
    """

    name: str
    stage: str
    fn: Callable

    def __post_init__(self) -> None:
        if self.stage not in PASS_STAGES:
            raise ValueError(f"TracePass {self.name!r}: stage must be one of {PASS_STAGES}, got {self.stage!r}")
        if not callable(self.fn):
            raise TypeError(f"TracePass {self.name!r}: fn must be callable")
