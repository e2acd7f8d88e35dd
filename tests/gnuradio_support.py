"""What the GNU Radio test modules share: :func:`require_gnuradio` skips a whole module where GNU
Radio's Python bindings cannot be imported (not installed, or built for another numpy), and puts
gr-singlink's python folder (gr_modtool layout) on ``sys.path`` so its blocks and qa modules import."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GR_PYTHON = REPO / "gnuradio" / "python"
GR_BLOCKS = REPO / "gnuradio" / "grc"


def require_gnuradio() -> None:
    try:
        from gnuradio import gr  # noqa: F401
    except Exception as e:  # ImportError, or numpy-ABI errors from bindings built for numpy 1.x
        pytest.skip(f"GNU Radio's Python bindings are not importable ({type(e).__name__}: {e}); install Debian's "
                    "gnuradio and use a venv made with --system-site-packages (tools/bootstrap does both)",
                    allow_module_level=True)
    if str(GR_PYTHON) not in sys.path:
        sys.path.insert(0, str(GR_PYTHON))
