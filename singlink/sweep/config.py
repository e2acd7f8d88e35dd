"""What a sweep runs: :class:`SweepConfig`, read from a preset, a YAML or TOML file and
command-line overrides (later wins), and checked in full before anything is written.

Keys (types are checked; every error is one line naming the key and the fix):

==================  ==========================================================================
methods             restoration methods (``deepjscc``, ``sing-zero``, ``sing-inn``, ``commin``, ``dps``)
                    and separation baselines (``bpg-ldpc``, ``bpg-ldpc-best``, ``bpg-capacity``)
rho                 bandwidth ratios k / (3 H W), e.g. ``"1/192"``; DeepJSCC methods need a shipped
                    checkpoint for (dataset, image_size, k) (and an INN for sing-inn), found by what
                    the checkpoints' configs record (:func:`singlink.jscc.model.find_checkpoint`)
snr                 SNRs in dB (Es/N0 per channel use); on the command line also ``START:STOP:STEP``
channel             ``awgn``, ``rayleigh-block`` (or ``rayleigh-fast``), or OFDM over a 3GPP channel:
                    ``ofdm-<model>[:key=value...]``, e.g. ``ofdm-tdl-c:delay_spread=300e-9:csi=ls``
                    (models ``tdl-a``..``tdl-e``, ``cdl-a``..``cdl-e``, ``awgn``; options and
                    defaults: :class:`singlink.phy.ofdm.OFDMSpec`); stored in canonical form
dataset,            the data set (``cifar10``, ``celeba``, ``kodak`` or a folder) and its image side
image_size          (None: the data set's default), as :class:`singlink.data.DatasetSpec` reads them
family              DeepJSCC codec families, a grid dimension of the learned methods: ``perceptual``
                    (MSE + LPIPS) and/or ``mse`` (empty: the canonically named codec of each rho,
                    :func:`singlink.jscc.model.find_checkpoint`); rows record it ("" for the canonical
                    codec and for the separation baselines, which use no codec)
images              the first N images of the data set's ``split``
realizations        channel realisations per image
seed                the run seed; every row's randomness is derived from it and the row's keys
split               ``test`` or ``val``
operator, steps     SING's linear operator A and number of visited prior timesteps (steps also for
                    commin and dps; None: the codec's recorded choice)
zeta                SING-INN guidance step (None: the paper's SNR schedule); commin's and dps's
                    zeta are the codec's recorded choice
batch               images per task (the unit of work, of resume and of a Ray task)
threads             torch threads per task; results are bit-identical for a given value
examples            images per cell kept as reconstructions for the example grid
mean_images         training images averaged into the baselines' failure image
ldpc_modulation,    bpg-ldpc's fixed MCS (default BPSK, 2/3: the DiffJSCC paper's choice)
ldpc_rate
prior               diffusion prior name or folder (None: the shipped prior)
data_root           folder holding the data sets (None: see :mod:`singlink.data`)
out                 output folder: the results store, summary.csv, plots
==================  ==========================================================================
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import UsageError
from ..jscc import FAMILIES

PRESETS = Path(__file__).resolve().parent / "presets"
RECEIVER_METHODS = ("deepjscc", "sing-zero", "sing-inn", "commin", "dps")
PRIOR_METHODS = ("sing-zero", "sing-inn", "commin", "dps")  # restorations sampling the diffusion prior
INN_METHODS = ("sing-inn", "commin")
BASELINE_METHODS = ("bpg-ldpc", "bpg-ldpc-best", "bpg-capacity")
CHANNELS = ("awgn", "rayleigh-block", "rayleigh-fast")

# Settings that change a row's numbers: a store remembers them and refuses to mix rows made
# under other values (the grid itself, methods x rho x SNR x channel x images x realisations x
# seed, may grow between runs of one store).
ROW_SETTINGS = ("split", "operator", "steps", "zeta", "batch", "threads", "mean_images", "ldpc_modulation",
                "ldpc_rate", "prior")


@dataclass(frozen=True)
class SweepConfig:
    methods: tuple = ()
    rho: tuple = ()
    snr: tuple = ()
    channel: tuple = ("awgn",)
    images: int = 16
    realizations: int = 1
    seed: int = 0
    split: str = "test"
    dataset: str = "cifar10"
    image_size: int | None = None
    family: tuple = ()
    operator: str | None = None
    steps: int | None = None
    zeta: float | str | None = None
    batch: int = 16
    threads: int = 1
    examples: int = 3
    mean_images: int = 45000
    ldpc_modulation: str = "bpsk"
    ldpc_rate: str = "2/3"
    prior: str | None = None
    data_root: str | None = None
    out: str = "runs/sweep"
    preset: str | None = field(default=None, compare=False)

    @property
    def settings(self) -> dict:
        """The row-affecting settings (:data:`ROW_SETTINGS`)."""
        return {key: getattr(self, key) for key in ROW_SETTINGS}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def families(self) -> tuple:
        """The family values of the learned methods' rows ("" alone: the canonical codec)."""
        return self.family or ("",)

    def method_families(self) -> list[tuple]:
        """The grid's (method, family) pairs in order: each learned method once per family, each
        separation baseline once (family "")."""
        return [(m, f) for m in self.methods for f in (("",) if m in BASELINE_METHODS else self.families)]

    @property
    def grid_rows(self) -> int:
        """Rows of the full grid: (method, family) x rho x snr x channel x images x realizations."""
        return (len(self.method_families()) * len(self.rho) * len(self.snr) * len(self.channel) * self.images
                * self.realizations)

    @property
    def spec(self):
        """The :class:`~singlink.data.DatasetSpec` of ``dataset``, ``image_size`` and ``data_root``."""
        from ..data import DatasetSpec

        return DatasetSpec(self.dataset, self.image_size, self.data_root)

    @property
    def image_shape(self) -> tuple:
        return (3, self.image_size, self.image_size)

    def k(self, rho: str) -> int:
        """Channel uses per image at bandwidth ratio ``rho``."""
        return int(Fraction(rho) * math.prod(self.image_shape))


