"""`CPUOffload`: the activations the forward saves for the backward wait in pinned CPU memory in between.

It acts after autodiff, on the forward/backward pair (`transform_traces_post_autodiff`):

* in the forward, right after each chosen saved tensor is computed, `cpu_offload_to_host(t)` starts its copy
  to pinned host memory on a side stream; the forward returns the host copy in its place, so the device memory
  is freed as soon as the forward's own last use of `t` is done (and the copy has read it);
* in the backward, `cpu_offload_prefetch(host, device)` starts the copy back one offloaded tensor ahead of
  need (the first one at the start of the backward), and `cpu_offload_ready(t)` just before the first use of
  `t` makes the computation wait for that copy. So copies overlap with computation in both directions, and at
  most two offloaded tensors (the one in use and the next) are back on the device at a time.

Which saved tensors are offloaded: those on a CUDA device of at least `min_bytes`, computed by the forward.
Not offloaded, because it would free nothing: the inputs of the forward (parameters, the user's inputs) and
views of them, and the forward's outputs (the caller holds them anyway).

On a program without CUDA tensors (a CPU program) nothing is offloaded (saved CPU tensors already are in host
memory): the traces are returned unchanged, with one `CPUOffloadWarning` per transform object.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from thunder import Transform
from thunder.extend import BoundSymbol, OpTag, Symbol, TensorProxy, TraceCtx
from thunder_cpu_offload.copies import Offloader


class CPUOffloadWarning(UserWarning):
    """The transform found nothing to offload (a CPU program, or no saved tensor large enough)."""


@dataclass(frozen=True)
class OffloadedTensor:
    """A saved tensor the last rewrite moved to host memory: its name in the traces, shape, dtype and size."""

    name: str
    shape: tuple
    dtype: torch.dtype
    nbytes: int


class CPUOffload(Transform):
    """Moves tensors saved for the backward to pinned CPU memory during the forward, and back before their use
    in the backward, on a side stream (see the module docstring).

    min_bytes: smaller saved tensors stay on the device (the copies of small tensors cost more than they free).
    max_copies_in_flight: how many copies may be pending before the CPU waits for the oldest (see
        `thunder_cpu_offload.copies`); bounds the device memory held by tensors waiting for their copy.

    `offloaded` lists what the last compiled program offloads; `offloaded_bytes` is their total size.
    """

    def __init__(self, min_bytes: int = 1 << 20, max_copies_in_flight: int = 2):
        if min_bytes < 0:
            raise ValueError(f"min_bytes must be at least 0, got {min_bytes}")
        self.min_bytes = min_bytes
        self.offloader = Offloader(max_copies_in_flight)
        self.offloaded: list[OffloadedTensor] = []
        self._symbols = _offload_symbols(self.offloader)
        self._warned = False

    @property
    def offloaded_bytes(self) -> int:
        return sum(t.nbytes for t in self.offloaded)

    def should_offload(self, t: TensorProxy) -> bool:
        """Whether a saved tensor is worth moving: on a CUDA device and at least min_bytes large."""
        return t.device.type == "cuda" and _nbytes(t) >= self.min_bytes

    def transform_traces_post_autodiff(self, forward_trace: TraceCtx, backward_trace: TraceCtx, **kwargs):
        forward, backward, self.offloaded = offload_saved_tensors(forward_trace, backward_trace,
                                                                  self.should_offload, self._symbols)  # fmt: skip
        if not self.offloaded and not self._warned:
            self._warned = True
            warnings.warn(
                "cpu_offload: no tensor saved for the backward is on a CUDA device with at least "
                f"{self.min_bytes} bytes, so nothing is offloaded (tensors of a CPU program already are in host "
                "memory); the program runs unchanged. Lower min_bytes, or leave out the 'cpu_offload' transform.",
                CPUOffloadWarning,
                stacklevel=2,
            )
        return forward, backward


def _nbytes(t: TensorProxy) -> int:
    return t.numel() * t.element_size()


def _offload_symbols(offloader: Offloader) -> dict[str, Symbol]:
    # SIDE_EFFECT: the operations use streams and host memory, so no pass may drop, reorder or recompute them
    # and a CUDA graph does not capture them.
    return {
        name: Symbol(f"cpu_offload_{name}", python_impl=getattr(offloader, name), id=f"cpu_offload.{name}",
                     tags=(OpTag.SIDE_EFFECT,))
        for name in ("to_host", "prefetch", "ready")
    }  # fmt: skip


def offload_saved_tensors(forward: TraceCtx, backward: TraceCtx, choose: Callable[[TensorProxy], bool],
                          symbols: dict[str, Symbol]) -> tuple[TraceCtx, TraceCtx, list[OffloadedTensor]]:  # fmt: skip
    """The forward/backward pair with the saved tensors `choose` accepts (among those worth it, see the module
    docstring) passed through host memory: `symbols` are the to_host, prefetch and ready operations.

    Expects the pair autodiff makes: the forward returns `(outputs, saved)`, the backward takes `saved` then the
    cotangents. Guarantees: the same results; the backward uses each offloaded tensor under its old name.
    """
    outputs, saved = forward.output
    candidates = _candidates(forward, outputs, saved, choose)
    if not candidates:
        return forward, backward, []
    hosts = {t.name: TensorProxy(_fresh_name(f"{t.name}_host", forward, backward), like=t, device="cpu",
                                 requires_grad=False) for t in candidates}  # fmt: skip
    new_forward = forward.from_trace("cpu offload (forward)", _after_producers(forward, hosts, symbols["to_host"]))
    new_forward.output = (outputs, [hosts.get(t.name, t) if isinstance(t, TensorProxy) else t for t in saved])
    new_backward = backward.from_trace("cpu offload (backward)", _before_uses(backward, candidates, hosts, symbols))
    new_backward.args = [hosts.get(a.name, a) if isinstance(a, TensorProxy) else a for a in backward.args]
    offloaded = [OffloadedTensor(t.name, tuple(t.shape), t.dtype, _nbytes(t)) for t in candidates]
    return new_forward, new_backward, offloaded


def _candidates(forward: TraceCtx, outputs, saved, choose) -> list[TensorProxy]:
    """The saved tensors to offload: computed by the forward (not an input, nor a view of one), not an output."""
    producers = {o.name: b for b in forward.bound_symbols for o in b.flat_outs}
    inputs = {a.name for a in forward.args if isinstance(a, TensorProxy)}
    returned = {o.name for o in _flat_tensors(outputs)}

    def views_an_input(name: str) -> bool:
        while name not in inputs:
            producer = producers.get(name)
            if producer is None or OpTag.VIEW not in producer.sym.tags or not producer.flat_args:
                return False
            name = producer.flat_args[0].name
        return True

    return [t for t in saved if isinstance(t, TensorProxy) and t.name in producers and t.name not in returned
            and not views_an_input(t.name) and choose(t)]  # fmt: skip


def _flat_tensors(x) -> list:
    if isinstance(x, TensorProxy):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _flat_tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _flat_tensors(v)]
    return []


def _fresh_name(base: str, *traces: TraceCtx) -> str:
    name, i = base, 0
    while any(name in trace.names for trace in traces):
        i += 1
        name = f"{base}{i}"
    for trace in traces:
        trace.names.add(name)
    return name


def _after_producers(forward: TraceCtx, hosts: dict[str, TensorProxy], to_host: Symbol) -> list[BoundSymbol]:
    """The forward's program with `to_host` right after each offloaded tensor is computed."""
    program = []
    for bsym in forward.bound_symbols:
        program.append(bsym)
        for o in bsym.flat_outs:
            if o.name in hosts:
                program.append(to_host.bind(o, output=hosts[o.name]))
    return program


