"""`torch.einsum` as permutes, reshapes, sums and batched matmuls.

The equation is parsed into one list of labels per operand (letters, and integers for the dims an
ellipsis stands for, aligned to the right as broadcasting aligns them). Repeated labels within an
operand take a diagonal; labels that only one operand has and the result does not need are summed out
first; operands are then contracted pairwise, left to right, each pair as one batched matmul.
"""

from __future__ import annotations

import torch

from thunder import prims
from thunder.core.dtypes import result_dtype
from thunder.torch import reductions, shapes
from thunder.torch.base import expand_to, to_dtype

Label = str | int


def _split_ellipsis(term: str) -> tuple[str, str | None]:
    if "..." not in term:
        if "." in term:
            raise RuntimeError(f"einsum(): found '.' that is not part of any ellipsis in {term!r}")
        return term, None
    head, _, tail = term.partition("...")
    if "." in head or "." in tail:
        raise RuntimeError("einsum(): found more than one ellipsis in an operand's subscripts")
    return head, tail


def _check_letters(letters: str) -> None:
    for c in letters:
        if not ("a" <= c <= "z" or "A" <= c <= "Z"):
            raise RuntimeError(f"einsum(): invalid subscript given at index of {c!r}; subscripts must be in [a-zA-Z]")


def parse_equation(equation: str, ndims: list[int]) -> tuple[list[list[Label]], list[Label]]:
    """One label list per operand and the output's label list. Ellipsis dims are the integers 0..E-1."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise RuntimeError(f"einsum(): {len(terms)} operands in the equation, but {len(ndims)} were given")
    parsed = [_split_ellipsis(t) for t in terms]
    n_ellipsis = 0
    for (head, tail), ndim in zip(parsed, ndims):
        _check_letters(head + (tail or ""))
        named = len(head) + len(tail or "")
        if tail is None and named != ndim or tail is not None and named > ndim:
            raise RuntimeError(f"einsum(): the subscripts {head + ('...' + tail if tail is not None else '')!r} "
                               f"do not match an operand with {ndim} dimensions")  # fmt: skip
        if tail is not None:
            n_ellipsis = max(n_ellipsis, ndim - named)
    inputs = []
    for (head, tail), ndim in zip(parsed, ndims):
        middle = [] if tail is None else list(range(n_ellipsis - (ndim - len(head) - len(tail)), n_ellipsis))
        inputs.append([*head, *middle, *(tail or "")])
    if arrow:
        head, tail = _split_ellipsis(rhs)
        _check_letters(head + (tail or ""))
        output = [*head, *(range(n_ellipsis) if tail is not None else ()), *(tail or "")]
        known = {label for labels in inputs for label in labels}
        for label in output:
            if label not in known:
                raise RuntimeError(f"einsum(): output subscript {label} does not appear in the equation for any input operand")
        if len(set(output)) != len(output):
            raise RuntimeError("einsum(): output subscripts may appear only once")
    else:
        counts: dict[Label, int] = {}
        for labels in inputs:
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
        letters = sorted(label for label, n in counts.items() if isinstance(label, str) and n == 1)
        output = [*range(n_ellipsis), *letters]
    return inputs, output


def _take_diagonals(a: torch.Tensor, labels: list[Label]) -> tuple[torch.Tensor, list[Label]]:
    """Collapses each repeated label of one operand to its diagonal (as `ii->i` does)."""
    while len(set(labels)) != len(labels):
        label = next(label for label in labels if labels.count(label) > 1)
        positions = [i for i, x in enumerate(labels) if x == label]
        lengths = {a.shape[i] for i in positions}
        if len(lengths) != 1:
            raise RuntimeError(f"einsum(): subscript {label} is repeated for operand but the sizes don't match")
        rest = [i for i in range(a.ndim) if i not in positions]
        moved = shapes.permute(a, positions + rest)
        index = prims.iota(lengths.pop(), start=0, step=1, dtype=torch.int64, device=a.device)
        # a[idx, idx, ...] with one index tensor per repeated dim keeps a single dim in front
        a = prims.advanced_index(moved, (index,) * len(positions))
        labels = [label] + [labels[i] for i in rest]
    return a, labels


def _sum_out(a: torch.Tensor, labels: list[Label], keep: set, dtype=None) -> tuple[torch.Tensor, list[Label]]:
    """`a` summed over the labels not in `keep` (in `dtype`: None is torch.sum's, which widens integers)."""
    dims = [i for i, label in enumerate(labels) if label not in keep]
    if not dims:
        return a, labels
    return reductions.sum(a, dims, dtype=dtype), [label for label in labels if label in keep]


def _sizes(pairs) -> dict[Label, int]:
    sizes: dict[Label, int] = {}
    for a, labels in pairs:
        for label, length in zip(labels, a.shape):
            if sizes.get(label, 1) != 1 and length not in (1, sizes[label]):
                raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes for subscript {label}")
            if length != 1 or label not in sizes:
                sizes[label] = length
    return sizes


def _arrange(a, labels, order, sizes) -> torch.Tensor:
    """`a` permuted to `order` and broadcast to the full length of each label."""
    a = shapes.permute(a, [labels.index(label) for label in order])
    return expand_to(a, tuple(sizes[label] for label in order))


def _numel(labels, sizes) -> int:
    n = 1
    for label in labels:
        n *= sizes[label]
    return n


def _contract(a, la, b, lb, keep: set):
    """The product of two operands over their shared labels, summing those not in `keep`."""
    if a.dtype != b.dtype:  # an integer operand widened to int64 by its own sums, as in eager
        if any(label in lb and label not in keep for label in la):
            # eager contracts with bmm, which refuses operands of two dtypes: raise as it does
            raise RuntimeError(f"einsum(): expected scalar type {b.dtype} but found {a.dtype} (an integer operand "
                               "summed over labels no other operand has widens to int64, as torch.sum does)")  # fmt: skip
        common = result_dtype(a, b)  # eager multiplies elementwise, promoting
        a, b = to_dtype(a, common), to_dtype(b, common)
    sizes = _sizes([(a, la), (b, lb)])
    batch = [label for label in la if label in lb and label in keep]
    contracted = [label for label in la if label in lb and label not in keep]
    only_a = [label for label in la if label not in lb]
    only_b = [label for label in lb if label not in la]
    a = _arrange(a, la, batch + only_a + contracted, sizes)
    b = _arrange(b, lb, batch + contracted + only_b, sizes)
    nb, m, k, n = (_numel(x, sizes) for x in (batch, only_a, contracted, only_b))
    a = shapes.reshape(a, (nb, m, k))
    b = shapes.reshape(b, (nb, k, n))
    out = prims.matmul(a, b)
    labels = batch + only_a + only_b
    return shapes.reshape(out, tuple(sizes[label] for label in labels)), labels


def einsum_decomposition(equation: str, operands) -> torch.Tensor:
    """`torch.einsum(equation, *operands)` for operands of one dtype, from thunder.torch operations."""
    operands = list(operands)
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    dtype = operands[0].dtype
    inputs, output = parse_equation(equation, [o.ndim for o in operands])
    pairs = [_take_diagonals(o, labels) for o, labels in zip(operands, inputs)]
    _sizes(pairs)  # checks that the operands' lengths agree before any work
    # sum out labels that only one operand has and the output does not need
    reduced = []
    for i, (a, labels) in enumerate(pairs):
        elsewhere = {label for j, (_, other) in enumerate(pairs) if j != i for label in other}
        keep = set(output) | elsewhere
        reduced.append(_sum_out(a, labels, keep))  # as eager: torch.sum, which widens integers to int64
    a, labels = reduced[0]
    for i in range(1, len(reduced)):
        b, lb = reduced[i]
        later = {label for _, other in reduced[i + 1 :] for label in other}
        a, labels = _contract(a, labels, b, lb, set(output) | later)
    # labels left after the contractions are summed within them in eager (its batched matmul): no widening
    a, labels = _sum_out(a, labels, set(output), dtype=None if len(operands) == 1 else a.dtype)
    a = shapes.permute(a, [labels.index(label) for label in output]) if labels != output else a
    # a new tensor, never the input (as `ij->ij` would otherwise return)
    return prims.convert_element_type(a, dtype) if a is operands[0] else a
