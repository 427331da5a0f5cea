"""Splitting a Dynamo FX graph into the regions Thunder supports and those it does not.

The support question (`unsupported_reason`, one FX node at a time) is kept apart from the partitioning
(`split_graph`), in the manner of torch.fx's operator-support/partitioner split. A node is unsupported when it
needs tensor values to decide a shape or a Python value (data-dependent: `.item()`, `nonzero`, one-argument
`torch.where`, boolean-mask indexing, any node whose example value has unbacked symbolic sizes), when it is a
higher-order operator Thunder's tracer does not acquire, or when it belongs to a `torch.func` transform (see
`_functorch_block_reason`). Every other node is offered to Thunder: an operator
Thunder has no symbol for still traces through its meta kernel (see `thunder.torch.fallback`), and a region that
Thunder nevertheless fails to compile is moved to the fallback at its first call, with the error as its reason
(see `thunder.dynamo.compiler`).
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass

import torch
from torch.fx.passes.split_module import split_module

from thunder.frontend.tracer import _DATA_DEPENDENT


@dataclass(frozen=True)
class SplitReason:
    """Why part of the program does not run under Thunder.

    kind: "data-dependent", "unsupported operator", "thunder failed", "recompile limit", "inductor failed",
    "dynamo graph break" or "dynamo failed" (a frame Dynamo could not capture, run eagerly).
    node: the FX node's name ("" for a Dynamo graph break); target: what it calls; message: the explanation;
    location: the user's source line, where Dynamo recorded it.
    """

    kind: str
    node: str
    target: str
    message: str
    location: str = ""

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        what = f"{self.node} ({self.target})" if self.node else self.target
        return f"[{self.kind}] {what}{where}: {self.message}"


_DATA_DEPENDENT_METHODS = {
    fn.__name__: why for fn, why in _DATA_DEPENDENT.items() if getattr(torch.Tensor, fn.__name__, None) is fn
}
_INDEXING = {operator.getitem, torch.Tensor.__getitem__}


def _target_name(node: torch.fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target if node.op != "call_method" else f"Tensor.{target}"
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}.{name}" if module and module != "_operator" else name


def _example_value(node) -> object:
    if not isinstance(node, torch.fx.Node):
        return node
    meta = node.meta
    return meta.get("example_value", meta.get("val"))


def _has_unbacked_sizes(value) -> bool:
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    try:
        return bool(free_unbacked_symbols(value))
    except Exception:  # values free_unbacked_symbols does not understand (plain objects) have no symbols
        return False


def _is_boolean_mask_index(node: torch.fx.Node) -> bool:
    if node.target not in _INDEXING or len(node.args) < 2:
        return False
    index = node.args[1]
    indices = index if isinstance(index, (tuple, list)) else (index,)
    for item in indices:
        value = _example_value(item)
        if isinstance(value, torch.Tensor) and value.dtype in (torch.bool, torch.uint8) and value.ndim > 0:
            return True
    return False


def unsupported_reason(node: torch.fx.Node) -> SplitReason | None:
    """Why Thunder cannot take this FX node, or None when it can (it will then be compiled with thunder.jit)."""
    if node.op not in ("call_function", "call_method", "call_module"):
        return None
    target = _target_name(node)
    location = _user_location(node)

    def reason(kind: str, message: str) -> SplitReason:
        return SplitReason(kind, node.name, target, message, location)

    if node.op == "call_function" and node.target in _DATA_DEPENDENT:
        return reason("data-dependent", f"{_DATA_DEPENDENT[node.target]} needs tensor values")
    if node.op == "call_method" and node.target in _DATA_DEPENDENT_METHODS:
        return reason("data-dependent", f"{_DATA_DEPENDENT_METHODS[node.target]} needs tensor values")
    if node.target is torch.where and len(node.args) + len(node.kwargs) == 1:
        return reason("data-dependent", "one-argument torch.where returns indices: a data-dependent shape")
    if _is_boolean_mask_index(node):
        return reason("data-dependent", "indexing with a boolean mask gives a data-dependent shape")
    if _has_unbacked_sizes(_example_value(node)):
        return reason("data-dependent", "its output's size or value is only known at run time (unbacked symbol)")
    if isinstance(node.target, torch._ops.HigherOrderOperator):
        return reason("unsupported operator", "Thunder does not acquire torch higher-order operators")
    return None


# Dynamo inlines torch.vmap / torch.func.grad / jvp into the graph as functorch calls that open a transform level
# (`_vmap_increment_nesting(batch_size, randomness)`), wrap the inputs into batched or grad-tracking tensors
# (`_add_batch_dim`, `_wrap_for_grad`), run the function on them, unwrap the outputs and close the level. Such
# wrapped tensors are C++ tensors that Thunder's proxies cannot be, and opening a level is a process-wide side
# effect: traced by Thunder it would run once at compile time and, should tracing fail, stay open (every later
# `torch.rand` then raises vmap's randomness error). So the whole block, from the opening of the outermost level
# to its closing, stays out of Thunder's regions and runs on the fallback, where torch's transform does the work.
_SAVED_TENSORS_HOOKS_SWITCHES = {"_saved_tensors_hooks_disable", "_saved_tensors_hooks_enable"}


def _functorch_nesting_change(node: torch.fx.Node) -> int:
    """+1 where the node opens a functorch transform level, -1 where it closes one, else 0."""
    name = getattr(node.target, "__name__", "") if node.op == "call_function" else ""
    if name.endswith("_increment_nesting"):
        return 1
    return -1 if name.endswith("_decrement_nesting") else 0


def _is_functorch_call(node: torch.fx.Node) -> bool:
    """A call of torch's functorch machinery (the inlined pieces of a `torch.func` transform)."""
    if node.op != "call_function":
        return False
    module = getattr(node.target, "__module__", None) or ""
    name = getattr(node.target, "__name__", "")
    return module.startswith(("torch._functorch", "torch._C._functorch")) or name in _SAVED_TENSORS_HOOKS_SWITCHES


