"""Real models from pip packages (Hugging Face transformers, LitGPT) under `thunder.jit`, compared with eager.

Every model is built in code from a tiny config with random weights: nothing is downloaded. transformers and
litgpt are required, not optional: CI installs them, and a missing package fails the collection of these
tests instead of skipping them.
"""

import os

# Set here, in the package that every test module of this folder is imported through, so that it holds before
# transformers (or huggingface_hub) is first imported: Hugging Face libraries must never reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"

# The second model-test run (.ci/run) puts transformers 4.55 first on PYTHONPATH and names the version here, so that a
# set-up that did not take (the system's 5.23 imported instead) fails the run instead of testing 5.23 twice.
_expected_transformers = os.environ.get("THUNDER_TEST_TRANSFORMERS_VERSION")
if _expected_transformers:
    import transformers

    if not transformers.__version__.startswith(_expected_transformers + "."):
        raise ImportError(
            f"THUNDER_TEST_TRANSFORMERS_VERSION={_expected_transformers}, but transformers {transformers.__version__} "
            f"was imported from {transformers.__file__}: install it as .ci/run does (pip install --target) and put "
            "that folder first on PYTHONPATH"
        )
