"""Memory-aware placement of two kinds of operations the earlier passes leave where they are cheapest for them,
not for memory: in-place write-backs and operations that read only the program's inputs; and the copies that keep
outputs apart from the inputs the program writes into.

- **Write-backs early.** Acquisition records every in-place update of an input (a parameter updated by
  `optimizer.step()`, its `exp_avg`, a KV cache) as a functional value and writes it back with `prims.copy_to`
  at the end of the program. The new values of every parameter and optimizer state then stay alive until the
  end: three parameter-sized copies of the model for AdamW, on top of what eager's in-place update needs. Each
  `copy_to(dst, src)` moves up to just after the last operation it depends on: the producer of `src`, every
  reader of a value that may share memory with `dst`, and the previous side effect that is not a write-back
  (write-backs into different inputs commute: inputs that the program writes never share memory, see
  `thunder.frontend.jit._refuse_mutated_overlaps`). `delete last used` then frees `src` right after the copy.
- **Input-only operations late.** An operation that reads nothing but inputs (and numbers) can run at any time
  before its first reader; the fusion partitioner leaves such operations at the front of the program (AdamW's
  decoupled weight decay `param * (1 - lr * wd)`, one parameter-sized value each, alive through the whole
  forward and backward). Each moves down to just before its first reader, never past a write into an input it
  reads.
- **Outputs kept apart from the inputs they were computed from.** A value the program returns (or saves for the
  backward) that was computed from an input through operations that may return a view (`x.repeat(...)`,
  decomposed into expand and reshape, can be a view of `x` at runtime; eager's `repeat` copies) would change
  when the program later writes into that input. Such an output is cloned just before the first write-back
  into an input it may share memory with. An output that is the input itself is left alone (the caller gets
  its own tensor back, written), unless the backward reads it: a forward that saves for the backward an input it
  writes into saves a copy of the input's value on entry, which is what the backward (and what it recomputes
  from that input) must read.

Expects: a trace after fusion and before claiming (operations still carry their symbols' tags; fusions carry
their regions as subsymbols). Guarantees: the same results; only the two kinds of operations move, and the
outputs above get their clones.

Which values may share memory with an input is over-approximated from tags: a view, a shape operation or an
operation without tags may return its argument or a view of it; an elementwise operation may (a `to()` to the
dtype a tensor already has returns the tensor itself) when its output has the shape and dtype of the argument;
reductions and matrix products never do. A fusion's outputs share memory with its inputs as its region's
operations do.
"""

from __future__ import annotations

from thunder.core.proxies import TensorProxy
from thunder.core.pytree import tree_map
from thunder.core.symbol import BoundSymbol, OpTag, flat_proxies
from thunder.core.trace import TraceCtx, tracectx

_FRESH_OUTPUT_TAGS = frozenset({OpTag.REDUCTION, OpTag.MATMUL})


def schedule_writes(trace: TraceCtx) -> TraceCtx:
    """The trace with write-backs moved early and input-only operations moved late (see the module docstring)."""
    inputs = {p.name for p in flat_proxies(trace.args)}
    bsyms = _sink_input_only_operations(list(trace.bound_symbols), inputs)
    aliases = _input_aliases(bsyms, inputs)  # moving write-backs changes no data flow: one analysis serves both
    bsyms = _hoist_write_backs(bsyms, aliases)
    new = trace.from_trace("schedule writes", bsyms)
    _protect_outputs_from_writes(new, inputs, aliases)
    return new


def _is_write_back(bsym: BoundSymbol) -> bool:
    return OpTag.DEVICE_WRITE in bsym.sym.tags and OpTag.SIDE_EFFECT in bsym.sym.tags


def _written(bsym: BoundSymbol) -> set[str]:
    """Names of the tensors a side effect may write: all the tensors it reads (write-backs: the destination)."""
    if _is_write_back(bsym):
        return {bsym.flat_args[0].name}
    return {p.name for p in bsym.flat_args if isinstance(p, TensorProxy)}


