r"""The conditional invertible network (INN) of SING-INN (SING paper, Section IV-C, Fig. 5,
Eqs. 14-15; CommIN's INN with the channel SNR as a conditioning input).

The INN maps an image x (N, C, H, W) in [0, 1] to a coarse part c and a detail part d, and back:

1. **Splitting operator**: one level of the orthonormal 2-D Haar wavelet transform
   (:func:`haar_split`): c = LL band (N, C, H/2, W/2), d = (LH, HL, HH) bands (N, 3C, H/2, W/2).
   Per 2x2 block ``[[a, b], [e, f]]``: LL = (a+b+e+f)/2, LH = (a-b+e-f)/2, HL = (a+b-e-f)/2,
   HH = (a-b-e+f)/2. The transform is orthogonal, so :func:`haar_merge` (its transpose) inverts it
   exactly and norms are kept; a constant image of value v has LL = 2v and zero details.
2. **Lifting**: ``pairs`` alternating prediction/update steps, each conditioned on the SNR,

   .. math:: d \leftarrow d + P_i(c, \mathrm{SNR}), \qquad c \leftarrow c + U_i(d, \mathrm{SNR}),

   inverted by undoing them in reverse order with subtraction, so the INN is invertible by
   construction whatever the weights of the PNets P_i and UNets U_i.

Each PNet/UNet (:class:`LiftingNet`) is a 3x3 input convolution to ``hidden`` channels, ``blocks``
CondBlocks (:class:`CondBlock`, Eqs. 14-15) and a 3x3 output convolution to the target part's
channels. The output convolutions start at zero, so an untrained INN is exactly the Haar split.

**What c is matched to.** Eq. 16 trains c to resemble the DeepJSCC output. With a Haar split, c has
half the resolution of the image, so c is matched to the same Haar LL band of x_JSCC,
:meth:`ConditionalINN.coarse` ``(x_jscc)`` (values in [0, 2] for images in [0, 1]); SING-INN's
Algorithm 2 line 8 then reads :math:`\tilde x_{0,t} = INN^{-1}(\mathrm{coarse}(\hat x_\mathrm{JSCC}), d_t)`.
Since LL is the orthonormal image of 2x2 average pooling (LL = 2 pool2(x)), replacing c by
coarse(x_JSCC) in an untrained INN is exactly SING-Zero's pool2 range-null-space projection.

**CommIN variant.** ``ConditionalINN(fixed_snr=s)`` is CommIN's one-network-per-SNR INN: the
conditioning input is always the constant s, whatever SNR the caller passes (which may be None).

Weights are stored as ``model.safetensors`` + ``config.json`` (:meth:`ConditionalINN.save_pretrained`,
:meth:`ConditionalINN.from_pretrained`, which also takes the name of an INN shipped in
``singlink/checkpoints/``, e.g. ``inn-cifar10-rho1_192``). The config records the DeepJSCC the INN
was trained for (``jscc``: name, k, rho and ``sha256``, the codec's
:attr:`~singlink.jscc.model.DeepJSCC.fingerprint`) and the SNR range it saw (``snr_range``).
:func:`find_inn` finds the shipped INN of a codec by that fingerprint, which stays unambiguous when
two codecs share data set, image size and k; :func:`check_pair` refuses an INN made for another codec.
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

import singlink

from ..errors import UsageError

CHECKPOINTS = Path(singlink.__file__).resolve().parent / "checkpoints"


def haar_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One level of the orthonormal 2-D Haar transform: (N, C, H, W) -> LL (N, C, H/2, W/2) and
    the details LH, HL, HH concatenated band by band (N, 3C, H/2, W/2)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise UsageError(f"the Haar split needs even image sides, got {h}x{w}")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    e, f = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    ll = (a + b + e + f) / 2
    lh = (a - b + e - f) / 2
    hl = (a + b - e - f) / 2
    hh = (a - b - e + f) / 2
    return ll, torch.cat([lh, hl, hh], dim=1)


def haar_merge(ll: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
    """Inverse (= transpose) of :func:`haar_split`."""
    lh, hl, hh = details.chunk(3, dim=1)
    a = (ll + lh + hl + hh) / 2
    b = (ll - lh + hl - hh) / 2
    e = (ll + lh - hl - hh) / 2
    f = (ll - lh - hl + hh) / 2
    top = torch.stack([a, b], dim=-1).flatten(-2)
    bottom = torch.stack([e, f], dim=-1).flatten(-2)
    return torch.stack([top, bottom], dim=-2).flatten(-3, -2)


class CondBlock(nn.Module):
    r"""SING Eqs. 14-15: :math:`\alpha = FC(\mathrm{SNR})`,
    :math:`x_{j+1} = \mathrm{Conv}_2(\mathrm{ReLU}(\mathrm{Conv}_1(x_j))) \odot \alpha + x_j`,
    with :math:`\alpha` one factor per channel. FC is a two-layer MLP of the SNR in dB (scaled by
    1/10 so that the SNRs of interest, about -10..10 dB, enter at order one)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.fc = nn.Sequential(nn.Linear(1, channels), nn.ReLU(), nn.Linear(channels, channels))

    def forward(self, x, snr_db):
        alpha = self.fc(snr_db.view(-1, 1) / 10)
        return self.conv2(torch.relu(self.conv1(x))) * alpha[:, :, None, None] + x


