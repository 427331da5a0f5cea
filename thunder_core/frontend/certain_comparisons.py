"""`bool()` of a comparison that the range of a uniform draw decides, such as LayerDrop with `layerdrop=0`.

Hugging Face's LayerDrop (transformers 4.x: BART, Whisper, Wav2Vec2 and others) writes, in training mode,
`if torch.rand([]) < self.layerdrop:`. torch.rand draws from [0, 1), so with `layerdrop <= 0` (the usual
setting) the comparison is False whatever is drawn, and with `layerdrop >= 1` it is True: the branch is not
data-dependent at all. The tracer answers `bool()` of such a comparison (of a tensor straight from torch.rand
or torch.rand_like with a Python number) and still records the draw, so the RNG advances as in eager. Any other
`bool(tensor)` remains a data-dependent error.
"""

from __future__ import annotations

from numbers import Real

from thunder.core.proxies import NumberProxy, TensorProxy
from thunder.core.trace import get_tracectx

_UNIFORM = frozenset({"ltorch.rand", "ltorch.rand_like"})
# comparison of u in [0, 1) with c -> (c at or below which the answer is certain, that answer,
#                                       c at or above which it is certain, that answer)
_CERTAIN = {
    "ltorch.lt": (0, False, 1, True),  # u < c
    "ltorch.le": (-1e-300, False, 1, True),  # u <= c: certain False only below 0
    "ltorch.ge": (0, True, 1, False),  # u >= c
    "ltorch.gt": (-1e-300, True, 1, False),  # u > c: certain True only below 0
}


def _producer(proxy: TensorProxy):
    trace = get_tracectx()
    if trace is None:
        return None
    for bsym in reversed(trace.bound_symbols):
        outputs = bsym.output if isinstance(bsym.output, (tuple, list)) else (bsym.output,)
        if any(o is proxy for o in outputs):
            return bsym
    return None


def certain_truth(proxy) -> bool | None:
    """The value of `bool(proxy)` where it cannot depend on the data drawn (see the module docstring); else None."""
    if not isinstance(proxy, TensorProxy) or proxy.numel() != 1:
        return None
    comparison = _producer(proxy)
    if comparison is None or comparison.sym.id not in _CERTAIN or len(comparison.args) != 2:
        return None
    draw, bound = comparison.args
    if not isinstance(bound, Real) or isinstance(bound, (bool, NumberProxy)) or not isinstance(draw, TensorProxy):
        return None
    source = _producer(draw)
    if source is None or source.sym.id not in _UNIFORM:
        return None
    low, low_answer, high, high_answer = _CERTAIN[comparison.sym.id]
    if bound <= low:
        return low_answer
    if bound >= high:
        return high_answer
    return None
