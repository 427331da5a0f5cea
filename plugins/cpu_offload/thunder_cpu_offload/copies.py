"""The copies themselves: device to pinned host memory in the forward, and back in the backward, each on a side
stream so that it overlaps with the computation on the current stream.

The three operations the transform puts in the traces call an `Offloader`:

* `to_host(t)`: after the computation that made `t` (the side stream waits for the current stream), copies it
  into pinned host memory on the side stream. `t` is marked as used by the side stream, so its device memory
  is not reused before the copy has read it, even though the forward drops `t` right after its last use.
* `prefetch(host, device)`: allocates the tensor on the device and starts the copy back on the side stream
  (after the forward's copy of the same tensor: one stream, in order); an event marks its end.
* `ready(t)`: the current stream waits for that event; from here the backward uses `t`.

The CPU must not run far ahead of the GPU: the caching allocator frees a tensor used on two streams only once
both are done with it, so while the CPU is ahead, every tensor dropped but not yet copied (or, in the backward,
not yet used) still counts as allocated, and nothing would be saved. So `to_host` waits (on the CPU) for the
copy `max_copies_in_flight` copies back, and `prefetch` for the GPU to reach the prefetch that many prefetches
back: at most that many offloaded tensors are on the device beyond the one in use. This is the price of
the memory saved: the CPU's lead over the GPU, which hides Python's overhead, is bounded by the copies.

On tensors that are not on a CUDA device the copies are plain synchronous copies (no stream, no pinned
memory): the transform does not offload them by default, and its tests use this path to check the rewrite.
"""

from __future__ import annotations

from collections import deque

import torch

_EVENT = "_thunder_cpu_offload_event"  # the prefetch's end, on the tensor it made


class Offloader:
    """The side streams (one per CUDA device) and the copies in flight of one transform."""

    def __init__(self, max_copies_in_flight: int = 2):
        if max_copies_in_flight < 1:
            raise ValueError(f"max_copies_in_flight must be at least 1, got {max_copies_in_flight}")
        self.max_copies_in_flight = max_copies_in_flight
        self._streams: dict[int, torch.cuda.Stream] = {}
        self._in_flight: dict[int, deque] = {}

    def _stream(self, device: torch.device) -> torch.cuda.Stream:
        stream = self._streams.get(device.index)
        if stream is None:
            stream = self._streams[device.index] = torch.cuda.Stream(device)
            self._in_flight[device.index] = deque()
        return stream

    def to_host(self, t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "cuda":
            return t.to("cpu", copy=True)
        side = self._stream(t.device)
        current = torch.cuda.current_stream(t.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            host.copy_(t, non_blocking=True)
        t.record_stream(side)
        self._bound_lead(t.device, side.record_event())
        return host

    def _bound_lead(self, device: torch.device, event: torch.cuda.Event) -> None:
        """Remembers `event`; waits on the CPU for the one max_copies_in_flight events back (see the docstring)."""
        events = self._in_flight[device.index]
        events.append(event)
        while len(events) > self.max_copies_in_flight:
            events.popleft().synchronize()

    def prefetch(self, host: torch.Tensor, device: torch.device) -> torch.Tensor:
        device = torch.device(device)
        if device.type != "cuda":
            return host.to(device, copy=True)
        side = self._stream(device)
        self._bound_lead(device, torch.cuda.current_stream(device).record_event())
        with torch.cuda.stream(side):
            t = torch.empty(host.shape, dtype=host.dtype, device=device)
            t.copy_(host, non_blocking=True)
        setattr(t, _EVENT, side.record_event())
        return t

    def ready(self, t: torch.Tensor) -> torch.Tensor:
        event = getattr(t, _EVENT, None)
        if event is None:
            return t
        current = torch.cuda.current_stream(t.device)
        current.wait_event(event)
        t.record_stream(current)  # allocated on the side stream, used and freed on this one
        delattr(t, _EVENT)
        return t
