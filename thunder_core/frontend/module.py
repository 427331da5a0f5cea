"""`ThunderModule`: a jitted `nn.Module` that shares its parameters and buffers with the original."""

from __future__ import annotations

import contextlib
from contextlib import contextmanager

import torch
from torch.nn.modules import module as torch_module
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)

from thunder.core.proxies import TensorProxy
from thunder.frontend.jit import ThunderFunction
from thunder.frontend.tracer import current_tracer
from thunder.frontend.transform import transform_state_dict

_global_forward_hooks = torch_module._global_forward_hooks
_global_forward_pre_hooks = torch_module._global_forward_pre_hooks
_global_backward_hooks = torch_module._global_backward_hooks
_global_backward_pre_hooks = torch_module._global_backward_pre_hooks
_GLOBAL_HOOK_TABLES = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                       "_global_backward_pre_hooks", "_global_forward_hooks_with_kwargs",
                       "_global_forward_hooks_always_called")  # fmt: skip


@contextmanager
def _global_hooks_suspended():
    """Empties torch's global module hook tables while the wrapper's own __call__ runs; the compiled module
    restores them before it traces, so the original modules still see them."""
    saved = {name: dict(getattr(torch_module, name)) for name in _GLOBAL_HOOK_TABLES}
    for name in _GLOBAL_HOOK_TABLES:
        getattr(torch_module, name).clear()
    _suspended_global_hooks.append(saved)
    try:
        yield
    finally:
        _suspended_global_hooks.pop()
        _restore(saved)


def _restore(saved: dict) -> None:
    for name, table in saved.items():
        getattr(torch_module, name).clear()
        getattr(torch_module, name).update(table)


_suspended_global_hooks: list[dict] = []

# Bumped whenever any module registers or replaces a parameter, buffer or submodule (torch's global hooks). A
# jitted module re-reads where its state lives when it changed: state created after thunder.jit (a KV cache
# built by `set_kv_cache`) is then an input of the trace, not a constant captured by the first trace.
_module_structure_version = [0]


def _structure_changed(*_) -> None:
    _module_structure_version[0] += 1  # returns None: the registration goes on unchanged


register_module_buffer_registration_hook(_structure_changed)
register_module_module_registration_hook(_structure_changed)
register_module_parameter_registration_hook(_structure_changed)


def _python_name(qualified: str) -> str:
    name = "".join(c if c.isalnum() else "_" for c in qualified)
    return name if not name[:1].isdigit() else f"p_{name}"


class _ModuleFunction(ThunderFunction):
    """Traces `model(*args, **kwargs)` with its parameters and buffers replaced by input proxies."""

    def __init__(self, model: torch.nn.Module, **kwargs):
        super().__init__(model.forward, module=model, **kwargs)
        self.model = model
        self.refresh_slots()

    def refresh_slots(self) -> None:
        """Where each parameter and buffer lives: (module, dict name, key, qualified name), tied ones once."""
        self.structure_version = _module_structure_version[0]
        seen: set[int] = set()
        self.slots = []
        for kind in ("_parameters", "_buffers"):
            for mod_name, mod in self.model.named_modules(remove_duplicate=False):
                for key, t in getattr(mod, kind).items():
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    self.slots.append((mod, kind, key, f"{mod_name}.{key}" if mod_name else key))
        self.submodules = [m for _, m in self.model.named_modules()]

    def state(self) -> list[torch.Tensor]:
        try:
            state = [getattr(mod, kind)[key] for mod, kind, key, _ in self.slots]
        except KeyError:  # `del m.weight` runs no registration hook: the slots are stale
            state = None
        if state is None or any(t is None for t in state):  # `lin.bias = None` neither
            self.refresh_slots()
            state = [getattr(mod, kind)[key] for mod, kind, key, _ in self.slots]
        return state

    def state_key(self, state) -> tuple:
        return (
            tuple([m.training for m in self.submodules]),
            tuple([(t.shape, t.dtype, t.device, t.requires_grad) for t in state]),
            # a transform that compiles differently by mode (thunder.distributed's no_sync) keys its mode here
            tuple([t.cache_key() for t in self.transforms if hasattr(t, "cache_key")]),
        )

    def state_names(self) -> list[str]:
        return [_python_name(q) for *_, q in self.slots]

    def trace_call(self, state_proxies, args, kwargs):
        # tied parameters appear once in slots; every place that held the same tensor gets the same proxy
        by_id = {id(getattr(mod, kind)[key]): proxy for (mod, kind, key, _), proxy in zip(self.slots, state_proxies)}
        replaced = []
        for mod in self.submodules:
            for kind in ("_parameters", "_buffers"):
                d = getattr(mod, kind)
                for key, t in d.items():
                    if t is not None and id(t) in by_id:
                        replaced.append((d, key, t, by_id[id(t)]))
                        d[key] = by_id[id(t)]
        attributes = _tensor_attributes(self.submodules)
        try:
            result = self.model(*args, **kwargs)
            tracer = current_tracer()
            for d, key, _, proxy in replaced:
                now = d.get(key)
                if now is not proxy and isinstance(now, torch.Tensor):
                    # forward assigned a new tensor to a buffer: eager rebinds it; we write it back in place
                    tracer.mutate(proxy, tracer.resolve(now), f"assignment to buffer {key!r}")
        finally:
            for d, key, original, _ in replaced:
                d[key] = original
            _restore_proxy_attributes(self.submodules, attributes)
        return result


