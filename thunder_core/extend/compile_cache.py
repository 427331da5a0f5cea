"""Compile a fusion region on its first call, specialized on its inputs, with a per-executor cache.

A fusion executor's `fuse` returns a bound symbol whose implementation runs the region. Compilers
specialize on what the trace's proxies do not fully record (strides: the torch executor returns views
whose strides only the real tensors know), so compiling is best done on the region's first call. The
helpers here do it once:

    cache = CompileCache()                           # one per executor: identical regions compile once

    def fuse(self, region, fusion_index, *, options):
        key = (region_source_key, tuple(sorted(options.items())))   # what identifies the program
        impl = CompileOnFirstCall(lambda args: my_compile(region, args), key=key, cache=cache)
        sym = Symbol(f"MyFusion{fusion_index}", python_impl=impl, id=f"myex.fusion{fusion_index}",
                     tags=(OpTag.FUSION,))
        return sym.bind(*region.inputs, output=tuple(region.outputs), subsymbols=tuple(region.bound_symbols))

The cache key is `(key, defaults, input metadata)`: `key` says which program it is (include the
executor's options when they change the generated code), `defaults` the default dtype and device
(creation operations without `dtype=` read them when compiled), and the metadata each input's shape,
strides, dtype and device (other inputs: their type and value).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

__all__ = ["CompileCache", "CompileOnFirstCall", "input_metadata"]


def input_metadata(args: Sequence[Any]) -> tuple:
    """What a compiled region is specialized on, for each input: a tensor's shape, strides, dtype and device
    (requires_grad is left out: regions run under no_grad), any other value's type and value."""
    return tuple(
        (tuple(a.shape), a.stride(), a.dtype, a.device) if isinstance(a, torch.Tensor) else (type(a), a)
        for a in args
    )


class CompileCache:
    """A thread-safe cache of compiled callables: `get(key, compile)` compiles once per key.

    `compilations` counts the misses, `hits` the hits (tests and benchmarks read them).
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, Callable] = {}
        self._lock = threading.Lock()
        self.compilations = 0
        self.hits = 0

    def get(self, key: Hashable, compile: Callable[[], Callable]) -> Callable:
        """The callable cached under `key`, made by `compile()` on the first request."""
        with self._lock:  # compiling under the lock: two threads never compile the same region twice
            fn = self._entries.get(key)
            if fn is not None:
                self.hits += 1
                return fn
            fn = compile()
            self.compilations += 1
            self._entries[key] = fn
            return fn

    def clear(self) -> None:
        """Forgets every compiled callable (those already bound in traces keep working)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class CompileOnFirstCall:
    """A region's implementation that compiles on its first call, with the actual inputs.

    compile: `compile(args) -> callable`, given the first call's real arguments (use their metadata, not
        their values: the callable serves every later call of this trace).
    key: identifies the program (with the inputs' metadata it forms the cache key); None: no sharing.
    cache: where compiled callables are shared between identical regions (None: this object only).

    After the first call, the name this object is bound to in the calling trace's namespace is rebound to
    the compiled callable, so that later calls cost nothing extra. That is sound because a trace runs only
    on inputs with its cache entry's metadata, so a region inside it always sees the same input metadata.

    static_shapes: False for a region of a trace with symbolic sizes (`has_symbolic_shape`, cache="symbolic
        values"): its inputs' sizes change from call to call, so each call looks its compiled callable up by
        the inputs' metadata (one dict lookup) and compiles for new metadata, instead of being rebound.
    """

    __slots__ = ("compile", "key", "cache", "fn", "static_shapes", "_per_metadata")

    def __init__(self, compile: Callable[[tuple], Callable], *, key: Hashable | None = None,
                 cache: CompileCache | None = None, static_shapes: bool = True):  # fmt: skip
        self.compile = compile
        self.key = key
        self.cache = cache
        self.fn: Callable | None = None
        self.static_shapes = static_shapes
        self._per_metadata: dict = {}

    def __call__(self, *args):
        if not self.static_shapes:
            metadata = input_metadata(args)
            fn = self._per_metadata.get(metadata)
            if fn is None:
                fn = self._per_metadata[metadata] = self._compiled(args)
            return fn(*args)
        fn = self.fn
        if fn is None:
            fn = self.fn = self._compiled(args)
            caller = sys._getframe(1)
            # Only the functions Thunder compiles from traces (see TraceCtx.python_callable) are rebound.
            if caller.f_code.co_filename.startswith("thunder."):
                namespace = caller.f_globals
                for name in [k for k, v in namespace.items() if v is self]:
                    namespace[name] = fn
        return fn(*args)

    def _compiled(self, args: tuple) -> Callable:
        if self.cache is None or self.key is None:
            return self.compile(args)
        defaults = (torch.get_default_dtype(), torch.get_default_device())
        return self.cache.get((self.key, defaults, input_metadata(args)), lambda: self.compile(args))
