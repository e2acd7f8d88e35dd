"""The receiver plugin: received symbols + channel state -> restored images.

    rx = Receiver("deepjscc-cifar10-rho1_192", method="sing-zero", prior="ddpm-cifar10-32-singlink")
    x_hat = rx(y, snr_db, h=h)          # y: (N, k) complex torch, any device; h under fading
    x_hat = rx.restore(x_jscc, snr_db)  # application layer only: any JSCC decoder's output
    rx = Receiver("deepjscc-celeba64-rho1_192", method="dps")   # posterior sampling on y itself

Restoration methods register themselves with :func:`register_method`; a new one plugs in by
name without touching callers (``Receiver(..., method="my-method")``). Every method receives an
:class:`~.observation.Observation`, what the receiver knows of the batch: ``deepjscc``,
``sing-zero``, ``sing-inn`` and ``commin`` use the decoded images and the SNR, ``dps`` the received
symbols, h and the noise variance through the codec's encoder.
"""

import math

import torch

from ..errors import UsageError
from .observation import Observation

_METHODS: dict[str, type] = {}
DEFAULT_PRIOR = "ddpm-cifar10-32-singlink"
#: SING's settings when neither the caller nor the DeepJSCC's recorded choice gives them.
SING_DEFAULTS = {"operator": "pool4", "steps": 100, "zeta": "paper"}
#: An SNR of +inf (a noiseless channel) reaches the models' SNR inputs (DeepJSCC's AF modules, the
#: INN's conditioning) as this many dB: they take finite numbers, and nothing changes above it.
NOISELESS_SNR_DB = 100.0


def _check_operator(sampler) -> None:
    """Apply the sampler's operator once to an image of the prior's size, so an operator that
    does not fit (pool7 on 32x32) is refused when the receiver is built, not when it is used."""
    prior = sampler.prior
    size = getattr(prior, "image_size", None)
    if size is not None:
        with torch.no_grad():
            sampler.operator(torch.zeros(1, *size, dtype=getattr(prior, "dtype", torch.float32)))


def register_method(name: str):
    """Class decorator: make a restoration method available by ``name``. The class is built as
    ``cls(prior=..., **options)`` (``codec=`` too when it declares ``accepts_codec = True``) and
    called as ``method(observation, seed=..., progress=...)`` with an
    :class:`~.observation.Observation`: what the receiver knows of the batch (decoded images,
    SNR, and after a channel the received symbols, h and the noise variance)."""
    def deco(cls):
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"restoration method {name!r} is already registered by {_METHODS[name].__name__}")
        _METHODS[name] = cls
        cls.method_name = name
        return cls
    return deco


def available_methods() -> list[str]:
    return sorted(_METHODS)


def make_method(name: str, prior=None, **options):
    try:
        cls = _METHODS[name]
    except KeyError:
        raise UsageError(f"unknown restoration method {name!r}; available: {', '.join(available_methods())}") from None
    if getattr(cls, "needs_prior", False):
        from .prior import DiffusionPrior

        prior = prior if prior is not None else DEFAULT_PRIOR
        if not isinstance(prior, torch.nn.Module):
            prior = DiffusionPrior.from_pretrained(prior)
        return cls(prior=prior, **options)
    options.pop("codec", None)
    if options:
        raise UsageError(f"method {name!r} takes no options, got {', '.join(options)}")
    return cls()


@register_method("deepjscc")
class DecoderOnly:
    """No restoration: the DeepJSCC decoder's output as it is."""

    def __call__(self, obs, seed=0, progress=False):
        return obs.x_jscc


def _check_scale(value) -> float:
    import math

    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = math.nan
    if not (math.isfinite(scale) and 0 <= scale <= 100):
        raise UsageError(f"sigma_y_scale must be a number in [0, 100] (1: the calibrated sigma_y), got {value!r}")
    return scale


class _Projected:
    """What SING-Zero, SING-INN and CommIN share: the observation's error sigma_y per image when the
    projection is noise-aware (the codec's calibration times ``sigma_y_scale``)."""

    needs_prior = True
    accepts_codec = True

    def _noise_setup(self, codec, projection, sigma_y_scale):
        self.sigma_y_scale = _check_scale(sigma_y_scale)
        self.noise_table = None
        if projection == "noise-aware":
            from .noise import sigma_y_table

            if codec is None:
                raise UsageError("the noise-aware projection needs the DeepJSCC (its calibrated sigma_y)")
            # read and checked against the codec's weights once, here: a missing calibration is
            # refused when the receiver is built, and batches only interpolate
            self.noise_table = sigma_y_table(codec, self.operator_name)

    def sigma_y(self, obs):
        if self.noise_table is None:
            return None
        from .noise import interpolate

        return self.sigma_y_scale * interpolate(self.noise_table, obs.snr_db)


@register_method("sing-zero")
class SINGZeroMethod(_Projected):
    """SING-Zero (Algorithm 1) with options ``operator`` (default pool4), ``steps`` (default 100),
    ``projection`` ("hard", default; "noise-aware": DDNM+ with the codec's calibrated sigma_y times
    ``sigma_y_scale``), ``travel_length`` and ``travel_repeats`` (time travel; 0: none)."""

    def __init__(self, prior, operator=SING_DEFAULTS["operator"], steps=SING_DEFAULTS["steps"], projection="hard",
                 sigma_y_scale=1.0, travel_length=0, travel_repeats=0, codec=None):
        from .sing_zero import SINGZero

        self.sampler = SINGZero(prior, operator=operator, steps=steps, projection=projection,
                                travel_length=travel_length, travel_repeats=travel_repeats)
        self.operator_name = self.sampler.operator.name
        _check_operator(self.sampler)
        self._noise_setup(codec, projection, sigma_y_scale)

    def __call__(self, obs, seed=0, progress=False):
        return self.sampler(obs.x_jscc, obs.snr_db, seed=seed, progress=progress, sigma_y=self.sigma_y(obs))


@register_method("sing-inn")
class SINGINNMethod(_Projected):
    """SING-INN (Algorithm 2) with options ``inn`` (a trained ConditionalINN, its name or folder;
    required), ``operator`` (default pool4), ``steps`` (default 100), ``zeta`` (default None:
    the paper's SNR-dependent step size), ``guidance`` ("norm", default, or "squared": see
    :mod:`.sing_inn`) and SING-Zero's ``projection``, ``sigma_y_scale``, ``travel_length``,
    ``travel_repeats``. The Receiver passes its DeepJSCC (``codec``), so an INN trained for another
    codec is refused."""

    projection_default = "hard"

    def __init__(self, prior, inn=None, operator=SING_DEFAULTS["operator"], steps=SING_DEFAULTS["steps"], zeta=None,
                 codec=None, guidance="norm", projection=None, sigma_y_scale=1.0, travel_length=0, travel_repeats=0):
        from .sing_inn import SINGINN

        if inn is None:
            raise UsageError(f"{self.method_name} needs a trained conditional INN: pass inn=<name, folder or "
                             f"ConditionalINN> (train one for your DeepJSCC with `singlink train-inn`)")
        projection = projection or self.projection_default
        self.sampler = SINGINN(prior, inn, operator=operator, steps=steps, zeta=zeta, jscc=codec, guidance=guidance,
                               projection=projection, travel_length=travel_length, travel_repeats=travel_repeats)
        self.operator_name = self.sampler.sampler.operator.name
        _check_operator(self.sampler.sampler)
        self._noise_setup(codec, projection, sigma_y_scale)

    def __call__(self, obs, seed=0, progress=False):
        return self.sampler(obs.x_jscc, obs.snr_db, seed=seed, progress=progress, sigma_y=self.sigma_y(obs))


@register_method("commin")
class CommINMethod(SINGINNMethod):
    """CommIN (Chen et al. 2024, Algorithm 1): INN-guided DDPM sampling without SING's projection; each
    step is the prior's own, then the INN's gradient step toward INN^-1(coarse(x_JSCC), d_t). The
    options of sing-inn, with ``projection`` "none" (the paper's) by default."""

    projection_default = "none"


@register_method("dps")
class DPSMethod:
    """Posterior sampling on the received symbols (:mod:`.dps`) with options ``steps`` (default 100),
    ``zeta`` (default 1.0) and ``start`` (default 1: from pure noise; below 1 from x_JSCC noised
    part-way). Needs the symbols: ``rx(y, snr_db, h=...)``, not ``rx.restore``."""

    needs_prior = True
    accepts_codec = True

    def __init__(self, prior, steps=SING_DEFAULTS["steps"], zeta=1.0, start=1.0, codec=None):
        from .dps import DPS

        if codec is None:
            raise UsageError("dps needs the DeepJSCC whose encoder it models (Receiver passes it)")
        self.sampler = DPS(prior, codec, steps=steps, zeta=zeta, start=start)

    def __call__(self, obs, seed=0, progress=False):
        return self.sampler(obs, seed=seed, progress=progress)


def nearest_band(spans: list, snr_db: float) -> int:
    """Index of the SNR span [lo, hi] (None: every SNR) nearest ``snr_db``: distance
    max(lo - s, s - hi, 0); among equally near spans the narrowest, then the first."""
    def key(i):
        lo, hi = spans[i] or (-math.inf, math.inf)
        return max(lo - snr_db, snr_db - hi, 0.0), hi - lo, i

    return min(range(len(spans)), key=key)


class SNRBands:
    """One restoration per recorded SNR band (``singlink tune-sing --record-band``): each image is
    restored by the method of the span nearest its SNR (:func:`nearest_band`). Noise is drawn per
    image from its own seed (:func:`~.sing_zero.image_generators`), so an image's restoration does
    not depend on which other images share its batch or band."""

    def __init__(self, spans: list, methods: list):
        self.spans, self.methods = list(spans), list(methods)

    def __call__(self, obs, seed=0, progress=False):
        from ..provenance import derive_seed

        bands = [nearest_band(self.spans, float(s)) for s in obs.snr_db]
        if len(set(bands)) == 1:
            return self.methods[bands[0]](obs, seed=seed, progress=progress)
        seeds = [derive_seed(seed, "image", i) for i in range(len(obs))] if isinstance(seed, int) else list(seed)
        out = torch.empty_like(obs.x_jscc)
        for band in sorted(set(bands)):
            rows = [i for i, b in enumerate(bands) if b == band]
            index = torch.tensor(rows, device=obs.x_jscc.device)
            out[index] = self.methods[band](obs.select(index), seed=[seeds[i] for i in rows], progress=progress)
        return out


def _faded_snr(snr, h):
    """SNR + 10 log10(mean |h|^2) per image: the SNR of the MMSE-equalised symbols of a flat channel."""
    return snr + 10 * torch.log10((h.abs() ** 2).mean(dim=1).clamp_min(1e-12))


def _snr_tensor(snr_db, n, device):
    if snr_db is None:
        raise UsageError("the receiver needs the channel SNR in dB (a scalar or one value per image)")
    try:
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise UsageError(f"snr_db must be a number in dB or one per image, got {snr_db!r}") from None
    snr = snr.expand(n) if snr.ndim == 0 else snr
    if snr.shape != (n,):
        raise UsageError(f"snr_db must be a scalar or shape ({n},), got {tuple(snr.shape)}")
    bad = torch.isnan(snr) | (snr == float("-inf"))
    if bool(bad.any()):
        raise UsageError(f"snr_db must be a number in dB or +inf (noiseless), got {float(snr[bad][0])}")
    return snr.clamp(max=NOISELESS_SNR_DB)


