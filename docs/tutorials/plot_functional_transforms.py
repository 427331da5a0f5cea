"""
Functional transforms: grad, vjp, jvp and vmap
==============================================

`thunder.grad`, `thunder.vjp`, `thunder.jvp` and `thunder.vmap` have `torch.func`'s signatures. They compose
(`vmap(grad(f))`, `grad(grad(f))`), and each composition compiles to one trace that runs on the executors.
Every result below is checked against `torch.func`.
"""

# %%
# Gradients and second derivatives
# --------------------------------
import torch
import torch.nn.functional as F

import thunder

torch.manual_seed(0)
x, w = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)


def loss(x, w):
    return torch.tanh(x @ w).sin().sum()


g = thunder.grad(loss, argnums=1)
torch.testing.assert_close(g(x, w), torch.func.grad(loss, argnums=1)(x, w))

second = thunder.grad(lambda w: thunder.grad(loss, argnums=1)(x, w).square().sum())
torch.testing.assert_close(second(w), torch.func.grad(lambda w: torch.func.grad(loss, argnums=1)(x, w).square().sum())(w))
print(thunder.last_traces(g)[-1])  # the forward and the backward, one program

# %%
# Forward mode: a Jacobian-vector product
# ---------------------------------------
out, tangent_out = thunder.jvp(lambda x: torch.tanh(x @ w), (x,), (torch.ones_like(x),))
expected_out, expected_tangent = torch.func.jvp(lambda x: torch.tanh(x @ w), (x,), (torch.ones_like(x),))
torch.testing.assert_close(tangent_out, expected_tangent)

# %%
# Per-example gradients of a small convolutional network
# -------------------------------------------------------
# `vmap(grad(f))` gives one gradient per example. Each operation is batched by its batching rule (beside the
# primitives, in `thunder/prims/batching.py`): here the convolution, the embedding and their backward
# primitives. `in_dims=None` shares an argument between the examples.
conv_w = torch.randn(4, 1, 3, 3, dtype=torch.float64)
table = torch.randn(10, 4, dtype=torch.float64)
images = torch.randn(8, 1, 1, 6, 6, dtype=torch.float64)  # 8 examples of one 6x6 image each
labels = torch.randint(0, 10, (8, 1))


def example_loss(conv_w, table, image, label):
    features = F.max_pool2d(torch.relu(F.conv2d(image, conv_w, padding=1)), 2).mean((2, 3))  # [1, 4]
    logits = features @ F.embedding(torch.arange(10), table).T  # one embedding row per class
    return F.cross_entropy(logits, label)


per_example = thunder.vmap(thunder.grad(example_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0))
grads = per_example(conv_w, table, images, labels)
expected = torch.func.vmap(torch.func.grad(example_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0))(
    conv_w, table, images, labels
)
torch.testing.assert_close(grads, expected)
print([tuple(g.shape) for g in grads])  # a gradient of each parameter for each of the 8 examples

# %%
# Sorting and gathering under vmap
# --------------------------------
# `in_dims` may name any dimension; the rules move it where the primitive needs it.
scores = torch.randn(5, 3, 7)  # 3 examples along dimension 1


def top_two(s):
    values, indices = torch.topk(s, 2, dim=-1)
    return torch.gather(s, -1, indices.flip(-1)), torch.sort(s, dim=0).values


ours = thunder.vmap(top_two, in_dims=1)(scores)
torch.testing.assert_close(ours, torch.func.vmap(top_two, in_dims=1)(scores))
print([tuple(o.shape) for o in ours])
