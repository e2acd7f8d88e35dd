"""gr-singlink's gr_modtool-style tests (gnuradio/python/singlink_gr/qa_*.py) in the suite: every
``gr_unittest.TestCase`` of every qa module, collected by pytest as unittest classes (each module
also runs alone: ``python gnuradio/python/singlink_gr/qa_burst.py``).

Skipped as a whole where GNU Radio's Python bindings cannot be imported."""
import importlib
import unittest

from gnuradio_support import GR_PYTHON, require_gnuradio

require_gnuradio()

PACKAGE = GR_PYTHON / "singlink_gr"


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
