"""The sweep's unit of work: one :class:`Task` is one method on one batch of images at one
(rho, SNR, channel, realisation). :func:`plan` lists the tasks a store still lacks;
:func:`execute` computes a task's rows, the same in-process or in a Ray worker.

Randomness, all derived from the run seed with :func:`singlink.provenance.derive_seed`, so that a
task computes the same rows whatever ran before it, in whichever process:

- the channel draw of a batch: ``(seed, "sweep-channel", rho, snr, channel, realisation, batch)``,
  shared by every learned method, which therefore restore the same received symbols (paired
  comparison), and by every codec family (the same noise and fading on each family's symbols);
- the sampling noise of a restoration per image: ``(seed, method, rho, snr, channel, realisation,
  image)``, the same for every codec family;
- the separation baselines' digital channel: ``(seed, "sweep-digital", rho, snr, channel,
  realisation, batch)``; their MCS choice (bpg-ldpc-best) uses the run seed alone, so it is one
  choice per SNR and channel.

Under fading the receiver equalises with perfect CSI and DeepJSCC decodes at each image's
effective SNR (:meth:`singlink.receiver.Receiver.decode`); SING's step size and SING-INN's
conditioning use that same SNR (:meth:`singlink.receiver.Receiver.effective_snr_db`): the
equalised symbols are AWGN at it, the conditions the INN was trained in.

Over OFDM channels (``ofdm-...``, :mod:`singlink.phy.ofdm`) the channel returns equalised symbols
and their per-RE effective noise (with estimated CSI when ``csi=ls``); DeepJSCC decodes them with
:func:`singlink.phy.jscc_input`, and SING is told the same per-image effective SNR,
:func:`singlink.phy.effective_snr_db` (10 log10 of the mean per-RE SNR P/no_eff). The separation
baselines get the *same channel realisation* as DeepJSCC for each image: their transmission draws
the batch's channel from the ``"sweep-channel"`` seed above (``transmit(channel_seed=...)``), their
noise from ``"sweep-digital"``. For OFDM both seeds take the channel without its receiver
options (:attr:`singlink.phy.OFDMSpec.draw_name`): cells that differ only in ``csi``, ``interp``
or ``eq`` see the same channel and noise draws, so perfect and estimated CSI are compared paired.

Rows are bit-identical on CPU for a given ``threads`` setting (oneDNN's convolutions sum in an
order that depends on the thread count); wall_s is the only field that varies.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass

import numpy as np

from ..provenance import derive_seed
from .config import BASELINE_METHODS, INN_METHODS, PRIOR_METHODS, SweepConfig, checkpoint_names

# Rough cost per image relative to a DeepJSCC decode, for a progress bar whose ETA holds while
# cheap and expensive tasks interleave (SING-INN differentiates through the prior: ~3.3x SING-Zero).
# DPS also differentiates through the prior, and through the encoder (small beside the UNet).
_COST = {"deepjscc": 1.0, "sing-zero": 1.0, "sing-inn": 3.5, "commin": 3.5, "dps": 3.6, "bpg-ldpc": 8.0,
         "bpg-ldpc-best": 8.0, "bpg-capacity": 8.0}


@dataclass(frozen=True)
class Task:
    method: str
    family: str  # the codec family of a learned method ("": the canonical codec; baselines: "")
    rho: str
    snr_db: float
    channel: str
    realization: int
    batch_index: int
    image_ids: tuple

    def keys(self, seed: int) -> list[tuple]:
        return [(self.method, self.family, self.rho, self.snr_db, self.channel, i, self.realization, seed) for i in self.image_ids]

    def cost(self, cfg: SweepConfig) -> float:
        per_image = _COST[self.method] * ((cfg.steps or 50) if self.method in PRIOR_METHODS else 1)
        return per_image * len(self.image_ids)


def plan(cfg: SweepConfig, done: set) -> list[Task]:
    """The tasks with at least one row not in ``done``, ordered so that every cell gets its first
    batch before any cell its second (partial results cover the whole grid; the ETA is steady)."""
    ids = list(range(cfg.images))
    batches = [tuple(ids[i:i + cfg.batch]) for i in range(0, len(ids), cfg.batch)]
    tasks = []
    for realization in range(cfg.realizations):
        for b, image_ids in enumerate(batches):
            for rho in cfg.rho:
                for channel in cfg.channel:
                    for snr in cfg.snr:
                        for method, family in cfg.method_families():
                            t = Task(method, family, rho, float(snr), channel, realization, b, image_ids)
                            if any(key not in done for key in t.keys(cfg.seed)):
                                tasks.append(t)
    return tasks


# --- execution (in the driver or a Ray worker) ------------------------------------------------------

class _Context:
    """What tasks of one sweep share within a process: the data split, models, receivers,
    baselines (with one codec, so HEVC payload sizes are computed once per image)."""

    def __init__(self, cfg: SweepConfig, mean_image: np.ndarray | None):
        from ..data import DatasetNotFoundError
        from ..errors import UsageError

        try:
            self.data = cfg.spec.dataset(cfg.split)
        except DatasetNotFoundError as e:
            raise UsageError(str(e)) from None
        self.cfg, self.mean_image = cfg, mean_image
        self._objects = {}

    def _get(self, key, make):
        if key not in self._objects:
            self._objects[key] = make()
        return self._objects[key]

    def jscc(self, rho, family):
        from ..jscc.model import DeepJSCC

        return self._get(("jscc", rho, family),
                         lambda: DeepJSCC.from_pretrained(checkpoint_names(self.cfg, rho, family)["jscc"]))

    def prior(self):
        from ..receiver.prior import DiffusionPrior, find_prior

        name = self.cfg.prior or find_prior(self.cfg.dataset, self.cfg.image_size)
        return self._get("prior", lambda: DiffusionPrior.from_pretrained(name))

    def receiver(self, method, rho, family):
        from ..receiver import Receiver

        def make():
            if method == "deepjscc":
                return Receiver(self.jscc(rho, family), method)
            # what the config leaves unset, Receiver takes from the DeepJSCC's recorded choice; the
            # config's operator is SING's, its zeta SING-INN's (commin's and dps's are other scales)
            keys = {"sing-zero": ("operator", "steps"), "sing-inn": ("operator", "steps", "zeta")}.get(method, ("steps",))
            options = {key: getattr(self.cfg, key) for key in keys if getattr(self.cfg, key) is not None}
            if method in INN_METHODS:
                options["inn"] = checkpoint_names(self.cfg, rho, family)["inn"]
            return Receiver(self.jscc(rho, family), method, prior=self.prior(), **options)

        return self._get(("rx", method, rho, family), make)

    def baseline(self, method, rho):
        import torch

        from ..baselines import SeparationBaseline, make_codec

        codec = self._get("codec", make_codec)
        mcs = {"modulation": self.cfg.ldpc_modulation, "coderate": self.cfg.ldpc_rate} if method == "bpg-ldpc" else {}
        return self._get(("baseline", method, rho), lambda: SeparationBaseline(
            method, torch.from_numpy(self.mean_image), self.cfg.k(rho), codec=codec, **mcs))


_CONTEXTS: dict = {}


def _context(cfg: SweepConfig, mean_image) -> _Context:
    key = json.dumps([cfg.settings, cfg.data_root], sort_keys=True)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()  # one sweep per process at a time: drop another sweep's models
        _CONTEXTS[key] = _Context(cfg, mean_image)
    ctx = _CONTEXTS[key]
    if ctx.mean_image is None and mean_image is not None:
        ctx.mean_image = mean_image
    return ctx


def png_bytes(image) -> bytes:
    """A (3, H, W) image in [0, 1] as 8-bit PNG bytes."""
    from PIL import Image

    array = (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def draw_cell(rho, snr_db: float, channel: str, realization: int, batch_index: int) -> tuple:
    """The sweep cell one channel draw belongs to, the key its ``"sweep-channel"`` and
    ``"sweep-digital"`` seeds derive from. OFDM cells take the channel without its receiver options
    (:attr:`singlink.phy.OFDMSpec.draw_name`), so that every receiver (csi, interp, eq) of one
    channel sees the same draw."""
    from .. import phy

    if phy.is_ofdm(channel):
        channel = phy.parse_spec(channel).draw_name
    return (rho, snr_db, channel, realization, batch_index)


def received(rx, x, seed: int, rho, snr_db: float, channel: str, realization: int = 0, batch_index: int = 0):
    """What the DeepJSCC receiver ``rx`` gets for the batch ``x`` (B, 3, H, W) in one sweep cell: its
    :class:`~singlink.receiver.observation.Observation` (the decoded images, each image's effective
    SNR [dB] (B,) as ``snr_db``, the received symbols and channel state). The channel
    draw is the sweep's own (:func:`draw_cell`, run seed ``seed``), shared by every learned method,
    so scripts that re-derive a stored row's channel call this too."""
    import torch

    from .. import phy
    from ..evaluation import receive

    phy.set_seed(derive_seed(seed, "sweep-channel", *draw_cell(rho, snr_db, channel, realization, batch_index)))
    with torch.no_grad():
        y, h = phy.as_torch(phy.make_channel(channel, power=rx.jscc.config.power))(rx.jscc.encode(x, snr_db), snr_db)
    return receive(rx, y, h, snr_db, channel)