KEYS = tuple(f.name for f in dataclasses.fields(SweepConfig) if f.name != "preset")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def _read_file(path: Path, what: str) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise UsageError(f"{what} {path} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise UsageError(f"{what} {path} is not valid {path.suffix[1:].upper()}: {str(e).splitlines()[0]}") from None
    except Exception as e:  # yaml.YAMLError and its subclasses
        if type(e).__module__.startswith("yaml"):
            raise UsageError(f"{what} {path} is not valid YAML: {' '.join(str(e).split())[:200]}") from None
        raise
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path} must be a table of keys (got {type(data).__name__})")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise UsageError(f"unknown key(s) {', '.join(unknown)} in {path}; known keys: {', '.join(KEYS)}")
    return data


def read_preset(name: str) -> dict:
    path = PRESETS / f"{name}.toml"
    if not path.is_file():
        raise UsageError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    return _read_file(path, "preset")


def read_config_file(path) -> dict:
    return _read_file(Path(path), "config file")


# --- value checks: each takes the raw value (file or command line) and returns the typed one ---

def _list(value, key):
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"{key} must be a list, got {type(value).__name__} {value!r}")
    if not value:
        raise UsageError(f"{key} is empty: give at least one value")
    return list(value)


def _choices(value, key, allowed):
    items = _list(value, key)
    bad = [v for v in items if not isinstance(v, str) or v not in allowed]
    if bad:
        raise UsageError(f"unknown {key} {', '.join(map(repr, bad))}; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(items))


def _channels(value, key="channel"):
    """Flat channel names and OFDM specs, the latter in canonical form (:func:`singlink.phy.parse_spec`)."""
    out = []
    for v in _list(value, key):
        if isinstance(v, str) and v.startswith("ofdm-"):
            from ..phy.ofdm_spec import parse_spec

            try:
                out.append(parse_spec(v).name)
            except ValueError as e:
                raise UsageError(f"{key}: {e}") from None
        else:
            out.extend(_choices([v], key, CHANNELS + ("ofdm-<model>[:key=value...]",)))
    return tuple(dict.fromkeys(out))


def _check_ofdm_budget(cfg) -> None:
    """An OFDM channel with span=0 must carry each rho's k in one slot (one line otherwise)."""
    from ..phy import OFDMLinkChannel, parse_spec

    for channel in cfg.channel:
        if channel.startswith("ofdm-") and not parse_spec(channel).span:
            link = OFDMLinkChannel(channel)
            for rho in cfg.rho:
                try:
                    link.slots(cfg.k(rho))
                except ValueError as e:
                    raise UsageError(f"rho {rho}: {e}") from None


def _snr_list(value, key="snr", limit=None):
    out = []
    for v in _list(value, key):
        if isinstance(v, str) and v.count(":") == 2:  # START:STOP:STEP, both ends included
            try:
                start, stop, step = (float(p) for p in v.split(":"))
            except ValueError:
                raise UsageError(f"{key} range must be START:STOP:STEP in dB, got {v!r}") from None
            if not all(map(math.isfinite, (start, stop, step))):
                raise UsageError(f"{key} range {v!r} needs finite START, STOP and STEP in dB")
            if step <= 0 or stop < start:
                raise UsageError(f"{key} range {v!r} needs STEP > 0 and STOP >= START")
            span = (stop - start) / step
            if not math.isfinite(span) or (limit is not None and span + 1 > limit):
                points = f"{math.floor(span + 1e-9) + 1:,}" if span < 1e15 else f"{span:.3g}"
                raise UsageError(f"{key} range {v!r} has {points} points, more than the grid limit of {limit or 0:,} "
                                 f"rows; use a coarser STEP (or raise the limit with --max-rows)")
            count = math.floor(span + 1e-9) + 1
            _snr_bounds(start, key, v), _snr_bounds(stop, key, v)
            out += [start + i * step for i in range(count)]
            continue
        try:
            if isinstance(v, bool):
                raise ValueError
            x = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"{key} values must be numbers in dB, got {v!r}") from None
        _snr_bounds(x, key, v)
        out.append(x)
    return tuple(dict.fromkeys(round(x, 6) for x in out))


