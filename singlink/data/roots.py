"""Where singlink looks for data sets.

Resolution order (first match wins):

1. an explicit ``root=`` argument. It is *exclusive*: when given, nothing else is searched,
   so a typo in ``root`` fails loudly instead of silently loading another copy. Both
   ``root/<dataset>`` and ``root`` itself are accepted (``root=/data`` or ``root=/data/kodak``);
2. the environment variable ``SINGLINK_DATA`` (a folder holding ``<dataset>/`` subfolders);
3. ``../shared/data`` relative to the repository checkout (the folder that contains the
   ``singlink`` package directory), when that folder exists;
4. the download cache, ``$XDG_CACHE_HOME/singlink`` or ``~/.cache/singlink``.

Candidates 2-4 are searched in order for the data set's folder, so a ``SINGLINK_DATA`` that
lacks one data set still lets the others be found further down the list. A data set found
nowhere raises :class:`DatasetNotFoundError`, whose one-line message lists every path looked
at and how to get the data.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

__all__ = [
    "ENV_VAR",
    "DatasetNotFoundError",
    "repo_root",
    "shared_data_dir",
    "cache_dir",
    "candidate_roots",
    "resolve_dataset_dir",
]

ENV_VAR = "SINGLINK_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """A data set is not present in any of the places singlink looks (message: one line)."""


def repo_root() -> Path:
    """The repository checkout: the parent of the ``singlink`` package directory."""
    return Path(__file__).resolve().parents[2]


# Module-level so tests (and unusual installs) can point it elsewhere.
SHARED_DATA_DIR: Path = repo_root().parent / "shared" / "data"


def shared_data_dir() -> Path:
    """``<repo>/../shared/data`` (whether or not it exists)."""
    return Path(SHARED_DATA_DIR)


def cache_dir() -> Path:
    """The download cache: ``$XDG_CACHE_HOME/singlink``, else ``~/.cache/singlink`` (not created)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "singlink"


def candidate_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The data roots searched, in order.

    With ``root`` given, only ``[root]``. Otherwise ``$SINGLINK_DATA`` (when set), the shared
    folder (when it exists) and the cache folder (always listed, it is where downloads go).
    """
    if root is not None:
        return [Path(root).expanduser()]
    roots: list[Path] = []
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        roots.append(Path(env).expanduser())
    shared = shared_data_dir()
    if shared.is_dir():
        roots.append(shared)
    roots.append(cache_dir())
    # Drop duplicates (e.g. SINGLINK_DATA pointing at the shared folder), keeping order.
    seen: set[str] = set()
    unique = []
    for r in roots:
        key = os.path.abspath(r)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def _one_line(text: str) -> str:
    return " ".join(text.split())


def resolve_dataset_dir(
    dirname: str,
    probe: Callable[[Path], bool],
    root: str | os.PathLike | None = None,
    *,
    display_name: str | None = None,
    hint: str = "",
) -> Path:
    """Find the folder of data set ``dirname`` (e.g. ``"kodak"``) following the resolution order.

    ``probe(path) -> bool`` says whether a folder holds the data set. Under an explicit
    ``root``, ``root/dirname`` and then ``root`` itself are probed; under the other roots,
    ``<root>/dirname`` only. Raises :class:`DatasetNotFoundError` listing every probed path;
    ``hint`` is appended to the standard advice (set SINGLINK_DATA or pass root=).
    """
    looked: list[Path] = []
    for r in candidate_roots(root):
        options: Iterable[Path] = (r / dirname, r) if root is not None else (r / dirname,)
        for path in options:
            looked.append(path)
            if path.is_dir() and probe(path):
                return path
    raise DatasetNotFoundError(not_found_message(display_name or dirname, looked, dirname, hint))


def not_found_message(display_name: str, looked: Iterable[Path], dirname: str, hint: str = "") -> str:
    """The one-line 'not found' message shared by all loaders."""
    paths = ", ".join(str(p) for p in looked) or "(nowhere)"
    advice = (f"set {ENV_VAR} to a folder containing {dirname}/ or pass root=<folder>"
              + (f"; {hint}" if hint else ""))
    return _one_line(f"{display_name} not found; singlink looked in: {paths}. To get it: {advice}.")
