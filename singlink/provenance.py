"""What every stored result records: its config, seed and code version; and seed derivation."""
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def code_version() -> dict:
    """singlink's package version and, in a git checkout, the commit and whether it was dirty;
    once singlink.phy is loaded, also its backend (``phy_backend``) and Sionna's version."""
    try:
        pkg = version("singlink")
    except PackageNotFoundError:
        pkg = "unknown"
    out = {"singlink": pkg, "python": platform.python_version()}
    phy = sys.modules.get("singlink.phy")
    if phy is not None:  # results made through the phy layer: which Sionna line made them
        out.update(phy_backend=phy.BACKEND, sionna=phy.SIONNA_VERSION)
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip() != ""
        out.update(git_commit=commit, git_dirty=dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def derive_seed(seed: int, *keys) -> int:
    """A 31-bit seed for one unit of work (an SNR point, a sweep row) derived from the run seed
    and the unit's identifying keys, so any unit can be recomputed alone, in any order."""
    text = json.dumps([int(seed), *[str(k) for k in keys]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
