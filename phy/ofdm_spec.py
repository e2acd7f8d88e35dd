"""OFDM channel names, ``ofdm-<model>[:key=value...]``: parsing, checking and the canonical form
(:class:`OFDMSpec`). Imports no framework, so both phy backends and the sweep's config share it;
the channel itself is :mod:`singlink.phy.ofdm` (sionna-tf) or :mod:`singlink.phy.sionna2.ofdm`
(sionna-torch), whose module docstring explains the options."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

PREFIX = "ofdm-"
OFDM_MODELS = ("awgn",) + tuple(f"tdl-{m}" for m in "abcde") + tuple(f"cdl-{m}" for m in "abcde")
CSI = ("perfect", "ls")
INTERPOLATIONS = ("nn", "lin", "lin_time_avg")
EQUALIZERS = ("lmmse", "zf")


def _float(text: str) -> float:
    """A float, with an optional unit suffix for times (ns, us, ms, s)."""
    t, scale = text.strip().lower(), 1.0
    for suffix, factor in (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if t.endswith(suffix) and t[:-len(suffix)].strip():
            t, scale = t[:-len(suffix)], factor
            break
    return float(format(float(t) * scale, ".12g"))  # 300ns and 300e-9 give the same float


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _ints(text: str) -> tuple:
    return tuple(int(p) for p in text.replace(" ", "").split("+") if p != "")


@dataclass(frozen=True)
class OFDMSpec:
    """An OFDM channel, as parsed from ``ofdm-<model>[:key=value...]``.

    =================  =====================  ===================================================
    key                default                meaning
    =================  =====================  ===================================================
    delay_spread       100e-9                 RMS delay spread in s (``300ns`` also accepted); TDL/CDL
    speed              0                      UE speed in m/s (Doppler); TDL/CDL
    fc                 3.5e9                  carrier frequency in Hz; TDL/CDL
    csi                perfect                ``perfect`` or ``ls`` (pilot-based LS estimation)
    interp             lin                    LS interpolation: ``nn``, ``lin``, ``lin_time_avg``
    eq                 lmmse                  equaliser: ``lmmse`` or ``zf``
    fft                72                     FFT size (subcarriers, guards included)
    scs                30e3                   subcarrier spacing in Hz
    symbols            14                     OFDM symbols per slot
    cp                 5                      cyclic prefix in samples (5/72 of 1/30 kHz ~ 2.3 us)
    pilots             2+11                   OFDM symbols carrying pilots (Kronecker pattern)
    guard              0+0                    nulled guard carriers left+right
    dc                 0                      1: null the DC carrier
    span               1                      0: an image must fit one slot (k <= D)
    =================  =====================  ===================================================
    """

    model: str = "tdl-a"
    delay_spread: float = 100e-9
    speed: float = 0.0
    fc: float = 3.5e9
    csi: str = "perfect"
    interp: str = "lin"
    eq: str = "lmmse"
    fft: int = 72
    scs: float = 30e3
    symbols: int = 14
    cp: int = 5
    pilots: tuple = (2, 11)
    guard: tuple = (0, 0)
    dc: bool = False
    span: bool = True

    def __post_init__(self):
        where = f"OFDM channel {PREFIX}{self.model}"
        if self.model not in OFDM_MODELS:
            raise ValueError(f"unknown OFDM channel model {self.model!r} in {PREFIX}{self.model}; choose one of "
                             f"{', '.join(PREFIX + m for m in OFDM_MODELS)}")
        if not (math.isfinite(self.delay_spread) and self.delay_spread >= 0):
            raise ValueError(f"{where}: delay_spread must be >= 0 seconds (e.g. 300e-9 or 300ns), got {self.delay_spread}")
        if not (math.isfinite(self.speed) and self.speed >= 0):
            raise ValueError(f"{where}: speed must be >= 0 m/s, got {self.speed}")
        if not (math.isfinite(self.fc) and self.fc > 0):
            raise ValueError(f"{where}: fc (carrier frequency) must be > 0 Hz, got {self.fc}")
        if self.csi not in CSI:
            raise ValueError(f"{where}: csi must be one of {', '.join(CSI)}, got {self.csi!r}")
        if self.interp not in INTERPOLATIONS:
            raise ValueError(f"{where}: interp must be one of {', '.join(INTERPOLATIONS)}, got {self.interp!r}")
        if self.eq not in EQUALIZERS:
            raise ValueError(f"{where}: eq must be one of {', '.join(EQUALIZERS)}, got {self.eq!r}")
        if self.fft < 2 or self.symbols < 1 or self.cp < 0 or not self.scs > 0:
            raise ValueError(f"{where}: need fft >= 2, symbols >= 1, cp >= 0 and scs > 0")
        if len(self.guard) != 2 or min(self.guard) < 0 or sum(self.guard) + int(self.dc) >= self.fft:
            raise ValueError(f"{where}: guard must be LEFT+RIGHT (>= 0) leaving subcarriers in the FFT of {self.fft}")
        if not self.pilots or len(set(self.pilots)) != len(self.pilots) or \
                not all(0 <= p < self.symbols for p in self.pilots) or len(self.pilots) >= self.symbols:
            raise ValueError(f"{where}: pilots must be distinct OFDM symbol indices in [0, {self.symbols}) "
                             f"joined by '+', leaving data symbols (e.g. 2+11), got {self.pilots}")
        if self.model == "awgn" and (self.delay_spread, self.speed) != (100e-9, 0.0):
            raise ValueError(f"{where} is a one-tap unit channel: it takes no delay_spread or speed")

    @property
    def name(self) -> str:
        """Canonical spec: the model, then every option that differs from its default, in key order."""
        default = OFDMSpec(model=self.model)
        parts = [PREFIX + self.model]
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                parts.append(f"{f.name}={_format(value)}")
        return ":".join(parts)

    @property
    def draw_name(self) -> str:
        """:attr:`name` without the receiver's options (csi, interp, eq): what determines the channel
        and noise draws. Links differing only in the receiver can share one seed (paired comparison)."""
        return replace(self, csi="perfect", interp="lin", eq="lmmse").name

    def __str__(self):
        return self.name


def _format(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, tuple):
        return "+".join(str(v) for v in value)
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


_PARSERS = {"delay_spread": _float, "speed": _float, "fc": _float, "scs": _float, "csi": str.lower,
            "interp": str.lower, "eq": str.lower, "fft": int, "symbols": int, "cp": int, "pilots": _ints,
            "guard": _ints, "dc": _bool, "span": _bool}


def is_ofdm(spec) -> bool:
    """Whether ``spec`` names an OFDM channel (``ofdm-...``)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse_spec(spec) -> OFDMSpec:
    """``ofdm-<model>[:key=value...]`` (module docstring) -> :class:`OFDMSpec`; ValueError (one line)
    for an unknown model or key, a malformed or out-of-range value."""
    if isinstance(spec, OFDMSpec):
        return spec
    if not is_ofdm(spec):
        raise ValueError(f"an OFDM channel is named ofdm-<model>[:key=value...], got {spec!r}")
    head, *options = spec.strip().split(":")
    kwargs = {"model": head[len(PREFIX):].lower()}
    for opt in options:
        key, eq, value = opt.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not eq or key not in _PARSERS:
            raise ValueError(f"bad option {opt!r} in channel {spec!r}: options are key=value joined by ':', "
                             f"keys {', '.join(_PARSERS)}")
        if key in kwargs:
            raise ValueError(f"option {key} given twice in channel {spec!r}")
        try:
            kwargs[key] = _PARSERS[key](value)
        except ValueError:
            raise ValueError(f"bad value {value!r} for {key} in channel {spec!r}") from None
    return OFDMSpec(**kwargs)