def execute(task: Task, cfg: SweepConfig, mean_image: np.ndarray | None = None) -> tuple[list[dict], list[dict]]:
    """Compute ``task``: ``(rows, examples)``, one row per image (:data:`.store.KEY` and
    :data:`.store.VALUES`) and the PNG reconstructions of images below ``cfg.examples`` (first
    realisation only). ``mean_image`` (3, H, W) float32 is needed by the separation baselines."""
    import torch

    from .. import phy
    from ..data import load_batch
    from ..evaluation import score

    torch.set_num_threads(cfg.threads)
    ctx = _context(cfg, mean_image)
    t0 = time.perf_counter()
    x, _ = load_batch(ctx.data, list(task.image_ids))
    if task.method in BASELINE_METHODS:
        cell = draw_cell(task.rho, task.snr_db, task.channel, task.realization, task.batch_index)
        base = ctx.baseline(task.method, task.rho)
        x_hat, info = base.transmit(x, task.snr_db, task.channel, seed=derive_seed(cfg.seed, "sweep-digital", *cell),
                                    mcs_seed=cfg.seed, channel_seed=derive_seed(cfg.seed, "sweep-channel", *cell)
                                    if phy.is_ofdm(task.channel) else None)
        bits = [r["bits_sent"] for r in info]
        status = [r["status"] for r in info]
    else:
        rx = ctx.receiver(task.method, task.rho, task.family)
        obs = received(rx, x, cfg.seed, task.rho, task.snr_db, task.channel, task.realization, task.batch_index)
        seeds = [derive_seed(cfg.seed, task.method, task.rho, task.snr_db, task.channel, task.realization, i)
                 for i in task.image_ids]
        x_hat = rx.reconstruct(obs, seed=seeds).detach()
        bits, status = [None] * len(task.image_ids), ["ok"] * len(task.image_ids)
    scores = score(x_hat, x, vgg=True)
    wall = (time.perf_counter() - t0) / len(task.image_ids)
    k = cfg.k(task.rho)
    rows = [{"method": task.method, "family": task.family, "rho": task.rho, "snr_db": task.snr_db, "channel": task.channel, "image_id": i,
             "realization": task.realization, "seed": cfg.seed, **{m: float(v[j]) for m, v in scores.items()},
             "channel_uses": k, "bits_sent": None if bits[j] is None else int(bits[j]), "status": status[j],
             "wall_s": wall} for j, i in enumerate(task.image_ids)]
    examples = [{"method": task.method, "family": task.family, "rho": task.rho, "snr_db": task.snr_db, "channel": task.channel,
                 "image_id": i, "seed": cfg.seed, "png": png_bytes(x_hat[j])}
                for j, i in enumerate(task.image_ids) if i < cfg.examples and task.realization == 0]
    assert x_hat.shape[1:] == cfg.image_shape
    return rows, examples
