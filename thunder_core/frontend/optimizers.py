"""`optimizer.step()` inside a jitted function: functional SGD, Adam and AdamW recorded into the program.

See `thunder.frontend.train_step` for the design. While a function is acquired, `intercepting_optimizer_steps`
registers a global optimizer step pre-hook and post-hook (torch calls them around every `Optimizer.step`). The
pre-hook records the update of the optimizer that is stepping into the trace, from the gradient slots, and
hides its parameter groups from torch's own step body, which then updates nothing; the post-hook (and, should
the step raise, the end of acquisition) gives them back.

The updates follow torch's single-tensor and foreach implementations operation for operation (in the same
order, with the same Python-float arithmetic on hyperparameters), so the results match eager's; `fused=True`
is accepted and computed the same way (torch's fused kernels differ from it by rounding only).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.frontend.train_step import MISSING, TrainingTracer, _value_key, group_hyperparameters, unsupported

# hyperparameters every supported optimizer reads, besides "lr" (a number input) and "params"
_SPECIALIZED = {
    torch.optim.SGD: ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "fused",
                      "differentiable"),
    torch.optim.Adam: ("betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "fused", "capturable",
                       "differentiable", "decoupled_weight_decay"),
    torch.optim.AdamW: ("betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "fused", "capturable",
                        "differentiable", "decoupled_weight_decay"),
}  # fmt: skip


@contextmanager
def intercepting_optimizer_steps(training: TrainingTracer):
    """Inside: `opt.step()` called by the function being traced (in this thread) records its update."""

    def pre_hook(optimizer, args, kwargs):
        if _active(training):
            _check_call(optimizer, args, kwargs)
            record_step(training, optimizer)
            training.optimizers_in_step.append((optimizer, optimizer.param_groups))
            optimizer.param_groups = []  # torch's step body updates nothing; given back by post_hook
        return None

    def post_hook(optimizer, args, kwargs):
        if _active(training):
            _give_back(training, optimizer)

    pre_hook.thunder_tracing = post_hook.thunder_tracing = True  # not the user's: see _check_call
    pre = register_optimizer_step_pre_hook(pre_hook)
    post = register_optimizer_step_post_hook(post_hook)
    try:
        yield
    finally:
        pre.remove()
        post.remove()
        while training.optimizers_in_step:  # a step that raised: its groups are the user's, give them back
            optimizer, groups = training.optimizers_in_step.pop()
            optimizer.param_groups = groups


def _active(training: TrainingTracer) -> bool:
    from thunder.frontend.tracer import _tracers  # a cycle: the tracer imports this module

    return bool(_tracers) and _tracers[-1] is training.tracer


def _give_back(training: TrainingTracer, optimizer) -> None:
    for i in range(len(training.optimizers_in_step) - 1, -1, -1):
        opt, groups = training.optimizers_in_step[i]
        if opt is optimizer:
            opt.param_groups = groups
            del training.optimizers_in_step[i]
            return


def _check_call(optimizer, args, kwargs) -> None:
    kind = type(optimizer)
    if kind not in _SPECIALIZED:
        raise unsupported(f"{kind.__module__}.{kind.__qualname__}.step() (Thunder compiles torch.optim.SGD, Adam and "
                          f"AdamW steps, not subclasses or other optimizers)")  # fmt: skip
    if len(args) > 1 or kwargs.get("closure") is not None:
        raise unsupported("optimizer.step(closure)")
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

    global_hooks = [*_global_optimizer_pre_hooks.values(), *_global_optimizer_post_hooks.values()]
    users = [h for h in global_hooks if not getattr(h, "thunder_tracing", False)]  # other threads' tracing too
    if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks or users:
        raise unsupported("an optimizer step hook (register_step_pre_hook / register_step_post_hook)")
    for group in optimizer.param_groups:
        for flag in ("amsgrad", "capturable", "differentiable"):
            if group.get(flag):
                raise unsupported(f"{kind.__name__}({flag}=True)")
        if isinstance(group["lr"], torch.Tensor) or type(group["lr"]) not in (int, float):
            raise unsupported(f"{kind.__name__} with a learning rate of type {type(group['lr']).__name__} (use a float)")


# -- recording the update ----------------------------------------------------------------------------------
def record_step(training: TrainingTracer, optimizer) -> None:
    """Records `optimizer.step()` into the trace: parameter updates in place, state read from and written to
    `optimizer.state`, `lr` and step counts as number inputs; adds the checks that the program still applies."""
    state = training.state
    kind = type(optimizer)
    groups = optimizer.param_groups
    if any(opt is optimizer for opt, _ in training.stepped):
        # the second step would read the state the first one creates, which exists only once the program ran
        raise unsupported("a second optimizer.step() of the same optimizer in one jitted function")
    training.stepped.append((optimizer, group_hyperparameters(optimizer)))
    traced = [(list(g["params"]), {k: _value_key(g.get(k)) for k in _SPECIALIZED[kind]}) for g in groups]

    def same_groups() -> bool:
        now = optimizer.param_groups
        if len(now) != len(traced):
            return False
        for g, (params, hyper) in zip(now, traced):
            p_now = g["params"]
            if len(p_now) != len(params) or any(a is not b for a, b in zip(p_now, params)):
                return False
            if any(_value_key(g.get(k)) != v for k, v in hyper.items()):
                return False
        return True

    state.checks.append(same_groups)
    for index, group in enumerate(groups):
        lr = state.add_number_input(group["lr"], _lr_reader(optimizer, index), "the learning rate")
        for p in group["params"]:
            grad = training.get_grad(p)
            if grad is None:
                state.checks.append(_state_absent_or_present(optimizer, p, bool(optimizer.state.get(p))))
                continue
            grad = training.tracer.resolve(grad)
            if kind is torch.optim.SGD:
                _sgd_param(training, optimizer, group, p, grad, lr)
            else:
                _adam_param(training, optimizer, group, p, grad, lr)


def _lr_reader(optimizer, index: int):
    def read():
        groups = optimizer.param_groups
        return groups[index]["lr"] if index < len(groups) else MISSING

    return read


def _state_absent_or_present(optimizer, p, present: bool):
    return lambda: bool(optimizer.state.get(p)) == present


def _state_tensor(training: TrainingTracer, optimizer, p, key: str):
    """The state tensor `optimizer.state[p][key]` as a program input (None when absent at trace time); the
    check that it stays so is part of the input's expected key."""
    entry = optimizer.state.get(p)
    value = entry.get(key) if entry else None
    if value is None:
        training.state.checks.append(lambda: (optimizer.state.get(p) or {}).get(key) is None)
        return None
    if not isinstance(value, torch.Tensor):
        raise unsupported(f"optimizer state {key!r} of type {type(value).__name__}")

    def read():
        entry = optimizer.state.get(p)
        return MISSING if not entry or key not in entry else entry[key]

    return training.state.add_tensor_input(value, read, name_prefix="s")


