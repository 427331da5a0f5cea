"""Settings of the liger plugin's tests: the trace verifier runs after every pass (the executor's passes too)."""

from __future__ import annotations

import os

os.environ.setdefault("THUNDER_DEBUG_VERIFY", "1")
