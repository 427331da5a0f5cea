"""Shared set-up of the apex plugin's tests (a module name unique in the repository, so that test modules
can import it beside other test suites): the GPU tests' skip marker and dtypes, and the comparison against
eager of `thunder.testing` with the `apex` executor first."""

from __future__ import annotations

import functools
import importlib.util

import pytest
import torch

from thunder import testing

needs_apex_on_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("xentropy_cuda") is None
    or importlib.util.find_spec("fused_layer_norm_cuda") is None,
    reason="needs CUDA and Apex's extensions xentropy_cuda and fused_layer_norm_cuda (see README)",
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]

#: The comparison against eager with the `apex` executor first (thunder.testing's, for this executor).
check_against_eager = functools.partial(testing.check_against_eager, executors=("apex",))
