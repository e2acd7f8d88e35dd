"""What the training commands (train-jscc, train-prior, train-inn) share: the data set options and
the in-memory uint8 tensors they train on, resumable run state (tensors and plain values only,
loaded with ``torch.load(weights_only=True)`` so a planted file cannot run code), warm starts from
exported weights, and the rules for ``--export``."""
import json
import math
import os
import re
import time
from pathlib import Path

from .errors import UsageError


def parse_snr_range(text: str) -> tuple[float, float]:
    """``--snr-range`` as 'MIN,MAX' in dB -> (min, max), with a one-line error otherwise."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--snr-range takes MIN,MAX in dB, got {text!r}") from None
    if not lo <= hi:
        raise UsageError(f"--snr-range needs MIN <= MAX, got {text!r}")
    return lo, hi


def draw_step(x_train, batch: int, snr_lo: float, snr_hi: float, seed: int, step: int):
    """Step ``step``'s training batch (float images in [0, 1]) and per-image SNRs (uniform in
    [snr_lo, snr_hi] dB), drawn from (seed, step) alone; also seeds the step's channel noise.
    This is what makes a resumed run identical to an uninterrupted one."""
    import torch

    from . import phy
    from .provenance import derive_seed

    g = torch.Generator().manual_seed(derive_seed(seed, "batch", step))
    idx = torch.randint(len(x_train), (batch,), generator=g)
    snr = snr_lo + (snr_hi - snr_lo) * torch.rand(batch, generator=g)
    phy.set_seed(derive_seed(seed, "channel", step))
    return x_train[idx].float() / 255, snr


def add_data_arguments(p, default="cifar10"):
    """``--dataset``, ``--image-size`` and ``--data-root``, the same on every trainer."""
    p.add_argument("--dataset", default=default,
                   help="cifar10, celeba, kodak or a folder of images (default %(default)s)")
    p.add_argument("--image-size", type=int, default=None,
                   help="side of the square training images (default: the data set's, 32 for cifar10, 64 for celeba)")
    p.add_argument("--data-root", default=None, help="folder holding the data sets (default: see singlink.data)")


def add_export_arguments(p, what):
    p.add_argument("--export", default=None, metavar="NAME",
                   help=f"when done, write {what} with a model card to singlink/checkpoints/NAME (a name) or to a "
                        "folder (a path with a separator)")
    p.add_argument("--overwrite", action="store_true", help="let --export replace an existing checkpoint")
    p.add_argument("--init", default=None, metavar="NAME_OR_FOLDER",
                   help="warm start: initialise the weights from an exported checkpoint when the run folder holds "
                        "no state (a resumed run ignores it)")


def dataset_spec(args):
    """The :class:`~singlink.data.DatasetSpec` of a trainer's ``--dataset/--image-size/--data-root``."""
    from .data import DatasetSpec

    return DatasetSpec.parse(args.dataset, args.image_size, args.data_root)


def load_tensors(spec, train_images=None, val_images=256):
    """The training split as uint8 (N, 3, H, W) (held in memory, so no step decodes an image) and
    the first ``val_images`` validation images as float32 in [0, 1]."""
    from .data import as_float

    for name, n in (("train-images", train_images), ("val-images", val_images)):
        if n is not None and n < 1:
            raise UsageError(f"--{name} must be >= 1, got {n}")
    x_train = spec.tensors("train", train_images)
    x_val = as_float(spec.tensors("val", val_images))
    print(f"{spec.tag}: {len(x_train)} training and {len(x_val)} validation images of "
          f"{x_train.shape[2]}x{x_train.shape[3]} in memory")
    return x_train, x_val


def check_positive(args, *names):
    """One line for a non-positive or non-finite numeric option."""
    for name in names:
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")


def learning_rate(step: int, *, lr: float, steps: int, warmup: int = 0, cosine: bool = False, lr_min: float = 0.0,
                  decay_from: int | None = None) -> float:
    """The learning rate of optimiser step ``step`` (from 0): a linear warm-up over ``warmup``
    steps to ``lr``, then constant or, with ``cosine``, a half cosine from ``lr`` at ``decay_from``
    (default: the end of the warm-up) down to ``lr_min`` at ``steps``."""
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if not cosine:
        return lr * warm
    start = warmup if decay_from is None else decay_from
    frac = min(1.0, max(0, step - start) / max(1, steps - start))
    return warm * (lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * frac)))


def curve_text(curve, what: str = "Validation loss", points: int = 8) -> str:
    """A model-card line for a validation curve ``[[step, value], ...]``: up to ``points`` of it
    (evenly spread, the last always) and its relative change over the last quarter of the run,
    the number "flat" is judged by. Empty for fewer than two points."""
    if len(curve) < 2:
        return ""
    last = curve[-1]
    ref = min(curve, key=lambda c: abs(c[0] - 0.75 * last[0]))
    shown = [curve[round(i * (len(curve) - 1) / (points - 1))] for i in range(points)] if len(curve) > points else curve
    return (f"- {what} by step: " + ", ".join(f"{s:,}: {v:.5f}" for s, v in shown) +
            f"; {100 * (last[1] - ref[1]) / ref[1]:+.1f}% over the last {last[0] - ref[0]:,} steps.\n")