def _tensor_attributes(modules) -> dict[tuple[int, str], torch.Tensor]:
    """The plain tensor attributes (not parameters or buffers) of each module, by (id(module), name)."""
    return {(id(m), k): v for m in modules for k, v in vars(m).items() if isinstance(v, torch.Tensor)}


def _restore_proxy_attributes(modules, before: dict) -> None:
    """Undoes forward's assignments of traced values to plain module attributes (GPT-J caches its rotary table
    moved to the input's device: `self.embed_positions = table.to(device)`). A proxy must not outlive its trace;
    the trace recomputes the value from the original on every call, so results are eager's."""
    for m in modules:
        for name, value in list(vars(m).items()):
            if isinstance(value, TensorProxy):
                original = before.get((id(m), name))
                if original is None:
                    delattr(m, name)
                else:
                    object.__setattr__(m, name, original)


class ThunderModule(torch.nn.Module):
    """The jitted module. Parameters, buffers, `state_dict` and attributes are the original's."""

    def __init__(self, model: torch.nn.Module, **jit_kwargs):
        super().__init__()
        self._model = model
        self._jfn = _ModuleFunction(model, **jit_kwargs)

    def __call__(self, *args, **kwargs):
        if _global_forward_hooks or _global_forward_pre_hooks or _global_backward_hooks or _global_backward_pre_hooks:
            # the global hooks run inside the compiled module, for the original module and its submodules, as in
            # eager; the wrapper itself must not add another round
            if not (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or self._backward_pre_hooks):
                return self.forward(*args, **kwargs)  # what nn.Module's call would do, less the global hooks
            # hooks on the wrapper itself: nn.Module's call runs them, with the global tables emptied meanwhile
            with _global_hooks_suspended():
                return super().__call__(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def forward(self, *args, **kwargs):
        jfn = self._jfn
        if jfn.structure_version != _module_structure_version[0]:
            jfn.refresh_slots()
        state = jfn.state()
        if _suspended_global_hooks:  # the original module's calls see the global hooks (and their guards)
            saved = _suspended_global_hooks[-1]
            _restore(saved)
            try:
                return jfn.call_with_state(state, args, kwargs, jfn.state_key(state))
            finally:
                for name in saved:
                    getattr(torch_module, name).clear()
        return jfn.call_with_state(state, args, kwargs, jfn.state_key(state))

    # parameters and state are the original module's, under the original names
    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self._model.named_parameters(prefix=prefix, recurse=recurse, remove_duplicate=remove_duplicate)

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self._model.named_buffers(prefix=prefix, recurse=recurse, remove_duplicate=remove_duplicate)

    def state_dict(self, *args, **kwargs):
        state_dict = self._model.state_dict(*args, **kwargs)
        return transform_state_dict(self._jfn.transforms, self._model, state_dict, kwargs.get("prefix", ""))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = self._model.load_state_dict(state_dict, strict=strict, assign=assign)
        if assign:
            self._jfn.refresh_slots()
        return result

    @contextlib.contextmanager
    def no_sync(self):
        """Under thunder.distributed.ddp/fsdp: the backward of forwards run inside does not synchronize gradients
        across ranks (they accumulate locally; the first backward outside synchronizes the sum)."""
        modes = [t.no_sync() for t in self._jfn.transforms if hasattr(t, "no_sync")]
        if not modes:
            raise RuntimeError("no_sync() needs a module wrapped by thunder.distributed.ddp or thunder.distributed.fsdp")
        with contextlib.ExitStack() as stack:
            for mode in modes:
                stack.enter_context(mode)
            yield

    def named_children(self):
        return self._model.named_children()

    def named_modules(self, *args, **kwargs):
        return self._model.named_modules(*args, **kwargs)

    def get_submodule(self, target: str):
        return self._model.get_submodule(target)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["_model"], name)

    def __repr__(self) -> str:
        return f"ThunderModule({self._model!r})"
