"""Sphinx configuration for the gnnagg documentation (``make docs``; built with ``-W``)."""

from __future__ import annotations

import sys
from pathlib import Path

# Build against the checkout this file lives in, whatever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gnnagg  # noqa: E402

project = "gnnagg"
author = "the gnnagg developers"
copyright = "2026, the gnnagg developers"
release = gnnagg.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

# The docstrings are reStructuredText with Google-style sections (Args:, Returns:, Raises:,
# Attributes:), which napoleon turns into field lists.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
# Attributes: sections become :ivar: fields, so a property documented both there and by its
# own docstring (Polynomial.einsum) is not described twice.
napoleon_use_ivar = True

autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
# Signatures stay readable; the types are in the descriptions.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
# Optional dependencies of gnnagg.data are imported only inside the functions that need them,
# so nothing needs mocking; torch, torch_geometric and numpy are real imports.
autodoc_mock_imports: list[str] = []

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"gnnagg {release}"
html_theme_options = {
    "description": "Aggregation operators for graph neural networks, drop-in for PyG",
    "fixed_sidebar": True,
}

# The API pages document each public object once, where its package exports it; the
# package-level re-exports are what users import.
suppress_warnings: list[str] = []
