"""Real models from pip packages (Hugging Face transformers, LitGPT) under `thunder.jit`, compared with eager.

Every model is built in code from a tiny config with random weights: nothing is downloaded. transformers and
litgpt are required, not optional: CI installs them, and a missing package fails the collection of these
tests instead of skipping them.
"""

import os

# Set here, in the package that every test module of this folder is imported through, so that it holds before
# transformers (or huggingface_hub) is first imported: Hugging Face libraries must never reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