SNR_LIMIT_DB = 100.0  # |SNR| beyond this is no channel a sweep can say anything about


def _snr_bounds(x, key, given):
    if not math.isfinite(x) or abs(x) > SNR_LIMIT_DB:
        raise UsageError(f"{key} values must be finite numbers in [-{SNR_LIMIT_DB:g}, {SNR_LIMIT_DB:g}] dB, got "
                         f"{given!r}")


def _rho_list(value, shape, key="rho"):
    out = []
    for v in _list(value, key):
        try:
            if isinstance(v, bool):
                raise ValueError
            r = Fraction(v) if isinstance(v, (str, int)) else Fraction(v).limit_denominator(10000)
        except (TypeError, ValueError, ZeroDivisionError):
            raise UsageError(f"{key} values must be ratios such as '1/192', got {v!r}") from None
        k = r * math.prod(shape)
        if not 0 < r <= 1 or k.denominator != 1:
            raise UsageError(f"{key} {v!r} gives k = {float(k):g} channel uses per {'x'.join(map(str, shape))} image; "
                             f"need a ratio in (0, 1] with integer k, e.g. 1/192")
        out.append(str(r))
    return tuple(dict.fromkeys(out))


def _int(value, key, lo):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"{key} must be an integer, got {type(value).__name__} {value!r}")
    try:
        x = int(value)
    except ValueError:
        raise UsageError(f"{key} must be an integer, got {value!r}") from None
    if x < lo:
        raise UsageError(f"{key} must be >= {lo}, got {x}")
    return x


def _str(value, key, allowed=None, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"{key} must be a non-empty string, got {value!r}")
    if allowed and value not in allowed:
        raise UsageError(f"unknown {key} {value!r}; choose from {', '.join(allowed)}")
    return value


