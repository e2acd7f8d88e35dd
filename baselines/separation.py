"""Separation baselines: BPG/HEVC source coding, then 5G NR LDPC + QAM over the DeepJSCC channel.

Each image gets exactly the channel-use budget of DeepJSCC, ``k`` complex symbols, through the
same channel (:mod:`singlink.phy`: ``awgn``, ``rayleigh-block`` with one gain per image, ...) at the
same SNR (Es/N0 per channel use, DESIGN.md). Variants (:data:`VARIANTS`):

``bpg-ldpc``
    One fixed modulation and code rate (default BPSK, rate 2/3: the DiffJSCC paper's choice).
``bpg-ldpc-best``
    Per image, the best of :data:`MCS_TABLE` = {BPSK, QPSK, 16-QAM} x {1/3, 1/2, 2/3, 3/4}: the
    one with the highest expected PSNR, ``(1 - p_m) PSNR(HEVC at m's budget) + p_m PSNR(mean
    image)``, where ``p_m`` is the MCS's *image* error rate (probability that any codeword of an
    image is in error) at this SNR and channel, estimated by a short seeded Monte Carlo run
    (:class:`singlink.phy.MonteCarloRunner`, cached per (MCS, k, channel, SNR, seed)). This is
    link adaptation by a transmitter that knows its source and the channel statistics (not the
    realisation): at high SNR over AWGN it is the largest reliable budget; under fading, where
    outage keeps every MCS's error rate up, it weighs a larger budget against a lower risk, and
    never picks a budget too small for the image (such as BPSK 1/3's 170 bits at k = 512) while
    one that carries it has a useful chance of arriving.
``bpg-capacity``
    The ideal bound: ``floor(sum_j log2(1 + |h_j|^2 SNR))`` error-free bits per image, i.e.
    ``floor(k log2(1 + SNR))`` on AWGN; under fading the image's drawn gain(s) (same model and
    seed as the channel) are taken as known to the transmitter. Over OFDM: the same sum over the
    image's k data REs of the drawn channel, ``|H_j|^2 SNR``, whatever the ``csi`` option (a genie
    bound: it ignores the receiver, so it is the same with perfect and estimated CSI).

**OFDM channels** (``ofdm-<model>[:key=value...]``, :mod:`singlink.phy.ofdm`). The coded QAM symbols
of an image (all its codewords, padded to k) go through :class:`singlink.phy.OFDMDigitalLink`: the
same resource grid, slots, RE positions, estimator and equaliser as DeepJSCC's k symbols, demapped
with the per-RE effective noise. ``transmit(..., channel_seed=s)`` draws the batch's channel the
way a DeepJSCC transmission seeded with ``s`` does (:meth:`singlink.phy.OFDMLinkChannel.generate`),
so the sweep gives both the *same channel realisation* per image (the noise differs). Channels that
differ only in the receiver's options (``csi``, ``interp``, ``eq``) are seeded alike
(:attr:`singlink.phy.OFDMSpec.draw_name`): perfect and estimated CSI see the same draws. The MCS
error-rate estimates of ``bpg-ldpc-best`` are taken over the same OFDM channel model and receiver.

**Channel coding.** For a modulation of ``bps`` bits per symbol and rate r, the k channel uses
carry ``n_total = k * bps`` coded bits, split into ``B`` equal codewords of ``n`` bits (a multiple
of ``bps``) with ``k_info = floor(r n)`` information bits each, ``B`` being the fewest codewords
with ``k_info <= 3824`` (:func:`code_split`). That cap keeps every rate <= 2/3 on 5G base graph 2
and every split valid for Sionna's ``LDPC5GEncoder`` (12 <= k_info <= 8448, 1/5 <= rate <= 0.95,
base graph 1 only above rate 0.67). So at most ``k * bps * r`` information bits are sent
(asserted), in at most k symbols. When the k symbols cannot carry one codeword with 12
information bits (e.g. CIFAR-10 at rho = 1/192: k = 16, BPSK 2/3 gives 10 bits), the MCS has
no valid code and the images become the mean image (status ``no-valid-code``).

**Source coding.** :meth:`ImageCodec.best_fit` picks the lowest QP whose payload fits the
``B * k_info`` information bits; the payload is then padded with zero bits to fill the
codewords (padding is not payload). No QP fits -> the mean image (status ``no-fit``). With
HEVC intra through pillow-heif a 32x32 payload takes 106-152 bytes even at QP 51 (first 100
CIFAR-10 test images; 89 bytes of it are VPS/SPS/PPS and start codes), so CIFAR-10 at
rho = 1/192 (k = 16: at most 48 bits with 16-QAM 3/4) never fits, and at rho = 1/6 (k = 512)
only the larger MCSs fit (BPSK 2/3 carries 341 bits: nothing fits; QPSK 1/2 1024 bits: 61% of
those images; 16-QAM 2/3 and 3/4, 1365 and 1536 bits: all). An image that does not fit becomes
the mean image, which is the correct outcome of separate coding at such budgets.

**The cliff effect.** All codewords of an image share its SNR and (block fading) its gain
(:class:`singlink.phy.DigitalLink` with ``num_blocks = B``). Any codeword in error -> the whole
image is replaced by ``mean_image`` (status ``block-error``). Errors are detected exactly by
comparing with the sent bits, i.e. an ideal CRC whose bits are not counted. A payload that
arrives intact but does not decode also gives the mean image (``decode-failed``).

Randomness: the transmission of one call is seeded with
``derive_seed(seed, "separation", variant, k, snr_db, channel)`` (like one evaluation cell),
the MCS estimates with their own derived seeds, so results do not depend on the cache.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from .. import phy
from ..errors import UsageError
from ..provenance import derive_seed
from .codec import ImageCodec, make_codec

VARIANTS = ("bpg-ldpc", "bpg-ldpc-best", "bpg-capacity")
MCS_TABLE = tuple((m, r) for m in ("bpsk", "qpsk", "16qam")
                  for r in (Fraction(1, 3), Fraction(1, 2), Fraction(2, 3), Fraction(3, 4)))


class _NoRetracingWarning(logging.Filter):
    """bpg-ldpc-best builds one MonteCarloRunner (one tf.function) per MCS on purpose; TF's
    "triggered tf.function retracing" advice about that is noise for the user."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


# The links take and return the phy backend's tensors (TF or torch): the few tensors built here
# are made by these, chosen once with the backend.
if phy.BACKEND == "sionna-tf":
    import tensorflow as tf

    tf.get_logger().addFilter(_NoRetracingWarning())

    def _per_row(t, rows):
        return tf.reshape(t, [rows, -1])

    def _take_rows(t, rows):
        return tf.gather(t, rows)

    _tensor = tf.constant
else:
    def _per_row(t, rows):
        return t.reshape(rows, -1)

    def _take_rows(t, rows):
        return t[rows]

    _tensor = torch.as_tensor

MAX_INFO_BITS = 3824  # per codeword (module docstring)
MIN_INFO_BITS = 12    # Sionna's LDPC5GEncoder minimum
_MC_CODED_BITS = 1 << 21  # coded bits per Monte Carlo batch (bounds memory for large k)


def _fraction(rate) -> Fraction:
    """A code rate as an exact fraction: ``2/3``, ``"2/3"``, ``Fraction(2, 3)`` or ``0.667`` (nearest
    fraction with denominator <= 64)."""
    try:
        return Fraction(rate) if isinstance(rate, (str, Fraction)) else Fraction(rate).limit_denominator(64)
    except (ValueError, TypeError, ZeroDivisionError):
        raise UsageError(f"code rate must be a number or a fraction such as '2/3', got {rate!r}") from None


@dataclass(frozen=True)
class CodeSplit:
    """How the k channel uses of one image carry ``codewords`` LDPC codewords of ``n`` coded and
    ``k_info`` information bits, with ``modulation`` at nominal rate ``coderate``."""

    modulation: str
    coderate: Fraction
    k: int
    codewords: int
    n: int
    k_info: int

    @property
    def bits_per_symbol(self) -> int:
        return phy.bits_per_symbol(self.modulation)

    @property
    def info_bits(self) -> int:
        """Information bits per image (payload plus padding)."""
        return self.codewords * self.k_info

    @property
    def symbols(self) -> int:
        """Channel uses actually occupied (<= k)."""
        return self.codewords * self.n // self.bits_per_symbol

    @property
    def valid(self) -> bool:
        """Whether Sionna's 5G NR LDPC supports (k_info, n)."""
        return self.k_info >= MIN_INFO_BITS and Fraction(1, 5) <= Fraction(self.k_info, self.n) <= Fraction(95, 100)


def code_split(k: int, modulation: str, coderate) -> CodeSplit:
    """The codeword split of ``k`` channel uses for one MCS (module docstring)."""
    r = _fraction(coderate)
    bps = phy.bits_per_symbol(modulation)
    n_total = int(k) * bps
    blocks = max(1, math.ceil(math.floor(n_total * r) / MAX_INFO_BITS))
    n = bps * (n_total // (blocks * bps))
    return CodeSplit(modulation.lower(), r, int(k), blocks, n, math.floor(n * r))


def training_mean_image(data=None, num_images: int | None = None, batch: int = 500) -> torch.Tensor:
    """Mean (3, H, W) image of a training split: ``data`` a :class:`~singlink.data.DatasetSpec`, or
    a data root (or None) for CIFAR-10's 45,000-image training split; of its first ``num_images``
    only when given (CIFAR-10's split order is a seeded shuffle, so a prefix is a random sample).
    What the separation baseline outputs when a transmission fails."""
    from ..data import DatasetSpec, load_batch

    spec = data if isinstance(data, DatasetSpec) else DatasetSpec.parse("cifar10", None, data)
    train = spec.dataset("train")
    n = len(train) if num_images is None else min(int(num_images), len(train))
    if n < 1:
        raise UsageError(f"num_images must be >= 1, got {num_images}")
    total = None
    for start in range(0, n, batch):
        images, _ = load_batch(train, range(start, min(start + batch, n)))
        part = images.to(torch.float64).sum(0)
        total = part if total is None else total + part
    return (total / n).to(torch.float32)


class SeparationBaseline:
    """``SeparationBaseline(variant, mean_image, k, codec=None, modulation=None, coderate=None,
    num_iter=20, bler_target=1e-2, mc_images=500, batch=64)``.

    variant : one of :data:`VARIANTS`.
    mean_image : (3, H, W) tensor in [0, 1] (or anything broadcastable to the images, e.g. a
        (3, 1, 1) mean colour) returned for every failed image.
    k : complex channel uses per image (DeepJSCC's k = rho * 3 * H * W).
    codec : an :class:`~singlink.baselines.codec.ImageCodec`; default :func:`make_codec` (BPG when
        ``bpgenc``/``bpgdec`` are on PATH, else HEVC intra via pillow-heif). Pass one codec to
        several baselines (variants, k) to share its payload-size cache: the QP scan costs up to
        52 encodes per new image (about 7-17 ms each at 32x32, 0.1-0.7 s at 256x256 here).
    modulation, coderate : the MCS of ``bpg-ldpc`` (default ``"bpsk"``, 2/3); not accepted by
        the other variants.
    num_iter : LDPC belief-propagation iterations.
    bler_target, mc_images : the ``bpg-ldpc-best`` rule: target image error rate and the number
        of images simulated per (MCS, SNR) estimate (fewer when 10 image errors are seen first).
    batch : images per call of the digital link.
    """

    def __init__(self, variant: str, mean_image: torch.Tensor, k: int, *, codec: ImageCodec | None = None,
                 modulation: str | None = None, coderate=None, num_iter: int = 20, bler_target: float = 1e-2,
                 mc_images: int = 500, batch: int = 64):
        if variant not in VARIANTS:
            raise UsageError(f"unknown separation variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if variant != "bpg-ldpc" and (modulation is not None or coderate is not None):
            raise UsageError(f"{variant} chooses no fixed MCS: modulation and coderate are for bpg-ldpc only")
        if int(k) < 1:
            raise UsageError(f"k (channel uses per image) must be >= 1, got {k}")
        mean_image = torch.as_tensor(mean_image, dtype=torch.float32)
        if mean_image.ndim != 3 or mean_image.shape[0] != 3:
            raise UsageError(f"mean_image must be (3, H, W) or (3, 1, 1), got shape {tuple(mean_image.shape)}")
        if not 0 < bler_target < 1 or int(mc_images) < 1 or int(batch) < 1 or int(num_iter) < 1:
            raise UsageError("need 0 < bler_target < 1 and mc_images, batch, num_iter >= 1")
        self.variant, self.k, self.mean_image = variant, int(k), mean_image
        self.codec = codec if codec is not None else make_codec()
        self.num_iter, self.bler_target = int(num_iter), float(bler_target)
        self.mc_images, self.batch = int(mc_images), int(batch)
        self.split = None
        if variant == "bpg-ldpc":
            modulation = "bpsk" if modulation is None else str(modulation).lower()
            rate = Fraction(2, 3) if coderate is None else _fraction(coderate)
            if modulation not in phy.MODULATIONS:
                raise UsageError(f"unknown modulation {modulation!r}; choose one of {', '.join(phy.MODULATIONS)}")
            if not Fraction(1, 5) < rate <= Fraction(9, 10):
                raise UsageError(f"code rate must lie in (1/5, 9/10], got {rate}")
            self.split = code_split(self.k, modulation, rate)
        self._links: dict = {}
        self._runners: dict = {}
        self._estimates: dict = {}
        self._qualities: dict = {}

    # --- MCS choice --------------------------------------------------------------------------

    def _link(self, split: CodeSplit, channel: str):
        key = (split, channel)
        if key not in self._links:
            cfg = phy.DigitalLinkConfig(k=split.k_info, n=split.n, modulation=split.modulation,
                                        channel=channel, num_iter=self.num_iter)
            if phy.is_ofdm(channel):  # padded to the image's k: DeepJSCC's slots and REs
                self._links[key] = phy.OFDMDigitalLink(cfg, num_blocks=split.codewords, channel_uses=self.k)
            else:
                self._links[key] = phy.DigitalLink(cfg, num_blocks=split.codewords)
        return self._links[key]

    def image_error_rate(self, split: CodeSplit, snr_db: float, channel: str = "awgn", seed: int = 0):
        """Monte Carlo estimate (:class:`singlink.phy.ErrorRateEstimate`; its ``bler`` is the
        image error rate) of ``split`` at ``snr_db`` over ``channel``; cached."""
        key = (split, float(snr_db), channel, int(seed))
        if key not in self._estimates:
            if (split, channel) not in self._runners:
                link = self._link(split, channel)
                batch = max(1, min(self.mc_images, _MC_CODED_BITS // (split.codewords * split.n)))

                def rows(batch_size, snr):  # one "block" = one image: all its codewords
                    return tuple(_per_row(t, batch_size) for t in link(batch_size, snr))

                self._runners[(split, channel)] = phy.MonteCarloRunner(
                    rows, batch, target_block_errors=10, max_trials=math.ceil(self.mc_images / batch),
                    jit_compile=False)
            phy.set_seed(derive_seed(seed, "mcs", split.modulation, str(split.coderate), self.k, float(snr_db),
                                     channel))
            self._estimates[key] = self._runners[(split, channel)].run_point(float(snr_db))
        return self._estimates[key]

    def mcs_error_rates(self, snr_db: float, channel: str = "awgn", seed: int = 0) -> dict:
        """{split: estimated image error rate} at ``snr_db`` of every valid MCS of
        :data:`MCS_TABLE` (empty when none is valid for this k)."""
        splits = [s for s in (code_split(self.k, m, r) for m, r in MCS_TABLE) if s.valid]
        return {s: self.image_error_rate(s, snr_db, channel, seed).bler for s in splits}

    def choose_mcs(self, image: torch.Tensor, mean: torch.Tensor, rates: dict) -> CodeSplit | None:
        """The ``bpg-ldpc-best`` choice for ``image`` (module docstring) given ``rates`` from
        :meth:`mcs_error_rates`; ties go to the lower error rate, then the smaller budget."""
        from ..metrics import psnr

        fail = float(psnr(mean[None], image[None])[0])

        def expected(split):
            fit = self.codec.best_fit(image, split.info_bits)
            quality = fail if fit is None else self._quality(image, *fit)
            return (1 - rates[split]) * quality + rates[split] * fail, -rates[split], -split.info_bits

        return max(rates, key=expected, default=None)

    def _quality(self, image: torch.Tensor, qp: int, payload: bytes) -> float:
        """PSNR of ``image`` coded at ``qp`` (cached per image content and QP)."""
        from ..metrics import psnr
        from .codec import to_uint8

        key = ImageCodec._key(to_uint8(image), qp)
        if key not in self._qualities:
            decoded = self.codec.decode(payload, tuple(image.shape[1:]))
            self._qualities[key] = -math.inf if decoded is None else float(psnr(decoded[None], image[None])[0])
        return self._qualities[key]

    # --- transmission ------------------------------------------------------------------------

    def transmit(self, images: torch.Tensor, snr_db: float, channel: str = "awgn", seed: int = 0,
                 mcs_seed: int | None = None, channel_seed: int | None = None):
        """Send ``images`` (N, 3, H, W) in [0, 1] at ``snr_db`` (one scalar) over ``channel``.

        ``seed`` seeds the transmission; ``mcs_seed`` (default ``seed``) the ``bpg-ldpc-best`` MCS
        error-rate estimates, so that callers sending many batches (one seed per batch and channel
        realisation) estimate them once per SNR (they are cached per seed). ``channel_seed`` (OFDM
        only) draws the channel realisation of the batch as a DeepJSCC transmission seeded with it
        would (module docstring); default: derived from ``seed``.

        Returns ``(images_hat, info)``: ``images_hat`` (N, 3, H, W) float32, and ``info`` one dict
        per image with ``qp`` (None when nothing was sent), ``payload_bits``, ``bits_sent``
        (information bits put on the channel, padding included; capacity: the payload),
        ``budget_bits``, ``channel_uses`` (= k), ``symbols_used`` (<= k), ``modulation``,
        ``coderate``, ``codewords``, ``decoded_ok`` and ``status`` (ok, no-valid-code, no-fit,
        block-error, decode-failed).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise UsageError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        ofdm = phy.is_ofdm(channel)
        if ofdm:
            try:
                phy.make_channel(channel).slots(self.k)
            except ValueError as e:
                raise UsageError(str(e)) from None
        elif channel not in phy.CHANNELS:
            raise UsageError(f"unknown channel {channel!r}; choose one of {', '.join(phy.CHANNELS)} "
                             f"or ofdm-<model>[:key=value...]")
        if np.ndim(snr_db) != 0:
            raise UsageError("snr_db must be one number (dB) for the whole batch")
        snr_db = float(snr_db)
        try:
            mean = self.mean_image.expand(images.shape[1:])
        except RuntimeError:
            raise UsageError(f"mean_image {tuple(self.mean_image.shape)} does not match images "
                             f"{tuple(images.shape[1:])}") from None
        n_img, shape = images.shape[0], tuple(images.shape[2:])
        splits, rates = [self.split] * n_img, {}
        if self.variant == "bpg-ldpc-best":
            rates = self.mcs_error_rates(snr_db, channel, seed if mcs_seed is None else mcs_seed)
            splits = [self.choose_mcs(images[i], mean, rates) for i in range(n_img)]
        h_freq, draw = None, channel
        if ofdm:  # the batch's channel realisation, drawn first (as DeepJSCC's transmission draws it)
            draw = phy.parse_spec(channel).draw_name  # the same draws whatever the receiver options
            phy.set_seed(derive_seed(seed, "separation-channel", self.k, snr_db, draw)
                         if channel_seed is None else channel_seed)
            h_freq = phy.make_channel(channel).generate(n_img, self.k)
        phy.set_seed(derive_seed(seed, "separation", self.variant, self.k, snr_db, draw))
        images_hat = mean.unsqueeze(0).repeat(n_img, 1, 1, 1).contiguous()
        info = [self._row(split, snr_db, channel, rates.get(split)) for split in splits]

        if self.variant == "bpg-capacity":
            budgets = self._capacity_bits(n_img, snr_db, channel, h_freq)
        else:
            budgets = [split.info_bits if split is not None and split.valid else None for split in splits]
            for row, budget in zip(info, budgets):
                if budget is None:
                    row["status"] = "no-valid-code"
        payloads = {}
        for i, budget in enumerate(budgets):
            if budget is None:
                continue
            info[i]["budget_bits"] = int(budget)
            fit = self.codec.best_fit(images[i], int(budget))
            if fit is None:
                info[i]["status"] = "no-fit"
                continue
            info[i]["qp"], payloads[i] = fit
            info[i]["payload_bits"] = 8 * len(fit[1])

        capacity = self.variant == "bpg-capacity"
        if capacity:
            received = dict(payloads)
        else:  # one digital link per MCS in use, in a fixed order (the draws follow the seed set above)
            received = {}
            for split in sorted({splits[i] for i in payloads}, key=lambda s: (s.modulation, s.coderate)):
                group = {i: p for i, p in payloads.items() if splits[i] == split}
                received |= self._send(group, split, snr_db, channel, info, h_freq)
        for i in payloads:
            row = info[i]
            if capacity:  # error free: exactly the payload, within the image's capacity
                row["bits_sent"], row["symbols_used"], limit = row["payload_bits"], self.k, budgets[i]
            else:
                split = splits[i]
                row["bits_sent"], limit = split.info_bits, self.k * split.bits_per_symbol * split.coderate
            assert row["payload_bits"] <= row["bits_sent"] <= limit, (row, limit)
            if i not in received:
                row["status"] = "block-error"
                continue
            decoded = self.codec.decode(received[i], shape)
            if decoded is None:
                row["status"] = "decode-failed"
                continue
            images_hat[i] = decoded
            row["decoded_ok"], row["status"] = True, "ok"
        return images_hat, info

    def _row(self, split, snr_db, channel, error_rate) -> dict:
        ldpc = split is not None and self.variant != "bpg-capacity"
        return {"variant": self.variant, "codec": self.codec.name, "snr_db": snr_db, "channel": channel,
                "channel_uses": self.k, "modulation": split.modulation if ldpc else None,
                "coderate": float(split.coderate) if ldpc else None, "codewords": split.codewords if ldpc else 0,
                "codeword_bits": split.n if ldpc else 0, "info_bits_per_codeword": split.k_info if ldpc else 0,
                "symbols_used": 0, "budget_bits": 0, "qp": None, "payload_bits": 0, "bits_sent": 0,
                "decoded_ok": False, "status": None, "mcs_error_rate": error_rate}

    def _capacity_bits(self, n_img: int, snr_db: float, channel: str, h_freq=None) -> list[int]:
        """floor(sum_j log2(1 + |h_j|^2 SNR)) per image, h drawn by the channel model (OFDM: the
        true H on the image's k REs of the channel ``h_freq``)."""
        zeros = _tensor(np.zeros((n_img, self.k), np.complex64))
        if phy.is_ofdm(channel):
            h = phy.make_channel(channel).transmit(zeros, snr_db, h_freq)["h_data"]
        else:
            _, h = phy.make_channel(channel)(zeros, snr_db)
        gain = np.broadcast_to(np.abs(h.numpy()) ** 2, (n_img, self.k))
        bits = np.log2(1.0 + gain * 10.0 ** (snr_db / 10.0)).sum(axis=1)
        return [int(math.floor(b)) for b in bits]

    def _send(self, payloads: dict, split: CodeSplit, snr_db: float, channel: str, info: list,
              h_freq=None) -> dict:
        """Pad, encode, send and decode the payloads; {index: received bytes} of the images whose
        codewords all arrived without error."""
        received, order = {}, sorted(payloads)
        link = self._link(split, channel) if order else None
        for start in range(0, len(order), self.batch):
            ids = order[start:start + self.batch]
            bits = np.zeros((len(ids), split.info_bits), np.float32)
            for row, i in enumerate(ids):
                payload_bits = np.unpackbits(np.frombuffer(payloads[i], np.uint8))
                bits[row, :len(payload_bits)] = payload_bits
                info[i]["symbols_used"] = split.symbols
            sent = bits.reshape(len(ids), split.codewords, split.k_info)
            snr = _tensor(np.full(len(ids), snr_db, np.float32))
            if h_freq is None:
                _, bits_hat = link(len(ids), snr, bits=_tensor(sent))
            else:  # these images' slots of the batch's channel draw
                slots = link._channel.slots(self.k)
                rows = [i * slots + s for i in ids for s in range(slots)]
                _, bits_hat = link(len(ids), snr, bits=_tensor(sent), h_freq=_take_rows(h_freq, rows))
            bits_hat = bits_hat.numpy().reshape(len(ids), -1)
            for row, i in enumerate(ids):
                if np.array_equal(bits_hat[row], bits[row]):
                    received[i] = np.packbits(bits_hat[row].astype(np.uint8)).tobytes()
        return received
