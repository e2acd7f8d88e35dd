"""What the training commands (train-jscc, train-prior, train-inn) share: the CIFAR-10 tensors
they train on, and resumable run state."""
import json
import math
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


def load_cifar_tensors(data_root, train_images=None, val_images=256):
    """The seeded CIFAR-10 split as tensors: training images uint8 (N, 3, 32, 32) (compact enough to
    keep all 45,000 in memory) and the first ``val_images`` validation images float32 in [0, 1]."""
    import torch

    from .data import DatasetNotFoundError, cifar10_splits, load_batch

    t0 = time.perf_counter()
    try:
        splits = cifar10_splits(data_root)
        train_idx = range(min(train_images, len(splits["train"]))) if train_images else None
        x_train = (load_batch(splits["train"], train_idx)[0] * 255).round().to(torch.uint8)
        x_val = load_batch(splits["val"], range(min(val_images, len(splits["val"]))))[0]
    except DatasetNotFoundError as e:
        raise UsageError(str(e)) from None
    print(f"loaded {len(x_train)} training and {len(x_val)} validation images in {time.perf_counter() - t0:.0f} s")
    return x_train, x_val


def load_state(out: Path, hparams: dict):
    """The saved state of the run in ``out`` (``None`` for a new run). A run saved with other
    settings is refused, and log lines written after the saved step are dropped, so a resumed run's
    log reads as if it had never stopped."""
    import torch

    path = Path(out) / "state.pt"
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["hparams"] != hparams:
        raise UsageError(f"{out} holds a run with other settings ({state['hparams']}); use another --out")
    log = Path(out) / "log.jsonl"
    if log.exists():
        from .provenance import write_atomic

        kept = [line for line in log.read_text().splitlines() if _log_step(line) <= state["step"]]
        write_atomic(log, "".join(line + "\n" for line in kept))
    print(f"resumed {out} at step {state['step']}")
    return state


def resume(out, hparams: dict, steps: int, **objects) -> tuple[bool, int, float, list]:
    """Resume a trainer from ``out/state.pt`` (:func:`load_state`): load each of ``objects``
    (state key -> model, optimiser, EMA, ...) from its entry and return ``(resumed, step,
    seconds, history)``; a fresh start gives ``(False, 0, 0.0, [])``."""
    state = load_state(out, hparams)
    if state is None:
        return False, 0, 0.0, []
    for key, obj in objects.items():
        obj.load_state_dict(state[key])
    if state["step"] >= steps:
        print(f"{out} already has {state['step']} >= {steps} steps")
    return True, state["step"], state["seconds"], state["history"]


def save_state(out: Path, state: dict) -> None:
    """Write ``out/state.pt`` atomically (a kill mid-write leaves the previous state)."""
    import torch

    path = Path(out) / "state.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _log_step(line):
    """The step of a log.jsonl line; infinity for a line cut short by an interruption."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf
