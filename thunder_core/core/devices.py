"""Devices as torch resolves them: a device string without an index means the current device of its type.

Torch places `torch.zeros(3, device="cuda")` on `cuda:<current device>`, and such a tensor's `.device` reads
`cuda:0` (say), never `cuda`. A proxy must report the same device as the tensor it stands for, or the first op
mixing it with an input on `cuda:0` fails the prims' same-device check. Every place that parses a device (proxy
construction, factories, `.to`, `device=` keywords) goes through `resolve_device`.
"""

from __future__ import annotations

import torch

# device types whose tensors never carry an index
_INDEXLESS = frozenset({"cpu", "meta"})


def current_device_index(device_type: str) -> int:
    """The index torch gives a tensor made on `device_type` without one (`torch.cuda.current_device()`).

    On a build or machine without that accelerator the answer is 0, the index a one-device host would give:
    traces for such devices can still be acquired (proxies hold no data), so tests of tracing run anywhere.
    """
    module = getattr(torch, device_type, None)
    is_available = getattr(module, "is_available", None)
    if is_available is None or not is_available():
        return 0
    return module.current_device()


def resolve_device(device) -> torch.device:
    """`device` (a `torch.device`, a string such as "cuda" or "cuda:1", or an index) as torch would place a tensor."""
    device = device if isinstance(device, torch.device) else torch.device(device)
    if device.index is not None or device.type in _INDEXLESS:
        return device
    return torch.device(device.type, current_device_index(device.type))


def default_device() -> torch.device:
    """The device a factory call without `device=` uses (`torch.set_default_device`, `with torch.device(...)`).

    Read from torch's device modes, as `torch.get_default_device` does, but resolved without creating a tensor
    (which, called while tracing, would be recorded).
    """
    from torch.overrides import _get_current_function_mode_stack
    from torch.utils._device import DeviceContext

    for mode in reversed(_get_current_function_mode_stack()):
        if isinstance(mode, DeviceContext):
            return resolve_device(mode.device)
    context = getattr(getattr(torch, "_GLOBAL_DEVICE_CONTEXT", None), "device_context", None)
    if context is not None:
        return resolve_device(context.device)
    return torch.device("cpu")