def export_folder(name, checkpoints: Path, overwrite: bool) -> Path:
    """Where ``--export NAME`` writes: ``checkpoints/NAME`` for a plain name, the folder itself for a
    path. An existing checkpoint is replaced only with ``--overwrite``. Checked before training."""
    text = str(name)
    if "/" in text or os.sep in text:
        dest = Path(text).expanduser()
    elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text) and ".." not in text:
        dest = checkpoints / text
    else:
        raise UsageError(f"--export {text!r}: a checkpoint name has letters, digits, '.', '_' and '-' only "
                         "(or give a folder path)")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--export {text}: {dest} exists and is not a folder")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        shipped = " (a shipped checkpoint)" if dest.parent == checkpoints else ""
        raise UsageError(f"--export {text}: {dest} exists{shipped}; add --overwrite to replace it or pick another name")
    return dest


def load_state(out: Path, hparams: dict, later: tuple = ()):
    """The saved state of the run in ``out`` (``None`` for a new run). A run saved with other
    settings is refused, and log lines written after the saved step are dropped, so a resumed run's
    log reads as if it had never stopped.

    ``later``, ``(keys, first_step)``: settings that change nothing before ``first_step`` (a
    learning-rate decay that starts there). A run saved without them at a step <= ``first_step``
    may take them on: its past is exactly that of a run given them from the start."""
    import torch

    path = Path(out) / "state.pt"
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not {"step", "hparams", "seconds", "history"} <= state.keys():
            raise ValueError("not a singlink training state")
    except Exception as e:  # noqa: BLE001 - any unreadable or unsafe file is refused the same way
        raise UsageError(f"{path} is not a readable singlink training state ({str(e).splitlines()[0][:160]}); "
                         "delete it or use another --out") from None
    saved, new = _set(state["hparams"]), _set(hparams)
    if later and saved != new and state["step"] <= later[1] and not saved.keys() & set(later[0]):
        new = {k: v for k, v in new.items() if k not in later[0]}
    if saved != new:
        raise UsageError(f"{out} holds a run with other settings ({state['hparams']}); use another --out")
    log = Path(out) / "log.jsonl"
    if log.exists():
        from .provenance import write_atomic

        kept = [line for line in log.read_text().splitlines() if _log_step(line) <= state["step"]]
        write_atomic(log, "".join(line + "\n" for line in kept))
    print(f"resumed {out} at step {state['step']}")
    return state


_LOCKS: dict = {}


def lock_run(out) -> None:
    """Hold ``out/.lock`` for the rest of this process: a second trainer (or an export) on the same
    run folder is refused in one line instead of rewriting ``log.jsonl`` and ``state.pt`` under the
    first. The lock is the kernel's (``flock``), so it goes with the process, however it ends."""
    import fcntl

    out = Path(out)
    key = str(out.resolve())
    if key in _LOCKS:
        return
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise UsageError(f"{out} is in use by {owner}: wait for that run to finish (or stop it) before resuming or "
                         "exporting it, or use another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    _LOCKS[key] = handle


def resume(out, hparams: dict, steps: int, later: tuple = (), **objects) -> tuple[bool, int, float, list]:
    """Resume a trainer from ``out/state.pt`` (:func:`load_state`, which takes ``later``): load each of ``objects``
    (state key -> model, optimiser, EMA, ...) from its entry and return ``(resumed, step,
    seconds, history)``; a fresh start gives ``(False, 0, 0.0, [])``. The run folder is locked
    (:func:`lock_run`) first."""
    lock_run(out)
    state = load_state(out, hparams, later)
    if state is None:
        return False, 0, 0.0, []
    for key, obj in objects.items():
        obj.load_state_dict(state[key])
    if state["step"] >= steps:
        print(f"{out} already has {state['step']} >= {steps} steps")
    return True, state["step"], state["seconds"], state["history"]


def warm_start(model, source, load) -> None:
    """``--init``: copy the weights of an exported checkpoint (``load(source)`` returns a model of
    the same class) into ``model``; a mismatch in architecture is one line."""
    other = load(source)
    try:
        model.load_state_dict(other.state_dict())
    except RuntimeError as e:
        raise UsageError(f"--init {source}: its architecture differs from this run's "
                         f"({str(e).splitlines()[0][:160]})") from None
    print(f"warm start from {source}")


def save_state(out: Path, state: dict) -> None:
    """Write ``out/state.pt`` atomically (a kill mid-write leaves the previous state)."""
    import torch

    path = Path(out) / "state.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _set(hparams: dict) -> dict:
    """Settings compared on resume; an unset (None) option equals one the run did not record."""
    return {k: v for k, v in hparams.items() if v is not None}


def _log_step(line):
    """The step of a log.jsonl line; infinity for a line cut short by an interruption."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf
