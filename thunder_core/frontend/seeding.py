"""Seeding inside a jitted function: `torch.manual_seed(s)` becomes part of the program.

Eager reseeds torch's generators on every call of a function that calls `torch.manual_seed`, so each call draws
the same numbers. Run once while tracing, the seed would set the generator once, and the jitted function would
draw different numbers from its second call on. While a function is acquired, `torch.manual_seed` records the
`manual_seed` symbol instead (a side effect, kept in program order), which seeds torch's generators when the
program runs: random operations after it, run by the torch executor, draw what eager draws. The other ways to
set the generators' state from inside (`torch.seed`, `torch.set_rng_state`, `torch.cuda.manual_seed`...) are
refused with an error that says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from thunder.core.symbol import OpTag, Symbol
from thunder.core.trace import get_tracectx

_original_manual_seed = torch.manual_seed


def _manual_seed_meta(seed: int) -> None:
    return None


def _manual_seed_impl(seed: int) -> None:
    _original_manual_seed(seed)


manual_seed = Symbol("manual_seed", _manual_seed_meta, id="thunder.manual_seed", is_prim=True,
                     python_impl=_manual_seed_impl, tags=(OpTag.SIDE_EFFECT,))  # fmt: skip
manual_seed.__doc__ = "Seeds torch's random number generators (every device) when the program runs."

# (module, attribute) of the functions that set the generators' state and are refused inside a jitted function
_REFUSED = (
    (torch, "seed"), (torch.random, "seed"), (torch, "set_rng_state"), (torch.random, "set_rng_state"),
    (torch.cuda, "manual_seed"), (torch.cuda, "manual_seed_all"), (torch.cuda, "seed"), (torch.cuda, "seed_all"),
    (torch.cuda, "set_rng_state"), (torch.cuda, "set_rng_state_all"),
)  # fmt: skip
_lock = threading.Lock()
_depth = 0
_saved: dict[tuple, Callable] = {}


def _tracing() -> bool:
    return get_tracectx() is not None


def _recording_manual_seed(seed) -> torch.Generator:
    if not _tracing():  # another thread, or outside acquisition
        return _original_manual_seed(seed)
    manual_seed(int(seed))
    return torch.default_generator


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
            targets = [(torch, "manual_seed"), (torch.random, "manual_seed"), *_REFUSED]
            _saved.update({(m, a): getattr(m, a) for m, a in targets if hasattr(m, a)})
            torch.manual_seed = torch.random.manual_seed = _recording_manual_seed
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
