"""What `thunder.jit` does not support among PyTorch's OpInfo samples: the expected failures of
tests/test_opinfo.py.

Each entry names an OpInfo (with its variant, as `opinfo_name` prints it), the dtypes and device type it
applies to (None: all), the reason, and `message`: a regular expression that every failing sample's error
must match, so that the error names the unsupported feature. An entry never excuses a wrong result: a sample
that returns something other than eager's fails the test whatever the table says. An entry whose samples all
pass fails the test as unexpectedly passing, so the table stays the honest list of what is missing.

"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ExpectedFailure:
    """One unsupported (op, dtypes, device): every failing sample must raise an error matching `message`."""

    op: str
    reason: str
    message: str
    dtypes: tuple[torch.dtype, ...] | None = None
    device_type: str | None = None
    # fails only where gradients are checked (float32 in CI, every differentiable dtype in the full sweep)
    grad_only: bool = False

    def applies(self, op: str, dtype: torch.dtype, device_type: str, gradients_checked: bool) -> bool:
        return (
            self.op == op
            and (self.dtypes is None or dtype in self.dtypes)
            and (self.device_type is None or self.device_type == device_type)
            and (gradients_checked or not self.grad_only)
        )

    def excuses(self, kind: str, error_message: str) -> bool:
        """Whether a failing sample (kind "error" or "mismatch", with its message) is this entry's failure."""
        return kind == "error" and re.search(self.message, error_message) is not None


def _no_symbol(op: str, torch_name: str) -> ExpectedFailure:
    """An op with no Thunder symbol whose torch meta kernel cannot infer its outputs either."""
    return ExpectedFailure(
        op, "no Thunder symbol, and torch's meta kernel cannot run it", rf"Thunder has no symbol for {re.escape(torch_name)}"
    )


def _data_dependent(op: str, what: str = "needs the value of a tensor") -> ExpectedFailure:
    """An output whose shape or value depends on a tensor's data: tracing with proxies cannot know it."""
    return ExpectedFailure(op, "data-dependent output", what)


def _inplace(op: str, method: str) -> ExpectedFailure:
    """An in-place Tensor method with no functional form in Thunder."""
    return ExpectedFailure(
        op, "in-place method without a functional form", rf"in-place operation Tensor\.{method} .*has no functional form"
    )


def _sparse(op: str, device_type: str | None = None) -> ExpectedFailure:
    """An op whose samples pass sparse (CSR) tensors: Thunder's proxies are strided tensors only."""
    return ExpectedFailure(op, "sparse tensors", r"sparse tensors are not supported", device_type=device_type)


EXPECTED_FAILURES: tuple[ExpectedFailure, ...] = (
    # data-dependent shapes or values
    _data_dependent("item"),
    _data_dependent("masked_select"),
    _data_dependent("nonzero"),
    _data_dependent("argwhere"),
    _data_dependent("unique"),
    _data_dependent("index_put", r"index_put with a boolean mask: .*data-dependent shape"),
    _data_dependent("__getitem__", r"indexing with a boolean mask gives a data-dependent shape"),
    # in-place methods that change the tensor's shape
    _inplace("resize_", "resize_"),
    _inplace("resize_as_", "resize_as_"),
    # no symbol, and no meta kernel
    _no_symbol("equal", "torch.equal"),
    _no_symbol("allclose", "torch.allclose"),
    _no_symbol("unique_consecutive", "torch.functional.unique_consecutive"),
    _no_symbol("to_sparse", "torch.Tensor.to_sparse"),
    _no_symbol("linalg.lstsq", "torch.linalg_lstsq"),
    _no_symbol("linalg.lstsq.grad_oriented", "torch.linalg_lstsq"),
    _no_symbol("bincount", "torch.bincount"),
    _data_dependent("nn.functional.one_hot", r"num_classes=-1 .*data-dependent shape"),
    # sparse inputs (torch.sparse.mm with a reduction has a CPU kernel only: on CUDA eager raises too)
    _sparse("sparse.sampled_addmm"),
    _sparse("sparse.mm.reduce", device_type="cpu"),
)  # fmt: skip


def expected_failure(op: str, dtype: torch.dtype, device_type: str, gradients_checked: bool) -> ExpectedFailure | None:
    """The table's entry for the OpInfo at the dtype on the device type, if any."""
    matches = (entry for entry in EXPECTED_FAILURES if entry.applies(op, dtype, device_type, gradients_checked))
    return next(matches, None)
