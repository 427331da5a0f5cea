"""A whole training step in one program: `loss.backward()`, `.grad`, `optimizer.step()` inside a jitted function.

    def step(x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    jstep = thunder.jit(step)

Design
------

The tracer runs `step` with proxies as for any function; the model's parameters are real tensors met while
tracing (captured constants of the trace). Three things that eager PyTorch does outside the graph are
recorded as operations of the same trace instead:

- **The backward.** `Tensor.backward` (and `torch.autograd.backward`) reaching the tracer runs the autodiff
  transform on what was recorded so far (`thunder.transforms.autodiff.backward_in_program`): the operations
  the loss depends on are replaced by their grad rules' forward parts, followed by the backward, in the
  same program. Nothing is saved or split; the fusion executors see forward, backward and update together.
- **Gradients.** Each leaf that requires grad (a parameter) has a *gradient slot* in the tracer: its `.grad`
  as the traced program sees it. `p.grad` reads and `p.grad = ...` writes inside the function go to the slot
  (the tracer's `TorchFunctionMode` sees the property's getter and setter); a backward accumulates into it, in
  place when a gradient exists, as eager's AccumulateGrad does. A `.grad` that existed before the call is an
  input of the program, read from the parameter on every call (never a captured tensor: eager code may have
  replaced it); a gradient the program creates is an output, assigned to `p.grad` after the call; in-place
  changes are written back like every other in-place operation (`prims.copy_to`).
- **The optimizer step.** `torch.optim.SGD`, `Adam` and `AdamW` have functional implementations here
  (`thunder.frontend.optimizers`), recorded when `opt.step()` is called while tracing (a global optimizer
  step pre-hook, registered only while a function is acquired, finds the optimizer; torch's own step body
  then sees no parameter groups and does nothing). Optimizer state (`exp_avg`, `exp_avg_sq`, `step`,
  `momentum_buffer`) stays in `opt.state[p]`, where torch keeps it: existing state tensors are program inputs
  read from `opt.state` on every call and updated in place; state created on the first step (lazily, as
  torch does) is a program output stored into `opt.state` after the call. The learning rate of each group
  and each parameter's step count are number inputs of the program, read on every call, so a scheduler
  changing `lr` does not recompile. Fusion executors fuse the update with them (the torchcompile executor
  passes numbers to Inductor as 0-d tensors): each parameter's update joins the region of the backward that
  computes its gradient, so the update adds no region of its own. `zero_grad` and `clip_grad_norm_` are
  torch's own code, traced through the gradient slots.

Everything read this way is checked on each call (`ProgramState.read`): a gradient or state tensor that
appeared, disappeared or changed metadata, a parameter group that changed, a hyperparameter other than `lr`
that changed, all compile a new program rather than run a stale one. The program runs without torch
autograd (its outputs do not require grad: the backward already happened).

Not supported, with an error that says so and how to proceed (run the step eagerly, or jit only the model):
other optimizers and optimizer subclasses, `amsgrad`, `capturable`, `differentiable`, a tensor `lr`, step
hooks, `retain_graph`/`create_graph`, `torch.autograd.grad`, tensor hooks and `retain_grad`, gradients of
the function's arguments.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from thunder import prims
from thunder.core.proxies import Expr, NumberProxy, TensorProxy, number_proxy
from thunder.transforms.autodiff import backward_in_program

_WAY_OUT = ("Run the training step eagerly, or jit only the model (thunder.jit(model)) and call backward() and "
            "the optimizer outside it.")


class TrainStepError(NotImplementedError):
    """A training-step feature that Thunder does not compile into the program."""


def unsupported(what: str) -> TrainStepError:
    from thunder.frontend.tracer import user_location  # a cycle: the tracer imports this module

    return TrainStepError(f"{what} (at {user_location()}) is not supported inside a jitted function. {_WAY_OUT}")


MISSING = object()  # what a reader returns when the value it reads is absent (a state key, a .grad)


def _tensor_key(t) -> tuple | None:
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        return ("object", type(t))
    return (t.shape, t.stride(), t.dtype, t.device, t.requires_grad)


def _value_key(v):
    if type(v) is float:
        return (float, struct.pack("<d", v))
    return (type(v), v)


@dataclass
class GradSlot:
    """The `.grad` of one leaf as the traced program sees it."""

    leaf: torch.Tensor  # the real parameter
    initial: TensorProxy | None  # the program input standing for the .grad the leaf has when called
    value: torch.Tensor | None  # the object handed out as `leaf.grad` now (its current value: tracer.resolve)


@dataclass
class ProgramState:
    """What one traced training step reads from and writes to objects outside the program.

    `inputs`: (proxy, reader) pairs; each reader returns the value to pass on a call (a tensor, a number) or
    MISSING. `expected`: the key each read value had while tracing. `checks`: further () -> bool conditions.
    `outputs`: (proxy, writer) pairs; the program returns the proxies after the function's own outputs and
    each writer stores the value where eager would have (`p.grad = v`, `opt.state[p]["exp_avg"] = v`).
    `after_call`: callables run after the writers (the step counters' increment)."""

    inputs: list[tuple] = field(default_factory=list)
    expected: list = field(default_factory=list)
    checks: list[Callable[[], bool]] = field(default_factory=list)
    outputs: list[tuple] = field(default_factory=list)
    after_call: list[Callable[[], None]] = field(default_factory=list)

    def add_tensor_input(self, value: torch.Tensor, reader: Callable, name_prefix: str = "g") -> TensorProxy:
        proxy = TensorProxy(like=value, requires_grad=False, strides=value.stride(), prefix=name_prefix)
        self.inputs.append((proxy, reader))
        self.expected.append(_tensor_key(value))
        return proxy

    def add_number_input(self, value, reader: Callable, what: str) -> NumberProxy:
        def not_concrete():
            raise RuntimeError(f"{what} is an input of the compiled training step; its value cannot be guarded")

        proxy = number_proxy(value, expr=Expr(not_concrete))  # an Expr of no inputs that refuses to be evaluated
        self.inputs.append((proxy, reader))
        self.expected.append(("number", type(value)))
        return proxy

    def read(self):
        """The values to pass on this call, or MISSING when the objects no longer match the program."""
        for check in self.checks:
            if not check():
                return MISSING
        values = []
        for (_, reader), expected in zip(self.inputs, self.expected):
            v = reader()
            if v is MISSING:
                return MISSING
            key = ("number", type(v)) if type(v) in (int, float) else _tensor_key(v)
            if key != expected:
                return MISSING
            values.append(v)
        return values

    def write(self, values) -> None:
        for (_, writer), v in zip(self.outputs, values):
            writer(v)
        for action in self.after_call:
            action()


class TrainingTracer:
    """The training-step part of one acquisition: gradient slots and the program's extra inputs and outputs."""

    def __init__(self, tracer):
        self.tracer = tracer
        self.state = ProgramState()
        self.slots: dict[int, GradSlot] = {}
        self.backward_done = False
        self.backwarded: set[int] = set()  # ids of the values a backward went through (a second one fails)
        self.optimizers_in_step: list = []  # (optimizer, its param_groups) while its step runs
        self.stepped: list[tuple] = []  # (optimizer, its groups' hyperparameters when its step was recorded)
        self.nested_jit_called = False  # a jitted function or module ran inside (its gradients do not reach us)

    # -- gradients ------------------------------------------------------------------------------------------
    def slot(self, leaf: torch.Tensor) -> GradSlot:
        s = self.slots.get(id(leaf))
        if s is None:
            grad = leaf.grad
            initial = None
            if grad is not None:
                if grad.requires_grad:
                    raise unsupported("a .grad that requires grad (left by backward(create_graph=True))")
                initial = self.state.add_tensor_input(grad, _grad_reader(leaf))
            else:
                self.state.checks.append(lambda: leaf.grad is None)
            s = self.slots[id(leaf)] = GradSlot(leaf, initial, initial)
            self.tracer.keepalive.append(leaf)
        return s

    def get_grad(self, t: torch.Tensor):
        """`t.grad` while tracing: the slot's object for a parameter, None for other values (as eager)."""
        leaf = self.leaf_of(t)
        if leaf is None:
            return None
        return self.slot(leaf).value

    def set_grad(self, t: torch.Tensor, value) -> None:
        leaf = self.leaf_of(t)
        if leaf is None:
            raise unsupported("assigning .grad of a value computed inside the function or of an argument")
        if value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}")
        if isinstance(value, torch.Tensor) and not isinstance(value, TensorProxy):
            value = self.tracer.resolve(value)  # a real tensor: an input the program returns, assigned after the call
        self.slot(leaf).value = value

    def leaf_of(self, t: torch.Tensor) -> torch.Tensor | None:
        """The real parameter a tensor object stands for, or None (values made by the function, arguments)."""
        if isinstance(t, TensorProxy):
            for real, proxy in zip(self.tracer.constant_tensors, self.tracer._constant_proxies.values()):
                if proxy is t:
                    return real if real.requires_grad and real.grad_fn is None else None
            return None
        return t if t.requires_grad and t.grad_fn is None else None

    def accumulate(self, leaf: torch.Tensor, grad: TensorProxy) -> None:
        s = self.slot(leaf)
        if s.value is None:
            s.value = grad
        else:
            current = self.tracer.resolve(s.value)
            if tuple(current.shape) != tuple(grad.shape) or current.dtype != grad.dtype:
                raise RuntimeError(f"the existing .grad of a parameter of shape {tuple(leaf.shape)} has shape "
                                   f"{tuple(current.shape)} and dtype {current.dtype}; backward cannot accumulate into it")  # fmt: skip
            self.tracer.mutate(s.value, prims.add(current, grad), "gradient accumulation")

    # -- the end of acquisition -----------------------------------------------------------------------------
    def finish(self, differentiable_inputs: bool) -> list:
        """Registers the writes of the gradients the program changes; returns the proxies it must output.

        A program with such state runs without torch autograd. `differentiable_inputs`: whether the trace has
        inputs that require grad (with grad mode on), which a function without a backward of its own would
        need autograd for: refused, rather than returning outputs that silently lost their gradients."""
        if differentiable_inputs and not self.backward_done and not self.stepped:
            raise unsupported("reading or assigning .grad in a jitted function that is differentiated outside it "
                              "(it has no backward() of its own)")  # fmt: skip
        for optimizer, hyperparameters in self.stepped:
            if hyperparameters != group_hyperparameters(optimizer):
                # Python code runs only while Thunder compiles: the change would happen once, not at every call
                raise unsupported("changing the optimizer's learning rate or other hyperparameters after its step "
                                  "(lr_scheduler.step()? call it after the jitted step, outside it)")  # fmt: skip
        for s in self.slots.values():
            if s.value is s.initial:
                continue  # unchanged, or changed in place: written back with the other in-place updates
            if s.value is None:
                self.state.after_call.append(_grad_writer(s.leaf, None))
            else:
                value = self.tracer.resolve(s.value)
                self.state.outputs.append((value, _grad_assigner(s.leaf)))
        return [p for p, _ in self.state.outputs]


