"""Sphinx configuration of Thunder's documentation: `python3 -m sphinx -W -b html docs docs/_build/html`.

Pages are Markdown (myst-parser); the tutorials in `tutorials/` are Python scripts that sphinx-gallery runs on
the CPU during the build, so every output shown is the output of the code as it stands.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The repository's own checkout is what gets documented, installed or not (the `thunder` package lives in
# thunder_core/; an editable install or the worktree's `thunder` link makes it importable).
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "plugins" / "example_executor"))
sys.path.insert(0, str(REPO_ROOT / "plugins" / "cpu_offload"))

project = "Thunder"
author = "The Thunder developers"
copyright = "2026, The Thunder developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "tutorials/README.txt", "**/sg_execution_times.rst", "sg_execution_times.rst"]
default_role = "code"  # docstrings write `name` for code

html_theme = "furo"
html_title = "Thunder"
html_static_path: list[str] = []

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"undoc-members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" of a dataclass as fields, not a second description of each member

# The code's docstrings are plain text with Markdown-style `code` spans, not reStructuredText, and several
# engineers edit them at once: docutils' complaints about their layout must not fail the build. Every Sphinx
# warning (a missing page, a broken cross-reference, a duplicate object, a tutorial that fails) still does.
suppress_warnings = ["docutils"]

sphinx_gallery_conf = {
    "examples_dirs": ["tutorials"],
    "gallery_dirs": ["generated/tutorials"],
    "filename_pattern": r"/plot_",  # every tutorial runs
    "download_all_examples": False,
    "write_computation_times": False,
    "remove_config_comments": True,
    "show_signature": False,
    "plot_gallery": "True",
    "show_memory": False,  # measuring memory runs every tutorial under a profiler: minutes instead of seconds
}

# The tutorials' output shows what they print; thunder's compile log lines would only add noise.
logging.getLogger("thunder").setLevel(logging.WARNING)
