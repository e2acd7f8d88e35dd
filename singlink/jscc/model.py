"""DeepJSCC: images to exactly k complex channel symbols and back, SNR-adaptive.

Encoder (per stage: strided 5x5 conv, GDN, PReLU; then residual, attention and AF modules):

    x (N,3,H,W) -> /2 -> /2 -> /2 -> conv to c = 2k / (H/8 * W/8) channels -> flatten ->
    k complex symbols -> per-image power normalisation (SING paper, Eq. 6, phy.normalize_power)

With ``bottleneck="dense"`` the last step is instead one linear map from the whole (channels, H/8,
W/8) feature map to the 2k real values (and back in the decoder), so every symbol may describe the
whole image. A conv bottleneck ties each symbol to one latent position, i.e. to its 8x8 patch: at
very low rho (k = 16 at 32x32 is 2 values per 8x8 patch) the best code is global instead (which
coarse image it is, as a vector quantiser would say), and any k fits.

The decoder mirrors it with IGDN and sub-pixel (PixelShuffle) upsampling and ends in a sigmoid,
so images stay in [0, 1]; its last upsampling is sub-pixel straight to the colour channels. Every AF module sees the SNR in dB (one value per image), so a single
model serves the SNR range it was trained on (DeepWiVe / InverseJSCC key-frame codec).

Weights are stored as ``model.safetensors`` + ``config.json`` (:meth:`DeepJSCC.save_pretrained`,
:meth:`DeepJSCC.from_pretrained`, which also takes the name of a shipped checkpoint).
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from . import BOTTLENECKS, FAMILIES
from .layers import GDN, AFModule, AttentionBlock, ResidualBlock

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


@dataclass(frozen=True)
class DeepJSCCConfig:
    """Architecture of one DeepJSCC model. ``k`` complex symbols per image of ``image_size``;
    ``dataset`` names what it was trained on (:class:`singlink.data.DatasetSpec` name)."""

    k: int = 16
    image_size: tuple = (3, 32, 32)
    channels: int = 48
    power: float = 1.0
    dataset: str = "cifar10"
    bottleneck: str = "conv"

    def __post_init__(self):
        c, h, w = self.image_size
        if h % 8 or w % 8:
            raise UsageError(f"DeepJSCC downsamples by 8: image height and width must be multiples of 8, got {h}x{w}")
        if self.bottleneck not in BOTTLENECKS:
            raise UsageError(f"unknown bottleneck {self.bottleneck!r}; choose one of {', '.join(BOTTLENECKS)}")
        positions = (h // 8) * (w // 8)
        if self.k < 1:
            raise UsageError(f"k must be >= 1 complex symbol, got {self.k}")
        if self.bottleneck == "conv" and (2 * self.k) % positions:
            raise UsageError(f"k={self.k} complex symbols are 2k={2 * self.k} real values, which must fill the "
                             f"{h // 8}x{w // 8} latent grid evenly (a multiple of {positions}); "
                             f"or use the dense bottleneck, which takes any k")

    @property
    def latent_channels(self) -> int:
        c, h, w = self.image_size
        return 2 * self.k // ((h // 8) * (w // 8))

    @property
    def rho(self) -> float:
        return self.k / math.prod(self.image_size)


class Encoder(nn.Module):
    def __init__(self, cfg: DeepJSCCConfig):
        super().__init__()
        c = cfg.channels
        self.down = nn.ModuleList([
            nn.Sequential(nn.Conv2d(cin, c, 5, stride=2, padding=2), GDN(c), nn.PReLU(c))
            for cin in (cfg.image_size[0], c, c)])
        self.res = nn.ModuleList([ResidualBlock(c) for _ in range(2)])
        self.att = AttentionBlock(c)
        self.af = nn.ModuleList([AFModule(c) for _ in range(3)])
        _, h, w = cfg.image_size
        self.out = (nn.Conv2d(c, cfg.latent_channels, 3, padding=1) if cfg.bottleneck == "conv"
                    else nn.Sequential(nn.Flatten(), nn.Linear(c * (h // 8) * (w // 8), 2 * cfg.k)))

    def forward(self, x, snr_db):
        """(N, C, H, W) -> (N, 2k) real latent."""
        x = self.af[0](self.down[0](x), snr_db)
        x = self.af[1](self.res[0](self.down[1](x)), snr_db)
        x = self.att(self.res[1](self.down[2](x)))
        return self.out(self.af[2](x, snr_db)).flatten(1)


class Decoder(nn.Module):
    def __init__(self, cfg: DeepJSCCConfig):
        super().__init__()
        c, (_, h, w) = cfg.channels, cfg.image_size
        if cfg.bottleneck == "conv":
            self.grid = (cfg.latent_channels, h // 8, w // 8)
            self.inp = nn.Conv2d(cfg.latent_channels, c, 3, padding=1)
        else:
            self.grid = None
            self.inp = nn.Sequential(nn.Linear(2 * cfg.k, c * (h // 8) * (w // 8)), nn.Unflatten(1, (c, h // 8, w // 8)))
        self.att = AttentionBlock(c)
        self.res = nn.ModuleList([ResidualBlock(c, inverse=True) for _ in range(2)])
        self.af = nn.ModuleList([AFModule(c) for _ in range(3)])
        self.up = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c, c * 4, 3, padding=1), nn.PixelShuffle(2), GDN(c, inverse=True), nn.PReLU(c))
            for _ in range(2)])
        # the last stage is sub-pixel straight to RGB: no full-resolution feature maps, which
        # would dominate the cost of a 32x32 decoder
        self.out = nn.Sequential(nn.Conv2d(c, cfg.image_size[0] * 4, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, y, snr_db):
        """(N, 2k) real latent -> (N, C, H, W) in [0, 1]."""
        x = self.af[0](self.att(self.inp(y if self.grid is None else y.unflatten(1, self.grid))), snr_db)
        x = self.af[1](self.up[0](self.res[0](x)), snr_db)
        x = self.af[2](self.up[1](self.res[1](x)), snr_db)
        return torch.sigmoid(self.out(x))


def _snr_column(snr_db, n, device):
    if snr_db is None:
        raise UsageError("DeepJSCC needs the channel SNR in dB (a scalar or one value per image)")
    snr = torch.as_tensor(snr_db, dtype=torch.float32, device=device)
    if snr.ndim == 0:
        snr = snr.expand(n)
    if snr.shape != (n,):
        raise UsageError(f"snr_db must be a scalar or shape ({n},), got shape {tuple(snr.shape)}")
    return snr


class DeepJSCC(nn.Module):
    r"""SNR-adaptive DeepJSCC codec.

    ``encode(x, snr_db)``: x (N, C, H, W) float in [0, 1] -> z (N, k) complex64 with
    :math:`\frac1k\|z\|^2 = P` per image. ``decode(z_hat, snr_db)``: (N, k) complex -> (N, C, H, W)
    in [0, 1]. ``snr_db`` is a scalar or (N,).
    """

    #: SING's settings chosen for this codec on validation images ({operator, steps, zeta}; zeta
    #: "paper" for the paper's SNR schedule), read from ``config.json``'s ``sing`` block, which
    #: ``singlink tune-sing --record`` writes; empty when none were chosen.
    sing: dict = {}
    #: every recorded choice with the SNR range it was chosen at: ``[(span, block)]``, the ``sing``
    #: block first (span (lo, hi) dB from its ``chosen_by.snr_db``, None when it records none), then
    #: each of ``sing.bands`` (``singlink tune-sing --record-band``), in order of SNR. The receiver
    #: restores an image with the block whose span is nearest the image's SNR
    #: (:func:`singlink.receiver.plugin.nearest_band`).
    sing_bands: list = []
    #: sigma_y of SING's observation A x_JSCC per operator and SNR (``singlink calibrate-sigma-y
    #: --record`` writes it into config.json; :mod:`singlink.receiver.noise` reads it)
    observation_noise: dict = {}
    #: the shipped name or folder it was loaded from (:meth:`from_pretrained`); None when built here
    name: str | None = None

    def __init__(self, config: DeepJSCCConfig = DeepJSCCConfig()):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights as shipped (float16, by parameter name): the identity an INN or a
        calibration records for the codec it was made for. Float16 because the shipped weights are
        float16, so a float32 run folder and its export have the same fingerprint."""
        return weights_fingerprint(self)

    def _check_images(self, x):
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise UsageError(f"images must be a (N, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
        if tuple(x.shape[1:]) != tuple(self.config.image_size):
            raise UsageError(f"this DeepJSCC model was built for images of {tuple(self.config.image_size)}, "
                             f"got {tuple(x.shape[1:])}; resize the images or load a matching checkpoint")
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).sum().item()
            raise UsageError(f"images contain {bad} NaN or Inf values; clean the input")

    def encode(self, x, snr_db):
        from ..phy.power import normalize_power

        self._check_images(x)
        snr = _snr_column(snr_db, x.shape[0], x.device)
        latent = self.encoder(x, snr)
        z = torch.view_as_complex(latent.reshape(x.shape[0], self.config.k, 2).float().contiguous())
        return normalize_power(z, self.config.power)

    def decode(self, z_hat, snr_db):
        if not torch.is_complex(z_hat) or z_hat.ndim != 2 or z_hat.shape[1] != self.config.k:
            raise UsageError(f"decode takes (N, {self.config.k}) complex symbols, got "
                             f"{tuple(z_hat.shape)} {z_hat.dtype}")
        snr = _snr_column(snr_db, z_hat.shape[0], z_hat.device)
        return self.decoder(torch.view_as_real(z_hat.to(torch.complex64)).reshape(z_hat.shape[0], -1), snr)

    @torch.no_grad()
    def widen_from(self, narrow: "DeepJSCC") -> None:
        r"""Load a codec of fewer ``channels`` (otherwise the same architecture) into this wider one
        so that both compute the same function (Net2WiderNet-style growth, Chen et al. 2016):
        trained weights fill the leading slice of every tensor, the new units keep this model's
        fresh random initialisation, and every weight from a new unit into an old one is zero, so
        the new features influence nothing until training moves those weights (their gradients are
        not zero, since the new features are). Wider features then train from the narrow codec's
        quality instead of from scratch.

        Written here because no library grows a trained network; the only layout it relies on is
        that channels lead every tensor (PixelShuffle groups and the dense bottleneck's flatten are
        channel-major) and that each AF module's input is ``[features; SNR]``, its SNR column last.
        """
        old, new = narrow.config, self.config
        differ = [f"{f} {getattr(old, f)} vs {getattr(new, f)}" for f in ("k", "image_size", "bottleneck", "dataset", "power")
                  if getattr(old, f) != getattr(new, f)]
        if differ or old.channels > new.channels:
            raise UsageError(f"a codec of {old.channels} channels cannot grow into one of {new.channels}"
                             + (f" ({', '.join(differ)})" if differ else "")
                             + "; widening keeps k, image size, bottleneck and data set and adds channels")
        afs = {f"{part}.af.{i}.fc.0.weight" for part in ("encoder", "decoder") for i in range(3)}
        target = self.state_dict()
        for name, w in narrow.state_dict().items():
            t = target[name]
            if name in afs:  # move the SNR column from index c_old to index c_new
                w = torch.cat([w[:, :-1], t.new_zeros(w.shape[0], t.shape[1] - w.shape[1]), w[:, -1:]], dim=1)
            if t.ndim >= 2:  # (out, in, ...): conv and linear weights, GDN's gamma (new channels
                t[: w.shape[0], w.shape[1]:] = 0  # do not normalise old ones): new inputs into old outputs
            t[tuple(slice(0, n) for n in w.shape)] = w
        self.load_state_dict(target)

    # --- storage -------------------------------------------------------------------------
    def save_pretrained(self, folder, extra: dict | None = None, fp16: bool = False):
        """Write ``config.json`` (architecture + ``extra`` provenance) and ``model.safetensors``;
        ``fp16`` stores the weights in float16 (half the size; :meth:`from_pretrained` casts them
        back to float32)."""
        from safetensors.torch import save_file

        from ..provenance import write_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.config) | {"model": "DeepJSCC"} | ({"provenance": extra} if extra else {})
        state = {k: (v.half() if fp16 and v.is_floating_point() else v).detach().contiguous().cpu()
                 for k, v in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors.tmp"))
        (folder / "model.safetensors.tmp").replace(folder / "model.safetensors")
        write_atomic(folder / "config.json", json.dumps(cfg, indent=1))

    @classmethod
    def from_pretrained(cls, name_or_path, device="cpu") -> "DeepJSCC":
        """Load from a folder, or by the name of a shipped checkpoint (see :func:`available`)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(name_or_path)
        if not folder.is_dir():
            folder = CHECKPOINTS / str(name_or_path)
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise UsageError(f"no DeepJSCC checkpoint at {name_or_path!r} (need config.json and model.safetensors); "
                             f"shipped: {', '.join(available()) or 'none'}")
        try:
            raw = json.loads((folder / "config.json").read_text())
            cfg = DeepJSCCConfig(k=raw["k"], image_size=tuple(raw["image_size"]), channels=raw["channels"],
                                 power=raw.get("power", 1.0), dataset=raw.get("dataset", "cifar10"),
                                 bottleneck=raw.get("bottleneck", "conv"))
            model = cls(cfg)
            model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
            model.sing = _sing_block(raw.get("sing", {}))
            model.sing_bands = _sing_bands(raw.get("sing", {}))
            model.observation_noise = raw.get("observation_noise", {})
            model.name = str(name_or_path)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError, OSError) as e:
            raise UsageError(f"corrupt DeepJSCC checkpoint in {folder}: {str(e).splitlines()[0][:200]}") from None
        return model.to(device).eval()


def _sing_block(block: dict, top: bool = True) -> dict:
    """The checked ``sing`` block of a DeepJSCC's config.json (a bad one is a corrupt checkpoint):
    operator, steps and zeta for sing-zero and sing-inn, and ``methods`` ({method: settings}) for any
    restoration method, each of operator, steps, zeta, projection, sigma_y_scale, travel_length,
    travel_repeats and start."""
    out = {}
    if "operator" in block:
        out["operator"] = str(block["operator"])
    for key in ("steps", "travel_length", "travel_repeats"):
        if key in block:
            out[key] = int(block[key])
            if out[key] < (1 if key == "steps" else 0):
                raise ValueError(f"sing.{key} must be >= {1 if key == 'steps' else 0}, got {out[key]}")
    if "zeta" in block:
        zeta = block["zeta"]
        if zeta != "paper" and not (isinstance(zeta, (int, float)) and math.isfinite(zeta) and zeta >= 0):
            raise ValueError(f"sing.zeta must be a number >= 0 or 'paper', got {zeta!r}")
        out["zeta"] = zeta
    if "projection" in block:
        out["projection"] = str(block["projection"])
    if "start" in block:
        out["start"] = float(block["start"])
        if not 0 < out["start"] <= 1:
            raise ValueError(f"sing.start must lie in (0, 1], got {block['start']!r}")
    if "sigma_y_scale" in block:
        out["sigma_y_scale"] = float(block["sigma_y_scale"])
        if not (math.isfinite(out["sigma_y_scale"]) and out["sigma_y_scale"] >= 0):
            raise ValueError(f"sing.sigma_y_scale must be a number >= 0, got {block['sigma_y_scale']!r}")
    if top and "methods" in block:
        out["methods"] = {str(name): _sing_block(sub, top=False) for name, sub in dict(block["methods"]).items()}
    return out


def _span(block: dict, where: str):
    """(lo, hi) dB of the SNRs a choice was made at (its ``chosen_by.snr_db``, or a band's
    ``snr_db``), None when the block records none."""
    snrs = block.get("snr_db", dict(block.get("chosen_by") or {}).get("snr_db"))
    if snrs is None:
        return None
    values = [float(v) for v in snrs]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}.snr_db must be finite SNRs in dB, got {snrs!r}")
    return (min(values), max(values))


def _sing_bands(block: dict) -> list:
    """``[(span, block)]`` of a ``sing`` block (see :attr:`DeepJSCC.sing_bands`): the block itself,
    then each of its ``bands``, a block of its own with the SNRs ``snr_db`` [lo, hi] it was chosen at."""
    bands = []
    for i, band in enumerate(block.get("bands", [])):
        span = _span(band, f"sing.bands[{i}]")
        if span is None:
            raise ValueError(f"sing.bands[{i}] has no snr_db: the SNR range it was chosen at")
        bands.append((span, _sing_block(band)))
    return [(_span(block, "sing.chosen_by"), _sing_block(block))] + sorted(bands, key=lambda b: b[0])


def recorded_sing(name_or_path) -> dict:
    """The ``sing`` settings recorded in a DeepJSCC checkpoint's config.json (see :attr:`DeepJSCC.sing`)."""
    return _read_sing(name_or_path, _sing_block)


def recorded_sing_bands(name_or_path) -> list:
    """The recorded choices with their SNR spans (see :attr:`DeepJSCC.sing_bands`)."""
    return _read_sing(name_or_path, _sing_bands)


def _read_sing(name_or_path, parse):
    folder = Path(name_or_path)
    if not folder.is_dir():
        folder = CHECKPOINTS / str(name_or_path)
    try:
        return parse(json.loads((folder / "config.json").read_text()).get("sing", {}))
    except (OSError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise UsageError(f"cannot read the DeepJSCC checkpoint {name_or_path!r}: {str(e).splitlines()[0][:200]}") from None


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over a module's state dict, each tensor by name as float16 bytes (see
    :attr:`DeepJSCC.fingerprint`)."""
    import hashlib

    h = hashlib.sha256()
    for key, v in sorted(module.state_dict().items()):
        v = v.detach().cpu()
        v = v.half() if v.is_floating_point() else v
        h.update(key.encode() + b"\0" + str(tuple(v.shape)).encode() + v.contiguous().numpy().tobytes())
    return h.hexdigest()


def codec_family(raw: dict) -> str:
    """The family (:data:`FAMILIES`) a DeepJSCC's config.json records through its training settings."""
    train = (raw.get("provenance") or {}).get("config") or {}
    return "perceptual" if float(train.get("lpips_weight") or 0) > 0 else "mse"


def canonical_name(dataset: str, image_size: int, k: int, kind: str = "deepjscc") -> str:
    """``deepjscc-celeba64-rho1_192``: the name the project ships a checkpoint of (dataset, size, k)
    under; the one :func:`find_checkpoint` returns when several match and no family is asked for."""
    from fractions import Fraction

    rho = Fraction(k, 3 * image_size * image_size)
    return f"{kind}-{dataset}{image_size}-rho{rho.numerator}_{rho.denominator}"


def find_checkpoint(dataset: str, image_size: int, k: int, kind: str = "deepjscc", family: str | None = None) -> str:
    """The shipped checkpoint of ``kind`` trained on ``dataset`` at ``image_size`` with ``k`` symbols
    per image: the sweep and the command line pick checkpoints this way, by what their configs
    record rather than by name. For DeepJSCC, ``family`` (:data:`FAMILIES`) picks among codecs of
    one (dataset, size, k); without it the canonically named one (:func:`canonical_name`), the
    project's default. INNs are found by the codec they were made for (:func:`find_inn`). One line
    when none matches."""
    if family is not None and family not in FAMILIES:
        raise UsageError(f"unknown codec family {family!r}; choose one of {', '.join(FAMILIES)}")
    have, match = [], []
    for p in sorted(CHECKPOINTS.iterdir()) if CHECKPOINTS.is_dir() else []:
        if not (p.name.startswith(kind) and (p / "config.json").is_file()):
            continue
        raw = json.loads((p / "config.json").read_text())
        fam = codec_family(raw) if kind == "deepjscc" else None
        if kind != "deepjscc":
            raw = raw.get("jscc", {}) | raw
        size = raw.get("image_size", [3, 32, 32])
        size = size[-1] if isinstance(size, list) else size
        have.append(f"{p.name} ({raw.get('dataset', 'cifar10')}, {size}x{size}, k={raw.get('k')}"
                    + (f", {fam}" if fam else "") + ")")
        if (raw.get("dataset", "cifar10") == dataset and int(size) == int(image_size) and raw.get("k") == k
                and (family is None or fam == family)):
            match.append(p.name)
    if len(match) > 1:
        canonical = canonical_name(dataset, image_size, k, kind)
        match = [canonical] if canonical in match else match
    if len(match) == 1:
        return match[0]
    what = f"{kind} checkpoint" + (f" of the {family} family" if family else "")
    if match:
        raise UsageError(f"several shipped {what}s fit {dataset} at {image_size}x{image_size} with k={k}: "
                         f"{', '.join(match)}; name one")
    raise UsageError(f"no shipped {what} for {dataset} at {image_size}x{image_size} with k={k} symbols "
                     f"per image; shipped: {', '.join(have) or 'none'} (train one, or pass a checkpoint folder)")


def available() -> list[str]:
    """Names of the DeepJSCC checkpoints shipped in the package."""
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "config.json").is_file() and p.name.startswith("deepjscc"))