def _store_new_state(training: TrainingTracer, optimizer, p, key: str, value: TensorProxy) -> None:
    def write(v):
        optimizer.state[p][key] = v

    training.state.outputs.append((value, write))


def _update_param(training: TrainingTracer, p, new_value) -> None:
    training.tracer.mutate(p, new_value, "optimizer.step()")


def _update_state(training: TrainingTracer, proxy: TensorProxy, new_value) -> None:
    training.tracer.mutate(proxy, new_value, "optimizer.step()")


def _param_value(training: TrainingTracer, p):
    return training.tracer.resolve(p)


def _sgd_param(training, optimizer, group, p, grad, lr) -> None:
    # torch.optim.sgd._single_tensor_sgd / _multi_tensor_sgd, one parameter
    param = _param_value(training, p)
    momentum, dampening, weight_decay = group["momentum"], group["dampening"], group["weight_decay"]
    if group["maximize"]:
        grad = ltorch.neg(grad)
    if weight_decay != 0:
        grad = ltorch.add(grad, param, alpha=weight_decay)
    if momentum != 0:
        buf = _state_tensor(training, optimizer, p, "momentum_buffer")
        if buf is None:
            new_buf = ltorch.clone(grad)
            _store_new_state(training, optimizer, p, "momentum_buffer", new_buf)
        else:
            new_buf = ltorch.add(ltorch.mul(training.tracer.resolve(buf), momentum), grad, alpha=1 - dampening)
            _update_state(training, buf, new_buf)
        grad = ltorch.add(grad, new_buf, alpha=momentum) if group["nesterov"] else new_buf
    # param.add_(grad, alpha=-lr), lr being a number input: no comparison with 1 (it would specialize on lr)
    _update_param(training, p, ltorch.add(param, ltorch.mul(grad, -lr)))