def group_hyperparameters(optimizer) -> list[dict]:
    return [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]


def _grad_reader(leaf):
    return lambda: leaf.grad


def _grad_assigner(leaf):
    def assign(value):
        leaf.grad = value

    return assign


def _grad_writer(leaf, value):
    def write():
        leaf.grad = value

    return write


# -- backward -----------------------------------------------------------------------------------------------
def run_backward(training: TrainingTracer, tensors, grad_tensors=None, retain_graph=None, create_graph=False,
                 inputs=None) -> None:  # fmt: skip
    """`torch.autograd.backward(tensors, grad_tensors, ...)` while tracing: the backward becomes part of the
    program and the gradients accumulate into the leaves' slots."""
    from thunder.frontend.tracer import current_tracer  # a cycle: the tracer imports this module

    if create_graph:
        raise unsupported("backward(create_graph=True)")
    if retain_graph:
        raise unsupported("backward(retain_graph=True)")
    if not torch.is_grad_enabled():  # eager: nothing computed under no_grad has a graph to go back through
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn (backward() "
                           "is called with grad mode off: torch.no_grad() or torch.inference_mode())")  # fmt: skip
    tracer = current_tracer()
    trace = tracer.trace
    if len(trace._scopes) != 1:
        raise unsupported("backward() inside a traced region (a checkpointed function or a custom operator)")
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, torch.Tensor):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    outputs, cotangents = [], []
    for t, g in zip(tensors, grad_tensors, strict=True):
        value = tracer.resolve(t)
        if id(value) in training.backwarded:
            raise RuntimeError("Trying to backward through the graph a second time: the jitted function already ran "
                               "backward() through this value; compute it again (or run the step eagerly)")  # fmt: skip
        if g is None:
            if value.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = prims.full(tuple(value.shape), 1, dtype=value.dtype, device=value.device)
        outputs.append(value)
        cotangents.append(tracer.resolve(g))
    if training.nested_jit_called:
        raise unsupported("backward() in a function that calls a function or module compiled by thunder.jit (its "
                          "parameters would get no gradient); call the original module inside the jitted step")  # fmt: skip
    leaves = _leaves(training, inputs)
    wrt = [tracer.resolve(tracer.constant_proxy(leaf)) for leaf in leaves]
    names, ids = _dependencies(trace.bound_symbols, outputs)
    if not any(t.name in names for t in wrt):
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    forward, backward, grads = backward_in_program(trace, ids, wrt, outputs, cotangents, tracer.executors)
    if all(g is None for g in grads):  # only through detached or integer values: eager's loss has no grad_fn
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    trace.bound_symbols[:] = [*forward, *backward]  # the same list object: the trace records into it
    for value in outputs:
        training.backwarded.add(id(value))
    training.backward_done = True
    for leaf, g in zip(leaves, grads):
        if g is not None:
            _refuse_hooks(leaf)
            training.accumulate(leaf, g)


