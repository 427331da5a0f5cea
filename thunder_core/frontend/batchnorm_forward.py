"""BatchNorm with `momentum=None` (a cumulative moving average of the batch statistics) while tracing.

torch's `_BatchNorm.forward` computes that average's factor as `1.0 / float(self.num_batches_tracked)`: a
Python number read from a buffer, which a trace of proxies cannot have. While a trace is recorded the class's
forward is a wrapper that, for such a module in training mode called on this thread's proxies, computes the
factor as a tensor (`1 / num_batches_tracked`, after the same in-place `add_(1)`) and hands it to
F.batch_norm, whose Thunder handler takes a tensor momentum; every other call runs torch's own forward.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from thunder.core.proxies import TensorProxy
from thunder.frontend.tracer import _tracers

_original_forward = _BatchNorm.forward
_lock = threading.Lock()
_depth = 0


def _cumulative_average_forward(module: _BatchNorm, input: torch.Tensor) -> torch.Tensor:
    """torch's _BatchNorm.forward in training mode with momentum=None, the factor kept a tensor."""
    module._check_input_dim(input)
    module.num_batches_tracked.add_(1)
    factor = torch.reciprocal(module.num_batches_tracked.to(torch.float64))
    return F.batch_norm(
        input, module.running_mean, module.running_var, module.weight, module.bias, True, factor, module.eps
    )


def _forward(self, input):
    cumulative = self.momentum is None and self.training and self.track_running_stats
    if cumulative and self.num_batches_tracked is not None and _tracers and isinstance(input, TensorProxy):
        return _cumulative_average_forward(self, input)
    return _original_forward(self, input)


@contextmanager
def traceable_cumulative_batch_norm():
    """Within the block, `_BatchNorm.forward` is the wrapper above; restored when the last tracer leaves."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _BatchNorm.forward = _forward
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _BatchNorm.forward = _original_forward