def _zeta(value, key="zeta"):
    """None (not set: the DeepJSCC's chosen zeta), "paper" (the paper's SNR schedule) or a number."""
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in ("none", "paper"):
        return "paper"
    try:
        if isinstance(value, bool):
            raise ValueError
        x = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a number >= 0 or 'paper' for the paper's schedule, got {value!r}") from None
    if not (math.isfinite(x) and x >= 0):
        raise UsageError(f"{key} must be a finite number >= 0, got {value!r}")
    return x


def _checked(raw: dict, max_rows: int | None = None) -> SweepConfig:
    from ..receiver.operators import make_operator
    from ..phy import MODULATIONS

    from ..data import DatasetSpec

    data_root = _str(raw["data_root"], "data_root", optional=True)
    spec = DatasetSpec.parse(raw["dataset"], raw["image_size"], data_root)
    if spec.image_size is None:
        raise UsageError(f"dataset {raw['dataset']!r}: give image_size (--image-size), the side of the square images")
    shape = (3, spec.image_size, spec.image_size)
    c = {
        "methods": _choices(raw["methods"], "methods", RECEIVER_METHODS + BASELINE_METHODS),
        "rho": _rho_list(raw["rho"], shape),
        "snr": _snr_list(raw["snr"], limit=max_rows),
        "channel": _channels(raw["channel"]),
        "images": _int(raw["images"], "images", 1),
        "realizations": _int(raw["realizations"], "realizations", 1),
        "seed": _int(raw["seed"], "seed", 0),
        "split": _str(raw["split"], "split", ("test", "val")),
        "operator": _str(raw["operator"], "operator", optional=True),
        "steps": None if raw["steps"] is None else _int(raw["steps"], "steps", 1),
        "zeta": _zeta(raw["zeta"]),
        "batch": _int(raw["batch"], "batch", 1),
        "threads": _int(raw["threads"], "threads", 1),
        "examples": _int(raw["examples"], "examples", 0),
        "mean_images": _int(raw["mean_images"], "mean_images", 1),
        "ldpc_modulation": _str(raw["ldpc_modulation"], "ldpc_modulation", tuple(MODULATIONS)),
        "ldpc_rate": _rate(raw["ldpc_rate"]),
        "prior": _str(raw["prior"], "prior", optional=True),
        "family": _choices(raw["family"], "family", FAMILIES) if raw["family"] else (),
        "data_root": data_root,
        "dataset": spec.name,
        "image_size": spec.image_size,
        "out": _str(raw["out"], "out"),
        "preset": raw.get("preset"),
    }
    import torch

    if c["operator"] is not None:
        with torch.no_grad():  # raises UsageError naming the known operators, or why it does not fit the images
            make_operator(c["operator"])(torch.zeros(1, *shape))
    cfg = SweepConfig(**c)
    _check_ofdm_budget(cfg)
    if max_rows is not None and cfg.grid_rows > max_rows:
        raise UsageError(f"the grid has {cfg.grid_rows:,} rows (methods x rho x snr x channel x images x realizations), "
                         f"more than the limit of {max_rows:,}; shrink it or raise the limit with --max-rows")
    return cfg


def _rate(value, key="ldpc_rate") -> str:
    try:
        if isinstance(value, bool):
            raise ValueError
        r = Fraction(str(value)).limit_denominator(64)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"{key} must be a code rate such as '2/3', got {value!r}") from None
    if not Fraction(1, 5) < r <= Fraction(9, 10):
        raise UsageError(f"{key} must lie in (1/5, 9/10], got {value!r}")
    return str(r)


MAX_ROWS = 1_000_000  # default bound on a grid's rows (singlink sweep --max-rows)


