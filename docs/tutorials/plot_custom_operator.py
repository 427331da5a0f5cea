"""
A custom operator and executor
==============================

An *operator executor* brings its own operations to Thunder. This tutorial registers a new operator with a
gradient, then claims an existing `thunder.torch` operation so that users' unchanged PyTorch code runs on the
executor's kernel.
"""

# %%
# An executor and an operator
# ---------------------------
# `OperatorExecutor.register_operator` takes a *meta* function (output metadata from input metadata; it runs
# on proxies while tracing) and an implementation that runs on real tensors.
import torch

import thunder
import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.extend import OperatorExecutor

tutorial_ex = OperatorExecutor("tutorial_ex", version="0.1")
thunder.extend.register_executor(tutorial_ex)


def softplus_meta(x: TensorProxy, beta: float) -> TensorProxy:
    return TensorProxy(like=x)


def softplus_impl(x: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.log1p(torch.exp(beta * x)) / beta  # stands for a hand-written kernel


my_softplus = tutorial_ex.register_operator("my_softplus", meta=softplus_meta, fn=softplus_impl)


def model(x):
    return my_softplus(x, 2.0).sum(dim=1)


x = torch.randn(3, 4)
jmodel = thunder.jit(model, executors=[tutorial_ex])
torch.testing.assert_close(jmodel(x), torch.nn.functional.softplus(x, beta=2.0).sum(dim=1))
print(thunder.last_traces(jmodel)[-1])

# %%
# A gradient
# ----------
# Thunder knows nothing about the inside of ``my_softplus``, so it needs a rule for its gradient. A
# ``grad_transform`` computes the forward with the operator itself, reads the output's cotangent with
# `get_grad` and accumulates the input's gradient with `put_grad`, using any traceable operations.
from thunder.core.transforms import get_grad, put_grad  # noqa: E402 (imported where the tutorial needs it)


def my_softplus_grad(x, beta):
    out = my_softplus(x, beta)
    g = get_grad(out)
    put_grad(x, g * torch.sigmoid(beta * x))  # d/dx softplus(x) = sigmoid(beta * x)
    return out


tutorial_ex.register_implementation(my_softplus, grad_transform=my_softplus_grad)

x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
jmodel = thunder.jit(model, executors=[tutorial_ex])
jmodel(x).sum().backward()
torch.testing.assert_close(x.grad, torch.sigmoid(2.0 * x).detach())  # the analytic derivative
print(thunder.last_backward_traces(jmodel)[-1])

# %%
# The executor must be in the list for its gradient rule to be used; otherwise Thunder says so:
try:
    thunder.jit(model, executors=["torch"])(torch.randn(3, 4, requires_grad=True))
except NotImplementedError as error:
    print(error)

# %%
# Claiming an existing operation
# ------------------------------
# `register_implementation` with a *checker* claims a `thunder.torch` symbol whenever the checker accepts
# the call; the *execution transform* says how to run it. Here the executor takes `torch.nn.functional.softplus`
# for floating-point tensors, and user code does not change.


def softplus_checker(a, beta=1.0, threshold=20.0):
    return a.dtype.is_floating_point


def softplus_on_my_kernel(a, beta=1.0, threshold=20.0):
    return my_softplus(a, beta)


tutorial_ex.register_implementation(
    ltorch.softplus, checker=softplus_checker, execution_transform=softplus_on_my_kernel
)


def user_code(x):
    return torch.nn.functional.softplus(x, beta=0.5) * 3


x = torch.randn(8)
juser = thunder.jit(user_code, executors=[tutorial_ex])
torch.testing.assert_close(juser(x), user_code(x))
print(thunder.last_traces(juser)[-1])

# %%
# `thunder.examine` names the executor that claims each operation when the executor is in the default list:
thunder.add_default_executor(tutorial_ex)
from thunder.examine import examine  # noqa: E402 (imported where the tutorial needs it)

examine(user_code, x)
thunder.extend.remove_default_executor(tutorial_ex)
