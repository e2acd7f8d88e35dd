"""singlink: link-level simulation of semantic image communication."""
import os

# TensorFlow's C++ start-up logging (e.g. "failed call to cuInit" on every CPU-only machine) is
# noise for singlink's users; errors still surface as Python exceptions. Set here, before any
# subpackage runs, because diffusers may import TensorFlow before singlink.phy does. Set the
# variable to 0 to see the logging again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
