"""gr-singlink's gr_modtool-style tests (gnuradio/python/singlink_gr/qa_*.py) in the suite: every
``gr_unittest.TestCase`` of every qa module, collected by pytest as unittest classes (each module
also runs alone: ``python gnuradio/python/singlink_gr/qa_burst.py``).

Skipped as a whole where GNU Radio's Python bindings cannot be imported."""
import importlib
import sys
import unittest
from pathlib import Path

import pytest

try:
    from gnuradio import gr  # noqa: F401
except Exception as e:  # ImportError, or numpy-ABI errors from bindings built for numpy 1.x
    pytest.skip(f"GNU Radio's Python bindings are not importable ({type(e).__name__}: {e}); install Debian's "
                "gnuradio and use a venv made with --system-site-packages (tools/bootstrap does both)",
                allow_module_level=True)

PACKAGE = Path(__file__).resolve().parent.parent / "gnuradio" / "python" / "singlink_gr"
sys.path.insert(0, str(PACKAGE.parent))


def qa_classes():
    """{name: TestCase class} of every qa_*.py module of the package."""
    found = {}
    for path in sorted(PACKAGE.glob("qa_*.py")):
        module = importlib.import_module(f"singlink_gr.{path.stem}")
        for name, cls in vars(module).items():
            if isinstance(cls, type) and issubclass(cls, unittest.TestCase) and cls.__module__ == module.__name__:
                found[f"{path.stem}__{name}"] = cls
    return found


globals().update(qa_classes())   # pytest collects unittest classes by type, not by name