class LiftingNet(nn.Module):
    """A PNet or UNet of Fig. 5: 3x3 conv in -> ``blocks`` CondBlocks -> 3x3 conv out (zero-initialised)."""

    def __init__(self, c_in: int, c_out: int, hidden: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv2d(c_in, hidden, 3, padding=1)
        self.blocks = nn.ModuleList([CondBlock(hidden) for _ in range(blocks)])
        self.out = nn.Conv2d(hidden, c_out, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, snr_db):
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, snr_db)
        return self.out(h)


@dataclass(frozen=True)
class INNConfig:
    """Architecture of a :class:`ConditionalINN` (defaults: SING Section V, 4 PNet/UNet pairs, J = 2)."""

    channels: int = 3
    hidden: int = 32
    pairs: int = 4
    blocks: int = 2
    fixed_snr: float | None = None

    def __post_init__(self):
        for name in ("channels", "hidden", "pairs", "blocks"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"INN {name} must be >= 1, got {getattr(self, name)}")


class ConditionalINN(nn.Module):
    r"""SING's conditional INN (Fig. 5): Haar split then ``pairs`` SNR-conditioned lifting pairs.

    ``forward(x, snr_db) -> (c, d)``; ``inverse(c, d, snr_db) -> x``; ``snr_db`` is a scalar or (N,)
    (ignored when ``fixed_snr`` is set: CommIN's per-SNR INN). Images are in [0, 1].

    ``jscc`` (``{"name", "k", "rho"}``) and ``snr_range`` (``(lo, hi)`` dB) record what the INN was
    trained for; they are stored with the weights and checked by SING-INN.
    """

    def __init__(self, channels: int = 3, hidden: int = 32, pairs: int = 4, blocks: int = 2,
                 fixed_snr: float | None = None, jscc: dict | None = None, snr_range=None):
        super().__init__()
        self.config = INNConfig(channels, hidden, pairs, blocks, None if fixed_snr is None else float(fixed_snr))
        self.jscc = dict(jscc) if jscc else None
        if snr_range is None and fixed_snr is not None:
            snr_range = (fixed_snr, fixed_snr)
        self.snr_range = None if snr_range is None else (float(snr_range[0]), float(snr_range[1]))
        c, d = channels, 3 * channels
        self.pnets = nn.ModuleList([LiftingNet(c, d, hidden, blocks) for _ in range(pairs)])
        self.unets = nn.ModuleList([LiftingNet(d, c, hidden, blocks) for _ in range(pairs)])

    @staticmethod
    def coarse(x: torch.Tensor) -> torch.Tensor:
        """The Haar LL band of ``x``: what the trained c is matched to (for x_JSCC) in Eq. 16."""
        return haar_split(x)[0]

    def _snr(self, snr_db, ref: torch.Tensor) -> torch.Tensor:
        n = ref.shape[0]
        if self.config.fixed_snr is not None:
            return torch.full((n,), self.config.fixed_snr, dtype=ref.dtype, device=ref.device)
        if snr_db is None:
            raise UsageError("the conditional INN needs the channel SNR in dB (a scalar or one value per image)")
        snr = torch.as_tensor(snr_db, device=ref.device).to(ref.dtype)
        snr = snr.expand(n) if snr.ndim == 0 else snr
        if snr.shape != (n,):
            raise UsageError(f"snr_db must be a scalar or shape ({n},), got {tuple(snr.shape)}")
        return snr

    def forward(self, x: torch.Tensor, snr_db=None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.config.channels:
            raise UsageError(f"the INN takes (N, {self.config.channels}, H, W) images, got {tuple(x.shape)}")
        snr = self._snr(snr_db, x)
        c, d = haar_split(x)
        for pnet, unet in zip(self.pnets, self.unets):
            d = d + pnet(c, snr)
            c = c + unet(d, snr)
        return c, d

    def inverse(self, c: torch.Tensor, d: torch.Tensor, snr_db=None) -> torch.Tensor:
        snr = self._snr(snr_db, c)
        for pnet, unet in zip(reversed(self.pnets), reversed(self.unets)):
            c = c - unet(d, snr)
            d = d - pnet(c, snr)
        return haar_merge(c, d)

    # --- storage -------------------------------------------------------------------------
    def save_pretrained(self, folder, extra: dict | None = None) -> None:
        """Write ``config.json`` (architecture, ``jscc``, ``snr_range``, ``extra`` as provenance)
        and ``model.safetensors``."""
        from safetensors.torch import save_file

        from ..provenance import write_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.config) | {"model": "ConditionalINN", "jscc": self.jscc,
                                     "snr_range": list(self.snr_range) if self.snr_range else None}
        if extra:
            cfg["provenance"] = extra
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors.tmp"))
        (folder / "model.safetensors.tmp").replace(folder / "model.safetensors")
        write_atomic(folder / "config.json", json.dumps(cfg, indent=1))

    @classmethod
    def from_pretrained(cls, name_or_path, device="cpu") -> "ConditionalINN":
        """Load from a folder, or by the name of an INN shipped in ``singlink/checkpoints/``."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(name_or_path)
        if not folder.is_dir():
            folder = CHECKPOINTS / str(name_or_path)
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise UsageError(f"no INN checkpoint at {str(name_or_path)!r} (need config.json and model.safetensors); "
                             f"shipped: {', '.join(available()) or 'none'}; train one with `singlink train-inn`")
        try:
            raw = json.loads((folder / "config.json").read_text())
            if raw.get("model") != "ConditionalINN":
                raise KeyError(f"model is {raw.get('model')!r}, not ConditionalINN")
            model = cls(**{k: raw[k] for k in ("channels", "hidden", "pairs", "blocks", "fixed_snr")},
                        jscc=raw.get("jscc"), snr_range=raw.get("snr_range"))
            model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
        except (json.JSONDecodeError, KeyError, TypeError, RuntimeError, SafetensorError, OSError) as e:
            raise UsageError(f"corrupt INN checkpoint in {folder}: {str(e).splitlines()[0][:200]}") from None
        return model.to(device).eval()


def available() -> list[str]:
    """Names of the INNs shipped in ``singlink/checkpoints/``."""
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "config.json").is_file() and p.name.startswith("inn"))


def _record_text(record: dict) -> str:
    name = record.get("name", "an unnamed DeepJSCC")
    return f"{name}" + (f" (sha256 {record['sha256'][:12]})" if record.get("sha256") else "")


def check_pair(inn: "ConditionalINN", jscc) -> None:
    """Refuse (one UsageError line) an INN recorded for another DeepJSCC than ``jscc``: by the codec's
    fingerprint when the INN records one, else by k (INNs trained before fingerprints were kept)."""
    record = inn.jscc or {}
    if record.get("sha256"):
        if record["sha256"] != jscc.fingerprint:
            raise UsageError(f"the INN was trained for the DeepJSCC {_record_text(record)}, not for "
                             f"{jscc.name or 'this one'} (sha256 {jscc.fingerprint[:12]}); load the INN made for "
                             f"this codec (receiver.inn.find_inn) or train one with `singlink train-inn --jscc ...`")
    elif record.get("k") is not None and int(record["k"]) != int(jscc.config.k):
        rho = f" (rho {record['rho']})" if record.get("rho") else ""
        raise UsageError(f"INN trained for k={record['k']}{rho} but the receiver's DeepJSCC sends k={jscc.config.k}; "
                         f"load the INN for that rho")


def find_inn(jscc) -> str:
    """The name of the shipped INN made for the DeepJSCC ``jscc``: the one whose record holds the
    codec's fingerprint (or, for an INN recorded without one, the codec's name). One line when none
    is shipped for it."""
    fingerprint, have = jscc.fingerprint, []
    by_name = []
    for name in available():
        record = json.loads((CHECKPOINTS / name / "config.json").read_text()).get("jscc") or {}
        have.append(f"{name} (for {_record_text(record)})")
        if record.get("sha256") == fingerprint:
            return name
        if not record.get("sha256") and jscc.name and record.get("name") == jscc.name:
            by_name.append(name)
    if len(by_name) == 1:
        return by_name[0]
    raise UsageError(f"no shipped INN was trained for the DeepJSCC {jscc.name or ''} (sha256 {fingerprint[:12]}); "
                     f"shipped: {', '.join(have) or 'none'}; train one with `singlink train-inn --jscc ...`")


def find_inn_for(jscc_name: str) -> str:
    """:func:`find_inn` of the DeepJSCC checkpoint ``jscc_name`` (a shipped name or a folder)."""
    from ..jscc.model import DeepJSCC

    return find_inn(DeepJSCC.from_pretrained(jscc_name))
