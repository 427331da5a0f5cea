"""Objects passed in (torch pytree nodes, such as a Hugging Face cache) updated in place, as eager updates them.

A registered pytree object among the arguments is rebuilt around the trace's proxies; what the traced function
does to it happens to that rebuilt object. In-place writes into its tensors reach the caller's tensors (they are
trace inputs), but state the function rebinds (a StaticCache allocating its tensors on first use, a
DynamicCache appending a layer's keys) would be lost. So the tracer flattens each such object again when the
function returns; where its structure or any of its tensors changed, the object becomes an extra output of the
trace, and every call rebuilds it from the results and copies its state into the caller's object (attribute by
attribute, recursing into nested objects and lists that the update kept, so the caller's sub-objects keep
their identity as in eager).
"""

from __future__ import annotations

import collections
from typing import Any

import torch
import torch.utils._pytree as torch_pytree

from thunder.core.pytree import tree_flatten

# containers torch registers too, which the flattening takes apart itself: not objects to write back
_CONTAINERS = (tuple, list, dict, collections.OrderedDict, collections.defaultdict, collections.deque)


def _is_object_node(x) -> bool:
    return type(x) in torch_pytree.SUPPORTED_NODES and not isinstance(x, _CONTAINERS)


def pytree_objects(tree, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, object) for every registered pytree object in nested tuples, lists and dicts of `tree`."""
    if _is_object_node(tree):
        return [(path, tree)]
    if isinstance(tree, (tuple, list)):
        return [found for i, v in enumerate(tree) for found in pytree_objects(v, (*path, i))]
    if isinstance(tree, dict):
        return [found for k, v in tree.items() for found in pytree_objects(v, (*path, k))]
    return []


def snapshot(objects: list[tuple[tuple, Any]]) -> list[tuple[list, Any]]:
    """Each object's leaves and structure, to tell afterwards which ones the function changed."""
    return [tree_flatten(obj) for _, obj in objects]


def changed(objects: list[tuple[tuple, Any]], before: list[tuple[list, Any]], resolve) -> list[tuple[tuple, Any]]:
    """The objects whose structure, or any tensor (after in-place writes, through `resolve`), differs from before."""
    result = []
    for (path, obj), (leaves, spec) in zip(objects, before):
        new_leaves, new_spec = tree_flatten(obj)
        same = new_spec == spec and all(
            a is b or (isinstance(a, torch.Tensor) and resolve(a) is resolve(b)) for a, b in zip(new_leaves, leaves)
        )
        if not same:
            result.append((path, obj))
    return result


def _locate(tree, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def _copy_state(target, source) -> None:
    """source's attributes set on target, recursing where both hold an object of one type or a list of one length."""
    for name, value in vars(source).items():
        current = vars(target).get(name, _MISSING)
        if current is value:
            continue
        if isinstance(value, list) and isinstance(current, list) and len(current) == len(value):
            for i, (old, new) in enumerate(zip(current, value)):
                if _mergeable(old, new):
                    _copy_state(old, new)
                else:
                    current[i] = new
            continue
        if _mergeable(current, value):
            _copy_state(current, value)
            continue
        vars(target)[name] = value  # not setattr: a class's __setattr__ could register or convert it


_MISSING = object()


def _mergeable(old, new) -> bool:
    return (
        type(old) is type(new)
        and hasattr(new, "__dict__")
        and not isinstance(new, (torch.Tensor, type, torch.nn.Module))
        and not callable(new)
    )


def write_back(caller_tree, paths: list[tuple], rebuilt: tuple) -> None:
    """Copies each rebuilt object's state into the caller's object at the same path of the arguments."""
    for path, obj in zip(paths, rebuilt):
        _copy_state(_locate(caller_tree, path), obj)