def build_config(preset: str | None = None, config_file=None, overrides: dict | None = None,
                 max_rows: int | None = MAX_ROWS) -> SweepConfig:
    """The sweep's config: :class:`SweepConfig`'s defaults, then the preset (``default`` when none
    is named), then the config file, then the non-None ``overrides``: a file or the command line
    only needs the keys it changes (except that naming another data set drops the preset's codec
    families, which are codecs of its own data set). A grid of more than ``max_rows`` rows is refused (None: no bound)."""
    raw = {f.name: f.default for f in dataclasses.fields(SweepConfig)}
    name = preset or "default"
    raw |= read_preset(name) | {"preset": name}
    later = read_config_file(config_file) if config_file else {}
    later |= {k: v for k, v in (overrides or {}).items() if v is not None}
    if "family" not in later and later.get("dataset", raw["dataset"]) != raw["dataset"]:
        # a preset's codec families are codecs of its data set: another data set starts from its
        # canonical codecs unless families are named again
        later["family"] = ()
    raw |= later
    cfg = _checked(raw, max_rows)
    check_checkpoints(cfg)
    return cfg


def checkpoint_names(cfg: SweepConfig, rho: str, family: str = "") -> dict:
    """{kind: shipped checkpoint name} that ``cfg``'s methods need at ``rho`` with the codec of
    ``family`` ("": the canonical one), chosen by what the checkpoints record (data set, image
    size, k, family); a missing one is one line of error."""
    from ..jscc.model import find_checkpoint
    from ..receiver.prior import find_prior

    names = {}
    if any(m in RECEIVER_METHODS for m in cfg.methods):
        names["jscc"] = find_checkpoint(cfg.dataset, cfg.image_size, cfg.k(rho), family=family or None)
    if any(m in INN_METHODS for m in cfg.methods):
        from ..receiver.inn import find_inn_for

        names["inn"] = find_inn_for(names["jscc"])
    if any(m in PRIOR_METHODS for m in cfg.methods):
        names["prior"] = cfg.prior or find_prior(cfg.dataset, cfg.image_size)
    return names


def sing_options(cfg: SweepConfig, rho: str, family: str = "") -> dict:
    """The SING settings of the grid at ``rho`` and ``family``: each of operator, steps and zeta as
    the config sets it, else as chosen for that DeepJSCC (``singlink tune-sing --record``), else the method's
    default (what ``Receiver`` resolves the same way from the DeepJSCC). Zeta "paper" is the paper's SNR
    schedule."""
    from ..jscc.model import recorded_sing

    chosen = recorded_sing(checkpoint_names(cfg, rho, family)["jscc"])
    out = {key: getattr(cfg, key) if getattr(cfg, key) is not None else chosen.get(key)
           for key in ("operator", "steps", "zeta")}
    return {key: v for key, v in out.items() if v is not None}


def sing_settings(cfg: SweepConfig) -> dict:
    """{rho: operator, steps, zeta} that SING uses in this grid (:func:`sing_options` over the
    methods' defaults), for the sweep's report, keyed ``"rho family"`` when the grid names
    families, with ``bands`` [{snr_db, operator, steps, zeta}] where the codec records SNR bands;
    empty when the grid runs no SING method."""
    from ..receiver.plugin import SING_DEFAULTS

    from ..jscc.model import recorded_sing_bands

    if not any(m.startswith("sing") for m in cfg.methods):
        return {}
    out = {}
    for rho in cfg.rho:
        for family in cfg.families:
            main = SING_DEFAULTS | sing_options(cfg, rho, family)
            # SNR bands recorded for the codec (tune-sing --record-band), where the config sets nothing
            bands = [{"snr_db": list(span)} | {key: getattr(cfg, key) if getattr(cfg, key) is not None
                                               else block.get(key, main[key]) for key in ("operator", "steps", "zeta")}
                     for span, block in recorded_sing_bands(checkpoint_names(cfg, rho, family)["jscc"])[1:]]
            out[" ".join(filter(None, (rho, family)))] = main | ({"bands": bands} if bands else {})
    return out


def check_checkpoints(cfg: SweepConfig) -> None:
    """Every checkpoint the grid needs is shipped (one line naming the missing ones otherwise)."""
    for rho in cfg.rho:
        try:
            for family in cfg.families:
                checkpoint_names(cfg, rho, family)
        except UsageError as e:
            raise UsageError(f"rho {rho}: {e}; drop rho {rho} or train one (singlink train-jscc / train-inn)") from None
