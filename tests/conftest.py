"""Test-wide settings: every trace made in the tests is checked by the trace verifier after every pass."""

import os

os.environ.setdefault("THUNDER_DEBUG_VERIFY", "1")
