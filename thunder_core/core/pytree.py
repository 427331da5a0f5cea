"""Flattening nested Python containers of values: tuples, lists, dicts, dataclasses, namedtuples.

Hugging Face's `ModelOutput` (an OrderedDict subclass that is also a dataclass) round-trips with its type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
import torch.utils._pytree as _torch_pytree


class TreeSpec:
    """How to rebuild a structure from its flat leaves."""

    __slots__ = ("kind", "data", "children")

    def __init__(self, kind: str, data: Any, children: tuple):
        self.kind, self.data, self.children = kind, data, children

    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves() for c in self.children)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, TreeSpec)
            and self.kind == other.kind
            and self.data == other.data
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.data if not isinstance(self.data, list) else tuple(self.data), self.children))


_LEAF = TreeSpec("leaf", None, ())


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def tree_flatten(tree: Any) -> tuple[list, TreeSpec]:
    leaves: list = []
    spec = _flatten(tree, leaves)
    return leaves, spec


def _flatten(x: Any, leaves: list) -> TreeSpec:
    # Exact-type checks first: the hot path flattens plain tuples of tensors.
    tx = type(x)
    if tx is tuple or tx is list:
        return TreeSpec(tx.__name__, None, tuple(_flatten(v, leaves) for v in x))
    if isinstance(x, torch.Tensor) or x is None or tx in (int, float, bool, str):
        leaves.append(x)
        return _LEAF
    if isinstance(x, dict):
        keys = tuple(x.keys())
        # dict subclasses that are dataclasses (ModelOutput) rebuild through their constructor
        return TreeSpec("dict", (tx, keys), tuple(_flatten(x[k], leaves) for k in keys))
    if _is_namedtuple(x):
        return TreeSpec("namedtuple", tx, tuple(_flatten(v, leaves) for v in x))
    if isinstance(x, (tuple, list)):
        return TreeSpec("seq_subclass", tx, tuple(_flatten(v, leaves) for v in x))
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x) if f.init)
        return TreeSpec("dataclass", (tx, names), tuple(_flatten(getattr(x, n), leaves) for n in names))
    node = _torch_pytree.SUPPORTED_NODES.get(tx)
    if node is not None:
        # A class registered with torch.utils._pytree (as torch.export requires of its inputs), such as a Hugging
        # Face cache: its tensors become leaves, and it is rebuilt around the proxies, or the results, from them.
        children, context = node.flatten_fn(x)
        return TreeSpec("torch_node", _NodeContext(tx, context), tuple(_flatten(c, leaves) for c in children))
    leaves.append(x)
    return _LEAF


class _NodeContext:
    """A torch pytree node's type and context, compared and hashed by value (contexts are often dicts)."""

    __slots__ = ("cls", "context", "_key")

    def __init__(self, cls: type, context: Any):
        self.cls, self.context = cls, context
        self._key = (cls, _freeze(context))

    def __eq__(self, other) -> bool:
        return isinstance(other, _NodeContext) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def _freeze(x: Any) -> Any:
    """A hashable stand-in for a pytree context, equal for equal contexts."""
    if isinstance(x, dict):
        return ("dict", tuple((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(_freeze(v) for v in x))
    if isinstance(x, (set, frozenset)):
        return ("set", frozenset(_freeze(v) for v in x))
    try:
        hash(x)
    except TypeError:
        return ("id", id(x))
    return x


def tree_unflatten(leaves: list, spec: TreeSpec) -> Any:
    it = iter(leaves)
    return _unflatten(it, spec)


def _unflatten(it, spec: TreeSpec) -> Any:
    kind = spec.kind
    if kind == "leaf":
        return next(it)
    values = [_unflatten(it, c) for c in spec.children]
    if kind == "tuple":
        return tuple(values)
    if kind == "list":
        return values
    if kind == "dict":
        cls, keys = spec.data
        if cls is dict:
            return dict(zip(keys, values))
        if dataclasses.is_dataclass(cls):
            return cls(**dict(zip(keys, values)))
        return cls(zip(keys, values))
    if kind == "namedtuple":
        return spec.data(*values)
    if kind == "seq_subclass":
        return spec.data(values)
    if kind == "dataclass":
        cls, names = spec.data
        return cls(**dict(zip(names, values)))
    if kind == "torch_node":
        node = spec.data
        return _torch_pytree.SUPPORTED_NODES[node.cls].unflatten_fn(values, node.context)
    raise ValueError(f"unknown tree node kind {kind}")


def tree_map(fn: Callable, tree: Any) -> Any:
    leaves, spec = tree_flatten(tree)
    return tree_unflatten([fn(x) for x in leaves], spec)


def tree_leaves(tree: Any) -> list:
    return tree_flatten(tree)[0]