def _adam_param(training, optimizer, group, p, grad, lr) -> None:
    # torch.optim.adam._single_tensor_adam / _multi_tensor_adam (non-capturable), one parameter
    tracer = training.tracer
    param = _param_value(training, p)
    beta1, beta2 = group["betas"]
    weight_decay, eps = group["weight_decay"], group["eps"]
    decoupled = group.get("decoupled_weight_decay", type(optimizer) is torch.optim.AdamW)
    exp_avg = _state_tensor(training, optimizer, p, "exp_avg")
    exp_avg_sq = _state_tensor(training, optimizer, p, "exp_avg_sq")
    if exp_avg is None or exp_avg_sq is None:
        if exp_avg is not None or exp_avg_sq is not None or (optimizer.state.get(p) or {}).get("step") is not None:
            raise unsupported("Adam state with only some of step, exp_avg and exp_avg_sq")
        step = 0.0
        avg, avg_sq = ltorch.zeros_like(param), ltorch.zeros_like(param)
        _initialize_step(training, optimizer, p, group)
    else:
        step = training.state.add_number_input(_step_value(optimizer, p), _step_reader(optimizer, p), "the step count")
        training.state.after_call.append(_step_increment(optimizer, p))
        avg, avg_sq = tracer.resolve(exp_avg), tracer.resolve(exp_avg_sq)
    step = step + 1
    if group["maximize"]:
        grad = ltorch.neg(grad)
    if weight_decay != 0:
        if decoupled:
            param = ltorch.mul(param, 1 - lr * weight_decay)
        else:
            grad = ltorch.add(grad, param, alpha=weight_decay)
    avg = ltorch.lerp(avg, grad, 1 - beta1)
    avg_sq = ltorch.addcmul(ltorch.mul(avg_sq, beta2), grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    denom = ltorch.add(ltorch.true_divide(ltorch.sqrt(avg_sq), bias_correction2_sqrt), eps)
    # param.addcdiv_(avg, denom, value=-step_size), without addcdiv's comparison of value with 1 (see _sgd_param)
    _update_param(training, p, ltorch.add(param, ltorch.mul(ltorch.true_divide(avg, denom), -step_size)))
    if exp_avg is None:
        _store_new_state(training, optimizer, p, "exp_avg", avg)
        _store_new_state(training, optimizer, p, "exp_avg_sq", avg_sq)
    else:
        _update_state(training, exp_avg, avg)
        _update_state(training, exp_avg_sq, avg_sq)


def _step_value(optimizer, p) -> float:
    step = optimizer.state[p]["step"]
    with torch._C.DisableTorchFunction():  # a real tensor read while tracing, not an operation of the program
        return float(step.item()) if isinstance(step, torch.Tensor) else float(step)


def _step_reader(optimizer, p):
    def read():
        entry = optimizer.state.get(p)
        step = entry.get("step") if entry else None
        if not isinstance(step, torch.Tensor):
            return MISSING
        return float(step.item())

    return read


def _step_increment(optimizer, p):
    def increment():
        optimizer.state[p]["step"] += 1  # in place, as torch's step does (a CPU tensor, or fused's on the device)

    return increment


def _initialize_step(training: TrainingTracer, optimizer, p, group) -> None:
    from torch.optim.optimizer import _get_scalar_dtype

    def initialize():
        # as torch.optim.Adam._init_group creates it, after one step
        if group["fused"] or group["capturable"]:
            step = torch.ones((), dtype=_get_scalar_dtype(is_fused=group["fused"]), device=p.device)
        else:
            step = torch.tensor(1.0, dtype=_get_scalar_dtype())
        optimizer.state[p]["step"] = step

    training.state.after_call.insert(0, initialize)
