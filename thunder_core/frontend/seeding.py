"""Seeding inside a jitted function: `torch.manual_seed(s)` becomes part of the program.

Eager reseeds torch's generators on every call of a function that calls `torch.manual_seed`, so each call draws
the same numbers. Run once while tracing, the seed would set the generator once, and the jitted function would
draw different numbers from its second call on. While a function is acquired, `torch.manual_seed` records the
`manual_seed` symbol instead (a side effect, kept in program order), which seeds torch's generators when the
program runs: random operations after it, run by the torch executor, draw what eager draws. Saving and restoring
the state (`torch.get_rng_state` / `torch.set_rng_state`, and `torch.cuda`'s, as `freeze_rng_state` does) are
recorded likewise; the other setters (`torch.seed`, `torch.cuda.manual_seed`...) are refused with an error that
says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import OpTag, Symbol
from thunder.core.trace import get_tracectx

_original_manual_seed = torch.manual_seed
_original_get_rng_state, _original_set_rng_state = torch.get_rng_state, torch.set_rng_state
_original_cuda_get_rng_state, _original_cuda_set_rng_state = torch.cuda.get_rng_state, torch.cuda.set_rng_state


def _manual_seed_meta(seed: int) -> None:
    return None


def _manual_seed_impl(seed: int) -> None:
    _original_manual_seed(seed)


manual_seed = Symbol("manual_seed", _manual_seed_meta, id="thunder.manual_seed", is_prim=True,
                     python_impl=_manual_seed_impl, tags=(OpTag.SIDE_EFFECT,))  # fmt: skip
manual_seed.__doc__ = "Seeds torch's random number generators (every device) when the program runs."

def _get_rng_state_meta(device: str):
    size = _original_get_rng_state().numel() if device == "cpu" else _original_cuda_get_rng_state(device).numel()
    return TensorProxy(shape=(size,), dtype=torch.uint8, device="cpu", requires_grad=False)


def _get_rng_state_impl(device: str) -> torch.Tensor:
    return _original_get_rng_state() if device == "cpu" else _original_cuda_get_rng_state(device)


def _set_rng_state_meta(state, device: str) -> None:
    return None


def _set_rng_state_impl(state: torch.Tensor, device: str) -> None:
    _original_set_rng_state(state) if device == "cpu" else _original_cuda_set_rng_state(state, device)


# (side effects both: a read of the generator is never moved past a random operation, nor dropped)
get_rng_state = Symbol("get_rng_state", _get_rng_state_meta, id="thunder.get_rng_state", is_prim=True,
                       python_impl=_get_rng_state_impl, tags=(OpTag.SIDE_EFFECT,))  # fmt: skip
set_rng_state = Symbol("set_rng_state", _set_rng_state_meta, id="thunder.set_rng_state", is_prim=True,
                       python_impl=_set_rng_state_impl, tags=(OpTag.SIDE_EFFECT,))  # fmt: skip


def _cuda_device(device) -> str:
    device = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device(device)
    return str(device if device.index is not None else torch.device("cuda", torch.cuda.current_device()))


# (module, attribute) -> what records the call while tracing
_RECORDED = {
    (torch, "manual_seed"): lambda seed: _recording_manual_seed(seed),
    (torch, "get_rng_state"): lambda: get_rng_state("cpu"),
    (torch, "set_rng_state"): lambda new_state: set_rng_state(new_state, "cpu"),
    (torch.cuda, "get_rng_state"): lambda device="cuda": get_rng_state(_cuda_device(device)),
    (torch.cuda, "set_rng_state"): lambda new_state, device="cuda": set_rng_state(new_state, _cuda_device(device)),
}
# (module, attribute) of the functions that set the generators' state and are refused inside a jitted function
_REFUSED = (
    (torch, "seed"), (torch.random, "seed"), (torch.cuda, "manual_seed"), (torch.cuda, "manual_seed_all"),
    (torch.cuda, "seed"), (torch.cuda, "seed_all"), (torch.cuda, "set_rng_state_all"),
)  # fmt: skip
_lock = threading.Lock()
_depth = 0
_saved: dict[tuple, Callable] = {}


def _tracing() -> bool:
    return get_tracectx() is not None


def _recording_manual_seed(seed) -> torch.Generator:
    manual_seed(int(seed))
    return torch.default_generator


def _recording(record: Callable, original: Callable) -> Callable:
    def recording(*args, **kwargs):
        if not _tracing():  # another thread, or outside acquisition
            return original(*args, **kwargs)
        return record(*args, **kwargs)

    return recording


def _refusing(name: str, original: Callable) -> Callable:
    def refuse(*args, **kwargs):
        if not _tracing():
            return original(*args, **kwargs)
        raise NotImplementedError(
            f"{name} inside a jitted function is not supported: it would set the random number generator's state "
            "once, while Thunder traces, not on every call as eager does. Use torch.manual_seed(seed) inside the "
            "function (Thunder reseeds on every call), or set the state before calling the jitted function."
        )

    return refuse


@contextmanager
def seeding_in_the_program() -> Iterator[None]:
    """While acquiring: torch.manual_seed records the `manual_seed` symbol; other state setters raise."""
    global _depth
    with _lock:
        if _depth == 0:
            _saved.update({(m, a): getattr(m, a) for m, a in (*_RECORDED, *_REFUSED) if hasattr(m, a)})
            for (module, attribute), record in _RECORDED.items():
                setattr(module, attribute, _recording(record, _saved[(module, attribute)]))
                if module is torch:  # torch.random's own name for the same function
                    setattr(torch.random, attribute, getattr(torch, attribute))
                    _saved.setdefault((torch.random, attribute), _saved[(module, attribute)])
            for module, attribute in _REFUSED:
                if (module, attribute) in _saved:
                    name = f"{module.__name__}.{attribute}"
                    setattr(module, attribute, _refusing(name, _saved[(module, attribute)]))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for (module, attribute), original in _saved.items():
                    setattr(module, attribute, original)
                _saved.clear()