def _leaves(training: TrainingTracer, inputs) -> list[torch.Tensor]:
    tracer = training.tracer
    for proxy in tracer.input_proxies:
        if isinstance(proxy, TensorProxy) and proxy.requires_grad:
            raise unsupported(f"backward() with the argument {proxy.name} requiring grad (its .grad would be an "
                              "argument's gradient)")  # fmt: skip
    if inputs is not None:
        chosen = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        leaves = [training.leaf_of(t) for t in chosen]
        if any(leaf is None for leaf in leaves):
            raise unsupported("backward(inputs=...) naming a tensor that is not a captured leaf (a parameter)")
        return leaves
    leaves = []
    for real in tracer.constant_tensors:
        if real.requires_grad:
            if real.grad_fn is not None:
                raise unsupported("backward() through a captured tensor that is not a leaf (it has a grad_fn)")
            leaves.append(real)
    return leaves


def _refuse_hooks(leaf: torch.Tensor) -> None:
    if getattr(leaf, "_backward_hooks", None) or getattr(leaf, "_post_accumulate_grad_hooks", None):
        raise unsupported("a gradient hook on a parameter (register_hook / register_post_accumulate_grad_hook)")
    if leaf.retains_grad:
        raise unsupported("retain_grad()")


def _dependencies(bsyms, outputs) -> tuple[set[str], set[int]]:
    """The names the outputs depend on, and the ids of the bound symbols that compute them."""
    needed = {o.name for o in outputs}
    ids = set()
    for bsym in reversed(bsyms):
        if any(o.name in needed for o in bsym.flat_outs):
            ids.add(id(bsym))
            needed.update(a.name for a in bsym.flat_args)
    return needed, ids


