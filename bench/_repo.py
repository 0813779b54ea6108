"""Shared by the bench scripts: import zoo from this checkout where it is not installed.

The GPU machine installs nothing. There the repo root goes on sys.path for ``zoo`` and the
top-level kernels/ is registered as ``zoo.kernels`` (what pyproject's package-dir does for an
install); the root is then taken off sys.path again, so that transformers' probe for the PyPI
package named ``kernels`` never finds our folder.
"""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_zoo():
    """The ``zoo`` package with ``zoo.kernels`` importable, installed or not."""
    try:
        import zoo.kernels  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT))
        import zoo

        spec = importlib.util.spec_from_file_location(
            "zoo.kernels", ROOT / "kernels" / "__init__.py", submodule_search_locations=[str(ROOT / "kernels")])
        kernels = importlib.util.module_from_spec(spec)
        sys.modules["zoo.kernels"] = kernels
        spec.loader.exec_module(kernels)
        zoo.kernels = kernels
        sys.path.remove(str(ROOT))
    import zoo

    return zoo
