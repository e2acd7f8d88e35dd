"""Which Sionna line carries singlink.phy, chosen once per process by ``SINGLINK_PHY``.

- ``sionna-tf`` (default): Sionna 1.x on TensorFlow (``sionna-no-rt==1.2.2``, the design card's
  line); torch models reach it through the DLPack bridge (:mod:`singlink.phy.bridge`).
- ``sionna-torch``: Sionna 2.x on PyTorch (``sionna-no-rt==2.2.0``, :mod:`singlink.phy.sionna2`);
  the same public names take and return torch tensors, and TensorFlow is never imported. It lives
  in its own environment (``tools/bootstrap --sionna2``), since both lines import as ``sionna``.

Neither is imported here. A wrong choice raises :class:`singlink.errors.UsageError` (a
``ValueError``), which the command line prints as one line with exit status 2.
"""
import os

from ..errors import UsageError

#: Backend names, the default first.
BACKENDS = ("sionna-tf", "sionna-torch")


def selected_backend() -> str:
    """The backend named by ``SINGLINK_PHY`` (unset or empty: ``sionna-tf``); an unknown name
    raises ``UsageError`` with one line saying what to set instead."""
    name = os.environ.get("SINGLINK_PHY", "").strip() or BACKENDS[0]
    if name not in BACKENDS:
        raise UsageError(f"no phy backend is called {name!r} (SINGLINK_PHY, or singlink --phy); choose "
                         f"{' or '.join(BACKENDS)} (default {BACKENDS[0]})")
    return name


#: The Sionna major version each backend is written for.
_SIONNA_MAJOR = {"sionna-tf": 1, "sionna-torch": 2}


def sionna_version() -> str:
    """The installed sionna-no-rt's version (read from its metadata: importing Sionna would load
    its framework)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sionna-no-rt")
    except PackageNotFoundError:
        return "none"


def check_sionna(backend: str) -> None:
    """Refuse, in one line, a backend whose Sionna line is not the one installed here."""
    found = sionna_version()
    if found.split(".")[0] != str(_SIONNA_MAJOR[backend]):
        venv = ".venv-sionna2 (tools/bootstrap --sionna2)" if backend == "sionna-torch" else ".venv (tools/bootstrap)"
        raise UsageError(f"phy backend {backend} needs sionna-no-rt {_SIONNA_MAJOR[backend]}.x but this "
                         f"environment has {found}: run it in {venv}, or set SINGLINK_PHY to the other backend")