def _functorch_block_reason(node: torch.fx.Node) -> SplitReason:
    return SplitReason(
        "unsupported operator", node.name, _target_name(node),
        "a torch.func transform (torch.vmap, grad, jvp) that Dynamo inlined as functorch calls: the transformed "
        "function runs on the fallback, where torch applies the transform (thunder.jit applies its own to "
        "torch.vmap/torch.func calls it traces)",
        _user_location(node),
    )  # fmt: skip


_TORCH_DIR = os.path.dirname(torch.__file__)


def _user_location(node: torch.fx.Node) -> str:
    """The innermost frame of Dynamo's recorded stack that is not torch's own (a torch.vmap's inlined pieces
    are recorded inside torch/_functorch)."""
    stack = node.meta.get("stack_trace") or ""
    lines = [line.strip() for line in stack.strip().splitlines() if line.strip().startswith("File ")]
    outside_torch = [line for line in lines if _TORCH_DIR not in line]
    return (outside_torch or lines)[-1] if lines else ""


def _tuple_producer(node: torch.fx.Node) -> torch.fx.Node | None:
    """The node whose tuple or list output `node` indexes (`wrap[0]` after a higher-order op), if any."""
    if node.op != "call_function" or node.target is not operator.getitem or not node.args:
        return None
    source = node.args[0]
    if isinstance(source, torch.fx.Node) and isinstance(_example_value(source), (tuple, list)):
        return source
    return None


@dataclass
class SplitGraph:
    """The split graph module and, per submodule name, whether Thunder runs it."""

    module: torch.fx.GraphModule
    thunder_submodules: list[str]
    fallback_submodules: list[str]
    reasons: list[SplitReason]


def split_graph(gm: torch.fx.GraphModule) -> SplitGraph:
    """Cuts `gm` into submodules `submod_<i>`: maximal runs of consecutive nodes that are all supported or all not.

    Partitions follow the graph's (topological) node order, so no partition depends on a later one and the
    split graph has no cycle. The reasons list names every unsupported node (a `torch.func` block once, by the
    node that opens it).
    """
    reasons: list[SplitReason] = []
    partition_of: dict[torch.fx.Node, int] = {}
    supported_partition: dict[int, bool] = {}
    partition, current, functorch_depth = 0, None, 0
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        producer = _tuple_producer(node)
        if producer is not None and producer in partition_of:
            partition_of[node] = partition_of[producer]  # unpacking stays with what it unpacks
            continue
        change = _functorch_nesting_change(node)
        if functorch_depth == 0 and change > 0:
            reasons.append(_functorch_block_reason(node))
        in_functorch_block = functorch_depth > 0 or change != 0 or _is_functorch_call(node)
        functorch_depth += change
        why = None if in_functorch_block else unsupported_reason(node)
        if why is not None:
            reasons.append(why)
        supported = why is None and not in_functorch_block
        if current is not None and supported != current:
            partition += 1
        current = supported
        partition_of[node] = partition
        supported_partition[partition] = supported
    split = split_module(gm, gm, lambda node: partition_of[node], keep_original_order=True)
    thunder_names, fallback_names = [], []
    for node in split.graph.nodes:
        if node.op == "call_module" and node.target.startswith("submod_"):
            index = int(node.target.removeprefix("submod_"))
            (thunder_names if supported_partition.get(index, True) else fallback_names).append(node.target)
    return SplitGraph(split, thunder_names, fallback_names, reasons)
