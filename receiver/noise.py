r"""The error of SING's observation, :math:`\sigma_y`, per operator and SNR, calibrated on validation
pairs and stored with the codec (``singlink calibrate-sigma-y``).

SING-Zero trusts :math:`y = A \hat x_\mathrm{JSCC}` as if it were :math:`A x`. DDNM+'s noise-aware
projection (:mod:`.sing_zero`) needs how far off it is: for each operator A and SNR,

.. math:: \sigma_y(\mathrm{SNR}) = \sqrt{\operatorname{mean}\,\big(A\,\bar x_\mathrm{JSCC} - A\,\bar x\big)^2},

the RMS over every value of A x of every validation image sent at that SNR through a seeded AWGN
channel, in the prior's range (:math:`\bar x = 2x - 1`). The RMS keeps the codec's bias: for a
receiver the error is the error, whatever its mean. The record lives in the DeepJSCC's config.json
(``observation_noise``: SNRs, :math:`\sigma_y` per operator, how it was made), so it travels with
the weights it describes and is checked against them (the codec's fingerprint). Between calibrated
SNRs :math:`\sigma_y` is interpolated linearly, outside them it is held at the nearest end.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError


def calibrate(jscc, x: torch.Tensor, operators, snrs, seed: int = 0, batch: int = 64) -> dict:
    """``{"snr_db": [...], "sigma_y": {operator: [...]}}`` of ``jscc`` on images ``x`` (N, 3, H, W)."""
    from .operators import make_operator
    from .train_inn import validation_pairs

    ops = {name: make_operator(name) for name in operators}
    out = {name: [] for name in ops}
    for snr in snrs:
        sq = {name: 0.0 for name in ops}
        count = {name: 0 for name in ops}
        for i in range(0, len(x), batch):
            xb, xj, _ = validation_pairs(jscc, x[i:i + batch], [snr], derive_batch_seed(seed, i))
            for name, op in ops.items():
                err = op(2 * xj - 1) - op(2 * xb - 1)
                sq[name] += float((err.double() ** 2).sum())
                count[name] += err.numel()
        for name in ops:
            out[name].append((sq[name] / count[name]) ** 0.5)
    return {"snr_db": [float(s) for s in snrs], "sigma_y": out}


def derive_batch_seed(seed: int, start: int) -> int:
    from ..provenance import derive_seed

    return derive_seed(seed, "sigma-y", start)


def sigma_y_table(jscc, operator: str) -> tuple[np.ndarray, np.ndarray]:
    """``(snr_db, sigma_y)`` float64 arrays the DeepJSCC records for ``operator``, checked against its
    weights; one line when there is none for it or it was made for other weights."""
    record = getattr(jscc, "observation_noise", None) or {}
    table = (record.get("sigma_y") or {}).get(str(operator))
    if not table:
        have = ", ".join(sorted(record.get("sigma_y") or {})) or "none"
        raise UsageError(f"the DeepJSCC {jscc.name or ''} has no sigma_y calibrated for operator {operator} "
                         f"(calibrated: {have}); run `singlink calibrate-sigma-y --jscc {jscc.name or 'FOLDER'} "
                         f"--operators {operator} --record`, or use projection='hard'")
    if record.get("sha256") and record["sha256"] != jscc.fingerprint:
        raise UsageError(f"the sigma_y recorded in {jscc.name} was calibrated for other weights (sha256 "
                         f"{record['sha256'][:12]}, these are {jscc.fingerprint[:12]}); rerun "
                         f"`singlink calibrate-sigma-y --record`")
    return np.asarray(record["snr_db"], dtype=np.float64), np.asarray(table, dtype=np.float64)


def interpolate(table: tuple[np.ndarray, np.ndarray], snr_db) -> torch.Tensor:
    """:math:`\\sigma_y` (N,) float64 at each SNR in ``snr_db`` (N,) from a :func:`sigma_y_table`:
    linear between calibrated SNRs, held at the nearest end outside them."""
    snr = torch.as_tensor(snr_db, dtype=torch.float64).detach().cpu()
    return torch.from_numpy(np.asarray(np.interp(snr.numpy(), *table), dtype=np.float64)).reshape(snr.shape)


def sigma_y(jscc, operator: str, snr_db) -> torch.Tensor:
    """:math:`\\sigma_y` (N,) float64 of the observation through ``operator`` at each SNR in ``snr_db``
    (N,), from the DeepJSCC's recorded calibration (:func:`sigma_y_table`, :func:`interpolate`)."""
    return interpolate(sigma_y_table(jscc, operator), snr_db)


# --- command line: singlink calibrate-sigma-y --------------------------------------------------------

def add_arguments(p):
    p.add_argument("--jscc", required=True, help="DeepJSCC checkpoint name or folder")
    p.add_argument("--data-root", default=None, help="folder holding the data sets (default: see singlink.data)")
    p.add_argument("--images", type=int, default=256, help="validation images (default %(default)s)")
    p.add_argument("--snr", default="-5,-3,-1,1,3,5", help="comma list of SNRs in dB (default %(default)s)")
    p.add_argument("--operators", default="pool2,pool4,pool8", help="operators A (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--record", action="store_true",
                   help="write the calibration into the checkpoint's config.json (observation_noise)")


def run(args) -> int:
    from .. import evaluate as ev
    from ..data import DatasetNotFoundError, DatasetSpec, load_batch
    from ..jscc.model import CHECKPOINTS, DeepJSCC
    from ..provenance import code_version, write_atomic
    from .operators import check_operators

    if args.threads:
        torch.set_num_threads(args.threads)
    snrs = ev._snrs(args.snr)
    if any(not np.isfinite(s) for s in snrs):
        raise UsageError("--snr: give finite SNRs in dB")
    if args.images < 1:
        raise UsageError(f"--images must be >= 1, got {args.images}")
    operators = [o.strip() for o in args.operators.split(",") if o.strip()]
    if not operators:
        raise UsageError("--operators is empty; give e.g. pool2,pool4")
    jscc = DeepJSCC.from_pretrained(args.jscc).requires_grad_(False)
    check_operators(operators, jscc.config.image_size)
    folder = Path(args.jscc) if Path(args.jscc).is_dir() else CHECKPOINTS / args.jscc
    spec = DatasetSpec.parse(jscc.config.dataset, jscc.config.image_size[-1], args.data_root)
    try:
        data = spec.dataset("val")
    except DatasetNotFoundError as e:
        raise UsageError(str(e)) from None
    n = min(args.images, len(data))
    x, _ = load_batch(data, range(n))
    table = calibrate(jscc, x, operators, snrs, seed=args.seed)
    command = shlex.join(["singlink", "calibrate-sigma-y", *sys.argv[2:]]) if sys.argv[1:2] == ["calibrate-sigma-y"] else None
    record = table | {"sha256": jscc.fingerprint, "split": "val", "images": n, "channel": "awgn", "seed": args.seed,
                      "command": command, "version": code_version()}
    print(f"sigma_y of A x_JSCC - A x (prior range [-1, 1]) for {args.jscc} on {n} validation images:")
    print("| operator | " + " | ".join(f"{s:g} dB" for s in snrs) + " |")
    print("| --- | " + " | ".join("---" for _ in snrs) + " |")
    for o in operators:
        print(f"| {o} | " + " | ".join(f"{v:.4f}" for v in table["sigma_y"][o]) + " |")
    if args.record:
        raw = json.loads((folder / "config.json").read_text())
        raw["observation_noise"] = record
        write_atomic(folder / "config.json", json.dumps(raw, indent=1))
        print(f"recorded in {folder / 'config.json'}")
    return 0