def _before_uses(backward: TraceCtx, candidates: list, hosts: dict, symbols: dict) -> list[BoundSymbol]:
    """The backward's program with each offloaded tensor prefetched one ahead of need and made ready before its
    first use (under its old name)."""
    program = list(backward.bound_symbols)
    first_use = {}
    for i, bsym in enumerate(program):
        for a in bsym.flat_args:
            first_use.setdefault(a.name, i)
    order = sorted((t for t in candidates if t.name in first_use), key=lambda t: first_use[t.name])
    insert_before: dict[int, list[BoundSymbol]] = {}
    previous_use = 0
    for t in order:
        device_copy = TensorProxy(_fresh_name(f"{t.name}_prefetched", backward), like=t, requires_grad=False)
        prefetch = symbols["prefetch"].bind(hosts[t.name], t.device, output=device_copy)
        insert_before.setdefault(previous_use, []).append(prefetch)
        insert_before.setdefault(first_use[t.name], []).append(symbols["ready"].bind(device_copy, output=t))
        previous_use = first_use[t.name]
    result = []
    for i, bsym in enumerate(program):
        inserted = insert_before.get(i, ())
        # the next copy starts before the computation waits for this one: the copy engine never idles
        result.extend(b for b in inserted if b.sym is symbols["prefetch"])
        result.extend(b for b in inserted if b.sym is not symbols["prefetch"])
        result.append(bsym)
    return result
