"""Every Hugging Face family of test_hf_models.py through the second frontend, `thunder.dynamo.thunderfx`: one
training step (the loss and every parameter's gradient) against an eager copy, with the same tiny configs and
inputs. Dynamo captures the graphs, Thunder compiles the regions it supports, and the rest (graph breaks such as
LayerDrop's `torch.rand([]) < p`, a torch.vmap Dynamo inlines) runs eagerly; a region Thunder fails on fails the
test.
"""

from __future__ import annotations

import pytest

from .harness import assert_thunderfx_training_step_matches_eager, seeded
from .test_hf_models import CASES, MOVED_CASES

FAMILIES = {**CASES, **MOVED_CASES}


@pytest.mark.parametrize("name", FAMILIES)
def test_training_step_under_thunderfx_matches_eager(name):
    case = FAMILIES[name]
    assert_thunderfx_training_step_matches_eager(seeded(lambda: case.build("eager")), case.inputs(), case.loss)
