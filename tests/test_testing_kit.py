"""thunder.testing, the kit executor packages test their kernels with: it must pass a correct executor
and fail one whose forward, gradient or training diverges from eager."""

from __future__ import annotations

import pytest
import torch

import thunder
import thunder.torch as ltorch
from thunder.extend import OperatorExecutor, get_grad, put_grad
from thunder.testing import (
    LlamaStyle,
    assert_close_to_reference,
    assert_trains_like_eager,
    check_against_eager,
)


def sin_executor(name: str, grad_scale: float = 1.0, forward=torch.sin):
    """An executor that runs torch.sin with `forward` and differentiates it as cos(x) * grad_scale."""
    ex = OperatorExecutor(name)
    sin_op = ex.register_operator(f"{name}_sin", like=torch.sin, fn=forward)

    def grad(a):
        out = sin_op(a)
        put_grad(a, get_grad(out) * ltorch.cos(a) * grad_scale)
        return out

    ex.register_implementation(ltorch.sin, execution_transform=sin_op, grad_transform=grad)
    return ex


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_correct_executor_passes_and_its_operator_is_reported(dtype):
    ex = sin_executor("kit_good_sin")
    ops = check_against_eager(lambda x: torch.sin(x) * 2, (torch.randn(16, 8, dtype=dtype),), dtype, executors=[ex])
    assert "kit_good_sin.kit_good_sin_sin" in ops


def test_a_wrong_forward_fails():
    ex = sin_executor("kit_cos_forward", forward=torch.cos)
    with pytest.raises(AssertionError, match="output"):
        check_against_eager(torch.sin, (torch.randn(16, 8),), torch.float32, executors=[ex])


def test_a_wrong_gradient_fails():
    ex = sin_executor("kit_half_grad", grad_scale=0.5)
    with pytest.raises(AssertionError, match="gradient 0"):
        check_against_eager(torch.sin, (torch.randn(16, 8),), torch.float32, executors=[ex])


def test_a_result_in_another_dtype_fails():
    with pytest.raises(AssertionError, match="expected dtype torch.bfloat16"):
        assert_close_to_reference(torch.ones(3), torch.ones(3), torch.bfloat16)


def test_a_function_that_changes_its_argument_fails():
    def count_in_place(x, counts):  # an integer argument: it does not require grad, so eager allows this
        counts.add_(1)
        return x * counts

    args = (torch.randn(4), torch.arange(4))
    with pytest.raises(AssertionError, match="argument 1 was changed in place"):
        check_against_eager(count_in_place, args, torch.float32, executors=["torch"])


def test_llama_style_training_matches_eager_with_the_default_executors():
    torch.manual_seed(0)
    model = LlamaStyle(vocab=64, dim=32, heads=2, hidden=48, layers=1)
    executors = [e.name for e in thunder.get_default_executors()]
    assert_trains_like_eager(model, executors, device="cpu", batch_shape=(2, 8), tolerance=1e-5)


def test_training_with_a_wrong_gradient_fails():
    class SinModel(LlamaStyle):
        def forward(self, tokens, targets):
            return super().forward(tokens, targets) + torch.sin(self.norm).sum()

    torch.manual_seed(0)
    model = SinModel(vocab=64, dim=32, heads=2, hidden=48, layers=1)
    with pytest.raises(AssertionError):
        assert_trains_like_eager(model, [sin_executor("kit_train_half_grad", grad_scale=0.5)], device="cpu",
                                 batch_shape=(2, 8), tolerance=1e-5)  # fmt: skip


def test_each_gradient_is_checked_in_its_arguments_dtype():
    # a float32 table beside bfloat16 activations (rotary frequencies) keeps a float32 gradient, as in eager
    x, freqs = torch.randn(4, 8, dtype=torch.bfloat16), torch.rand(4, 8)
    check_against_eager(lambda x, f: x * f.cos().to(x.dtype), (x, freqs), torch.bfloat16, executors=["torch"], scale=2)
    with pytest.raises(AssertionError, match="gradient 1: expected dtype torch.float32, got torch.bfloat16"):
        assert_close_to_reference(torch.ones(3, dtype=torch.bfloat16), torch.ones(3), torch.bfloat16,
                                  what="gradient 1", result_dtype=torch.float32)  # fmt: skip