class Receiver:
    """DeepJSCC decoding plus a named restoration method.

    Parameters
    ----------
    jscc : DeepJSCC or the name/folder of a checkpoint
    method : a registered method name (:func:`available_methods`)
    prior : DiffusionPrior or its name/folder/hub id, for methods that need one
    equalizer : ``mmse`` or ``zf``, applied (by phy, through the bridge) when ``h`` is given
    options : passed to the method (e.g. ``operator="pool4", steps=100``); methods that declare
        ``accepts_codec = True`` also get ``codec``, the DeepJSCC itself. The prior, INN and settings
        of prior-based methods default to those recorded for ``jscc`` (:meth:`_defaults`)
    """

    def __init__(self, jscc, method: str = "deepjscc", prior=None, equalizer: str = "mmse", device="cpu", **options):
        from ..jscc.model import DeepJSCC

        self.jscc = jscc if isinstance(jscc, DeepJSCC) else DeepJSCC.from_pretrained(jscc, device=device)
        self.method_name = method
        cls = _METHODS.get(method)
        bands = [(None, options)]
        if getattr(cls, "needs_prior", False):
            prior, bands = self._defaults(method, prior, options)

        def plain(opts):
            return {key: v if isinstance(v, (str, int, float, type(None))) else str(v) for key, v in opts.items()}

        #: the method's options as resolved (recorded beside results: which A, steps, zeta, INN); with
        #: SNR bands recorded for the DeepJSCC, those of the main choice and ``bands``, each band's
        #: span and options as text
        banded = any(opts != bands[0][1] for _, opts in bands)
        self.options = plain(bands[0][1]) | ({"bands": "; ".join(
            f"{lo:g}..{hi:g} dB: " + ", ".join(f"{key} {v}" for key, v in plain(opts).items() if key != "inn")
            for (lo, hi), opts in bands[1:])} if banded else {})
        methods = []
        for i, (_, opts) in enumerate(bands):
            same = next((methods[j] for j in range(i) if bands[j][1] == opts), None)  # one model per choice
            if getattr(cls, "accepts_codec", False):
                opts = opts | {"codec": self.jscc}  # what the method models or checks its INN and sigma_y against
            methods.append(same or make_method(method, prior=prior, **opts))
        self.method = SNRBands([span for span, _ in bands], methods) if banded else methods[0]
        if equalizer not in ("mmse", "zf"):
            raise UsageError(f"unknown equalizer {equalizer!r}; choose mmse or zf")
        self.equalizer = equalizer

    def _defaults(self, method, prior, options):
        """What a prior-based method is not given comes from the DeepJSCC: the prior shipped for its
        data set and size, the INN made for it (:func:`~.inn.find_inn`), and the settings chosen for
        it on validation images (:attr:`DeepJSCC.sing`, written by ``singlink tune-sing --record``:
        its operator, steps and zeta serve sing-zero and sing-inn, its ``methods`` block any method).
        Returns the prior and ``[(span, options)]``: the main choice, then one per SNR band the
        DeepJSCC records (``tune-sing --record-band``; :attr:`DeepJSCC.sing_bands`); options the
        caller gives hold in every band."""
        from .inn import find_inn
        from .prior import find_prior

        cfg = self.jscc.config
        if prior is None:
            prior = find_prior(cfg.dataset, cfg.image_size[-1])
        if method in ("sing-inn", "commin") and options.get("inn") is None:
            options["inn"] = find_inn(self.jscc)
        spans = list(self.jscc.sing_bands) or [(None, {})]
        blocks = [(spans[0][0], self.jscc.sing)] + spans[1:]
        out = []
        for span, block in blocks:
            recorded = dict(block)
            per_method = recorded.pop("methods", {})
            chosen = recorded if method in ("sing-zero", "sing-inn") else {}
            if method != "sing-inn":
                chosen.pop("zeta", None)
            chosen |= per_method.get(method, {})
            opts = dict(options)
            for key, value in chosen.items():
                opts.setdefault(key, value)
            if opts.get("zeta") == "paper":  # recorded or given: the paper's SNR schedule
                opts["zeta"] = None
            out.append((span, opts))
        return prior, out

    def decode(self, y, snr_db, h=None, no_eff=None):
        """Received symbols (N, k) -> DeepJSCC reconstruction x_JSCC (N, C, H, W) in [0, 1].

        Under fading the symbols are equalised with perfect CSI and the decoder is told the
        per-image effective SNR, SNR + 10 log10(mean |h|^2) (exact for block fading).
        After an OFDM channel (``phy.make_channel("ofdm-...")`` returns ``(y, no_eff)``, ``y``
        already equalised) pass ``no_eff``: the decoder gets :func:`singlink.phy.jscc_input`'s
        symbols and SNR (10 log10 of the mean per-symbol SNR P/no_eff); ``snr_db`` is then unused."""
        if not torch.is_tensor(y) or not torch.is_complex(y) or y.ndim != 2:
            raise UsageError(f"received symbols must be a complex (N, k) tensor, got {getattr(y, 'shape', type(y).__name__)}")
        n, k = y.shape
        if n == 0:
            raise UsageError("received symbols hold no images (N = 0); give at least one row")
        if k != self.jscc.config.k:
            raise UsageError(f"received symbols have k = {k} per image but the DeepJSCC sends k = {self.jscc.config.k}")
        if no_eff is not None:
            if h is not None:
                raise UsageError("give h (flat fading, y not equalised) or no_eff (OFDM, y equalised), not both")
            if not torch.is_tensor(no_eff) or no_eff.is_complex() or tuple(no_eff.shape) != (n, k):
                raise UsageError(f"no_eff must be the real ({n}, {k}) effective noise variances an OFDM channel "
                                 f"returns, got {tuple(no_eff.shape) if torch.is_tensor(no_eff) else type(no_eff).__name__}")
            from .. import phy

            y, snr = phy.jscc_input(y, no_eff.to(y.real.dtype), self.jscc.config.power)
            with torch.no_grad():
                return self.jscc.decode(y, snr)
        snr = _snr_tensor(snr_db, n, y.device)
        if torch.is_tensor(h) and not h.is_complex():
            raise UsageError("h is real: an OFDM channel returns (y, no_eff) with y already equalised; "
                             "pass it as decode(y, snr_db, no_eff=no_eff)")
        if h is not None:
            if not torch.is_tensor(h) or h.ndim != 2 or h.shape[0] != n or h.shape[1] not in (1, k):
                raise UsageError(f"h must be the channel gains as an (N, 1) or (N, k) tensor, here ({n}, 1) or "
                                 f"({n}, {k}), got {tuple(h.shape) if torch.is_tensor(h) else type(h).__name__}")
            from .. import phy

            equalize = phy.as_torch(lambda y, h, s: phy.equalize(y, h, s, self.equalizer, self.jscc.config.power))
            z_hat, _ = equalize(y, h.to(y.dtype), snr)
            y, snr = z_hat, _faded_snr(snr, h)
        with torch.no_grad():
            return self.jscc.decode(y, snr)

    def effective_snr_db(self, snr_db, h=None, no_eff=None):
        """The per-image SNR (N,) the decoder is told, and so restoration too: ``snr_db`` over AWGN;
        SNR + 10 log10(mean |h|^2) under flat fading (the equalised symbols are AWGN at that SNR,
        exactly for block fading); :func:`singlink.phy.effective_snr_db` after an OFDM channel."""
        if no_eff is not None:
            from .. import phy

            return phy.effective_snr_db(no_eff.to(torch.float32), self.jscc.config.power)
        if h is None:
            return snr_db
        return _faded_snr(_snr_tensor(snr_db, h.shape[0], h.device), h)

    def restore(self, x_jscc, snr_db, seed=0, progress=False):
        """Restore already decoded images (any JSCC decoder's output): for methods that need only
        x_JSCC and the SNR (``dps`` needs the received symbols: call the receiver on them)."""
        if not torch.is_tensor(x_jscc) or x_jscc.ndim != 4:
            raise UsageError(f"x_jscc must be an (N, C, H, W) tensor, got {getattr(x_jscc, 'shape', type(x_jscc).__name__)}")
        if x_jscc.shape[0] == 0:
            raise UsageError("x_jscc holds no images (N = 0); give at least one")
        if not x_jscc.is_floating_point():
            raise UsageError(f"x_jscc must be float images in [0, 1], got {x_jscc.dtype} (for 8-bit images pass "
                             f"x.float() / 255)")
        lo, hi = float(x_jscc.min()), float(x_jscc.max())
        if not (lo >= 0 and hi <= 1):  # also catches NaN
            raise UsageError(f"x_jscc must hold images in [0, 1], got values in [{lo:g}, {hi:g}]"
                             + (" (8-bit values? divide by 255)" if hi > 1 and hi <= 255 and lo >= 0 else ""))
        snr = _snr_tensor(snr_db, x_jscc.shape[0], x_jscc.device)
        return self.reconstruct(Observation(x_jscc, snr, codec=self.jscc), seed=seed, progress=progress)

    def observe(self, y, snr_db, h=None, no_eff=None) -> Observation:
        """Everything the receiver knows of a channel output (:class:`~.observation.Observation`):
        the decoded images and the SNR the decoder was told (:meth:`decode`,
        :meth:`effective_snr_db`), the symbols as received with h and the noise variance per symbol
        (P / 10^(SNR/10) at the nominal SNR; ``no_eff`` after OFDM, whose symbols are equalised),
        and the SNR the transmitter's encoder was told (the nominal one)."""
        x_jscc = self.decode(y, snr_db, h, no_eff=no_eff)
        n, k = y.shape
        if no_eff is not None:
            noise_var = no_eff.to(device=y.device, dtype=torch.float32)
            tx_snr = _snr_tensor(snr_db, n, y.device) if snr_db is not None else self.effective_snr_db(None, no_eff=no_eff)
        else:
            tx_snr = _snr_tensor(snr_db, n, y.device)
            noise_var = (self.jscc.config.power / 10 ** (tx_snr / 10)).unsqueeze(1).expand(n, k)
        snr_rx = torch.as_tensor(self.effective_snr_db(snr_db, h, no_eff), dtype=torch.float32, device=y.device)
        snr_rx = snr_rx.expand(n) if snr_rx.ndim == 0 else snr_rx
        return Observation(x_jscc, snr_rx.clamp(max=NOISELESS_SNR_DB), symbols=y, h=h, noise_var=noise_var,
                           tx_snr_db=tx_snr, codec=self.jscc)

    def reconstruct(self, obs: Observation, seed=0, progress=False):
        """The method's restoration of an :class:`~.observation.Observation`."""
        return self.method(obs, seed=seed, progress=progress)

    def __call__(self, y, snr_db, h=None, seed=0, progress=False, no_eff=None):
        """observe, then reconstruct; under fading and after an OFDM channel restoration is told each
        image's effective SNR (:meth:`effective_snr_db`), as the decoder is: x_JSCC is then what
        the decoder gives over AWGN at that SNR, the conditions SING-INN was trained in."""
        return self.reconstruct(self.observe(y, snr_db, h, no_eff=no_eff), seed=seed, progress=progress)