# -- the torch calls the tracer hands over ------------------------------------------------------------------
NOT_HANDLED = object()
_GRAD_DESCRIPTOR = torch._C.TensorBase.__dict__["grad"]
_REFUSED = {
    torch.autograd.grad: "torch.autograd.grad",
    torch.Tensor.retain_grad: "Tensor.retain_grad()",
    torch.Tensor.register_hook: "Tensor.register_hook()",
    torch.Tensor.register_post_accumulate_grad_hook: "Tensor.register_post_accumulate_grad_hook()",
}


def handle_training_call(training: TrainingTracer, func, args, kwargs):
    """The result of a torch call that belongs to the training step (backward, `.grad`), or NOT_HANDLED."""
    if func is torch.Tensor.backward:
        _backward_call(training, *args, **kwargs)
        return None
    if func is torch.autograd.backward:
        run_backward(training, *args, **kwargs)
        return None
    if getattr(func, "__self__", None) is _GRAD_DESCRIPTOR:
        if func.__name__ == "__get__":
            return training.get_grad(args[0])
        if func.__name__ == "__set__":
            training.set_grad(args[0], args[1])
            return None
        return NOT_HANDLED
    what = _REFUSED.get(func)
    if what is not None:
        raise unsupported(what)
    return NOT_HANDLED


def _backward_call(training, tensor, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    run_backward(training, tensor, gradient, retain_graph, create_graph, inputs)


def note_nested_jit_call() -> None:
    """Called by a jitted callable: if a function is being acquired, it calls a compiled one (see run_backward)."""
    from thunder.frontend.tracer import _tracers  # a cycle: the tracer imports this module

    tracer = _tracers.top()
    if tracer is not None and tracer.training is not None:
        tracer.training.nested_jit_called = True


def uses_training(training: TrainingTracer | None) -> bool:
    """Whether the traced function took part in a training step (read or wrote .grad, ran backward or a step)."""
    return training is not None and (bool(training.slots) or training.backward_done or bool(training.state.inputs))
