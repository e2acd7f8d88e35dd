"""The receiver plugin: received symbols + channel state -> restored images.

    rx = Receiver("deepjscc-cifar10-rho1_192", method="sing-zero", prior="ddpm-cifar10-32-singlink")
    x_hat = rx(y, snr_db, h=h)          # y: (N, k) complex torch, any device; h under fading
    x_hat = rx.restore(x_jscc, snr_db)  # application layer only: any JSCC decoder's output

Restoration methods register themselves with :func:`register_method`; a new one plugs in by
name without touching callers (``Receiver(..., method="my-method")``).
"""

import torch

from ..errors import UsageError

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
    ``cls(prior=..., **options)`` and called as ``method(x_jscc, snr_db, seed=...)``."""
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
    if options:
        raise UsageError(f"method {name!r} takes no options, got {', '.join(options)}")
    return cls()


@register_method("deepjscc")
class DecoderOnly:
    """No restoration: the DeepJSCC decoder's output as it is."""

    def __call__(self, x_jscc, snr_db=None, seed=0, progress=False):
        return x_jscc


@register_method("sing-zero")
class SINGZeroMethod:
    """SING-Zero (Algorithm 1) with options ``operator`` (default pool4) and ``steps`` (default 100)."""

    needs_prior = True

    def __init__(self, prior, operator=SING_DEFAULTS["operator"], steps=SING_DEFAULTS["steps"]):
        from .sing_zero import SINGZero

        self.sampler = SINGZero(prior, operator=operator, steps=steps)
        _check_operator(self.sampler)

    def __call__(self, x_jscc, snr_db=None, seed=0, progress=False):
        return self.sampler(x_jscc, snr_db, seed=seed, progress=progress)


@register_method("sing-inn")
class SINGINNMethod:
    """SING-INN (Algorithm 2) with options ``inn`` (a trained ConditionalINN, its name or folder;
    required), ``operator`` (default pool4), ``steps`` (default 100), ``zeta`` (default None:
    the paper's SNR-dependent step size) and ``guidance`` ("norm", default, or "squared": see
    :mod:`.sing_inn`). The Receiver passes ``k``, the channel symbols of its
    DeepJSCC, so an INN trained for another DeepJSCC is refused."""

    needs_prior = True
    accepts_k = True

    def __init__(self, prior, inn=None, operator=SING_DEFAULTS["operator"], steps=SING_DEFAULTS["steps"], zeta=None, k=None,
                 guidance="norm"):
        from .sing_inn import SINGINN

        if inn is None:
            raise UsageError("sing-inn needs a trained conditional INN: pass inn=<name, folder or ConditionalINN> "
                             "(train one for your DeepJSCC with `singlink train-inn`)")
        self.sampler = SINGINN(prior, inn, operator=operator, steps=steps, zeta=zeta, k=k, guidance=guidance)
        _check_operator(self.sampler.sampler)

    def __call__(self, x_jscc, snr_db=None, seed=0, progress=False):
        return self.sampler(x_jscc, snr_db, seed=seed, progress=progress)


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
        ``accepts_k = True`` also get ``k``, the channel symbols per image of ``jscc``. SING's prior,
        INN, operator, steps and zeta default to those recorded for ``jscc`` (:meth:`_defaults`)
    """

    def __init__(self, jscc, method: str = "deepjscc", prior=None, equalizer: str = "mmse", device="cpu", **options):
        from ..jscc.model import DeepJSCC

        self.jscc = jscc if isinstance(jscc, DeepJSCC) else DeepJSCC.from_pretrained(jscc, device=device)
        self.method_name = method
        cls = _METHODS.get(method)
        if getattr(cls, "needs_prior", False):
            prior, options = self._defaults(method, prior, options)
        #: the method's options as resolved (recorded beside results: which A, steps, zeta, INN)
        self.options = {key: v if isinstance(v, (str, int, float, type(None))) else str(v) for key, v in options.items()}
        if getattr(cls, "accepts_k", False):
            options["k"] = self.jscc.config.k  # lets the method check what it was trained for
        self.method = make_method(method, prior=prior, **options)
        if equalizer not in ("mmse", "zf"):
            raise UsageError(f"unknown equalizer {equalizer!r}; choose mmse or zf")
        self.equalizer = equalizer

    def _defaults(self, method, prior, options):
        """What a SING method is not given comes from the DeepJSCC: the prior and INN shipped for its
        data set, size and k, and the settings chosen for it on validation images
        (:attr:`DeepJSCC.sing`, written by ``singlink tune-sing --record``)."""
        from ..jscc.model import find_checkpoint
        from .prior import find_prior

        cfg = self.jscc.config
        if prior is None:
            prior = find_prior(cfg.dataset, cfg.image_size[-1])
        if method == "sing-inn" and options.get("inn") is None:
            options["inn"] = find_checkpoint(cfg.dataset, cfg.image_size[-1], cfg.k, kind="inn")
        chosen = dict(self.jscc.sing)
        if method != "sing-inn":
            chosen.pop("zeta", None)
        for key, value in chosen.items():
            options.setdefault(key, value)
        if options.get("zeta") == "paper":  # recorded or given: the paper's SNR schedule
            options["zeta"] = None
        return prior, options

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

            z_hat, _ = phy.equalize(phy.torch_to_tf(y), phy.torch_to_tf(h.to(y.dtype)), phy.torch_to_tf(snr),
                                    self.equalizer, self.jscc.config.power)
            y, snr = phy.tf_to_torch(z_hat), _faded_snr(snr, h)
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
        """Restore already decoded images (any JSCC decoder's output)."""
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
        return self.method(x_jscc, snr, seed=seed, progress=progress)

    def __call__(self, y, snr_db, h=None, seed=0, progress=False, no_eff=None):
        """decode, then restore; under fading and after an OFDM channel restoration is told each
        image's effective SNR (:meth:`effective_snr_db`), as the decoder is: x_JSCC is then what
        the decoder gives over AWGN at that SNR, the conditions SING-INN was trained in."""
        x_jscc = self.decode(y, snr_db, h, no_eff=no_eff)
        return self.restore(x_jscc, self.effective_snr_db(snr_db, h, no_eff), seed=seed, progress=progress)