# -- input-only operations, late ---------------------------------------------------------------------------
def _sink_input_only_operations(bsyms: list[BoundSymbol], inputs: set[str]) -> list[BoundSymbol]:
    first_reader: dict[str, int] = {}
    for i, bsym in enumerate(bsyms):
        for p in bsym.flat_args:
            first_reader.setdefault(p.name, i)
    moved: dict[int, list[BoundSymbol]] = {}  # index of the reader -> operations to run just before it
    result_positions: list[tuple[int, BoundSymbol]] = []
    for i, bsym in enumerate(bsyms):
        target = _sink_target(bsyms, i, inputs, first_reader)
        if target is None:
            result_positions.append((i, bsym))
        else:
            moved.setdefault(target, []).append(bsym)
    result = []
    for i, bsym in result_positions:
        result.extend(moved.pop(i, ()))
        result.append(bsym)
    assert not moved, "an operation was moved before a reader that is not kept"
    return result


def _sink_target(bsyms: list[BoundSymbol], i: int, inputs: set[str], first_reader: dict[str, int]) -> int | None:
    """The index of the operation that `bsyms[i]` should run just before, or None to leave it where it is."""
    bsym = bsyms[i]
    tags = bsym.sym.tags
    if OpTag.SIDE_EFFECT in tags or OpTag.RANDOM in tags or OpTag.FUSION in tags:
        return None
    outs = [p for p in bsym.flat_outs if isinstance(p, TensorProxy)]
    args = [p for p in bsym.flat_args if isinstance(p, TensorProxy)]
    if not outs or not args or any(p.name not in inputs for p in args):
        return None
    readers = [first_reader[p.name] for p in bsym.flat_outs if p.name in first_reader]
    if not readers:
        return None  # nothing reads it (an output of the program): leave it
    target = min(readers)
    if target <= i + 1:
        return None
    read = {p.name for p in args}
    for j in range(i + 1, target):
        between = bsyms[j]
        if OpTag.SIDE_EFFECT in between.sym.tags and (_written(between) & read or not _is_write_back(between)):
            return None  # never past a write into what it reads, nor past another kind of side effect
    return target


# -- write-backs, early -------------------------------------------------------------------------------------
def _hoist_write_backs(bsyms: list[BoundSymbol], aliases: dict[str, set[str]]) -> list[BoundSymbol]:
    producer: dict[str, int] = {}
    last_reader_of_input: dict[str, int] = {}  # input name -> last operation reading a value that may alias it
    last_barrier = -1  # the last side effect that is not a write-back
    last_write_into: dict[str, int] = {}  # input name -> anchor of the last write-back into it
    anchors: list[tuple[int, BoundSymbol]] = []  # (index of the operation it follows, write-back)
    kept: list[BoundSymbol] = []
    for bsym in bsyms:
        if _is_write_back(bsym):
            dst, src = bsym.flat_args[0], bsym.flat_args[1]
            anchor = max(producer.get(src.name, -1), last_reader_of_input.get(dst.name, -1), last_barrier,
                         last_write_into.get(dst.name, -1))  # fmt: skip
            last_write_into[dst.name] = anchor
            anchors.append((anchor, bsym))
            for name in aliases.get(src.name, ()):  # a later write-back into what src may share stays after it
                last_reader_of_input[name] = max(last_reader_of_input.get(name, -1), anchor)
            continue
        index = len(kept)
        kept.append(bsym)
        for p in bsym.flat_args:
            for name in aliases.get(p.name, ()):
                last_reader_of_input[name] = index
        for p in bsym.flat_outs:
            producer.setdefault(p.name, index)
        if OpTag.SIDE_EFFECT in bsym.sym.tags:
            last_barrier = index
    after: dict[int, list[BoundSymbol]] = {}
    for anchor, bsym in anchors:
        after.setdefault(anchor, []).append(bsym)
    result = list(after.pop(-1, ()))
    for i, bsym in enumerate(kept):
        result.append(bsym)
        result.extend(after.pop(i, ()))
    return result


# -- outputs that may share memory with a written input -----------------------------------------------------
def _protect_outputs_from_writes(trace: TraceCtx, inputs: set[str], aliases: dict[str, set[str]]) -> None:
    """Clones (in place in `trace`) each output that may share memory with an input written after it is made."""
    first_write: dict[str, int] = {}  # input name -> index of the first write-back into it
    for i, bsym in enumerate(trace.bound_symbols):
        if _is_write_back(bsym):
            first_write.setdefault(bsym.flat_args[0].name, i)
    if not first_write:
        return
    clones: dict[str, TensorProxy] = {}
    before: dict[int, list[BoundSymbol]] = {}
    from thunder.torch.shapes import clone  # a real cycle: thunder.torch imports the transforms

    saved = set()
    if trace.tags.get("saves_for_backward"):
        saved = {p.name for p in flat_proxies(trace.output[1])}
    with tracectx(trace):
        for out in flat_proxies(trace.output):
            if not isinstance(out, TensorProxy) or out.name in clones or (out.name in inputs and out.name not in saved):
                continue
            written = [first_write[name] for name in aliases.get(out.name, ()) if name in first_write]
            if not written:
                continue
            copy = TensorProxy(like=out)
            clones[out.name] = copy
            before.setdefault(min(written), []).append(clone.bind(out, output=copy))
    if not clones:
        return
    bsyms = []
    for i, bsym in enumerate(trace.bound_symbols):
        bsyms.extend(before.pop(i, ()))
        bsyms.append(bsym)
    trace.bound_symbols[:] = bsyms

    def cloned(x, inputs_too: bool):
        if not isinstance(x, TensorProxy) or (x.name in inputs and not inputs_too):
            return x
        return clones.get(x.name, x)

    if saved:  # an input returned as an output stays itself; only the backward's reads of it are copies
        returned, for_backward = trace.output
        trace.output = (tree_map(lambda x: cloned(x, False), returned), tree_map(lambda x: cloned(x, True), for_backward))
    else:
        trace.output = tree_map(lambda x: cloned(x, False), trace.output)


def _input_aliases(bsyms, inputs: set[str]) -> dict[str, set[str]]:
    """For each value, the inputs it may share memory with (over-approximated, see the module docstring)."""
    aliases: dict[str, set[str]] = {name: {name} for name in inputs}
    _propagate_aliases(bsyms, aliases)
    return aliases


def _propagate_aliases(bsyms, aliases: dict[str, set[str]]) -> None:
    for bsym in bsyms:
        if _is_write_back(bsym):
            continue
        if OpTag.FUSION in bsym.sym.tags and bsym.subsymbols:
            _propagate_aliases(bsym.subsymbols, aliases)  # its region: the same names inside
            continue
        tags = bsym.sym.tags
        args = [p for p in bsym.flat_args if isinstance(p, TensorProxy) and aliases.get(p.name)]
        if not args or tags & _FRESH_OUTPUT_TAGS:
            continue
        for out in bsym.flat_outs:
            if not isinstance(out, TensorProxy):
                continue
            if OpTag.ELEMENTWISE in tags and OpTag.VIEW not in tags:
                sources = [p for p in args if _may_be_the_same_tensor(p, out)]
            else:
                sources = args
            for p in sources:
                aliases.setdefault(out.name, set()).update(aliases[p.name])


def _may_be_the_same_tensor(a: TensorProxy, b: TensorProxy) -> bool:
    """Whether b may be a itself: the same dtype and shape (a symbolic size is never compared: it may be equal)."""
    shape_a, shape_b = tuple(a.shape), tuple(b.shape)
    if not all(type(s) is int for s in (*shape_a, *shape_b)):
        return a.dtype == b.dtype
    return a.dtype == b.dtype and shape_a == shape_b
