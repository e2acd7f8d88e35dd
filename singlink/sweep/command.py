"""``singlink sweep``: Monte Carlo sweeps of DeepJSCC and SING against separation baselines,
methods x rho x SNR x channel over N images x R channel realisations, in-process or on Ray.

Every finished task's rows go to the store (``--out``/results.sqlite) as the task completes;
rerunning the same command resumes, skipping the stored rows; ``--report-only`` writes the report
from the rows stored so far without running any. At the end ``--out`` holds
``summary.csv``, ``psnr_vs_snr.png``, ``lpips_vs_snr.png``, ``ms_ssim_vs_snr.png``, ``examples_<rho>_<channel>.png``
and ``sweep.json`` (config, seed, code version, runs of the store).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path

from ..errors import UsageError
from .config import BASELINE_METHODS, MAX_ROWS, SweepConfig, build_config, checkpoint_names, preset_names, sing_settings


def _default_preset() -> dict:
    import tomllib

    from .config import PRESETS

    return tomllib.loads((PRESETS / "default.toml").read_text())


def add_arguments(p):
    d = _default_preset()

    def default(key):  # what a run without --preset, --config and the option uses (help texts say so)
        v = d.get(key, getattr(SweepConfig, key, None))
        return ",".join(str(x) for x in v) if isinstance(v, list) else str(v)

    p.add_argument("--preset", default=None, help=f"the built-in grid to start from: {', '.join(preset_names())} "
                   "(default: default; each option below defaults to the preset's value, the default preset's "
                   "is shown)")
    p.add_argument("--config", default=None, help="YAML or TOML file of sweep keys overriding the preset's (see singlink.sweep.config)")
    p.add_argument("--methods", help="comma list: deepjscc, sing-zero, sing-inn, commin, dps, bpg-ldpc, bpg-ldpc-best, "
                   f"bpg-capacity (default {default('methods')})")
    p.add_argument("--rho", help=f"comma list of bandwidth ratios, e.g. 1/192,1/48 (default {default('rho')})")
    p.add_argument("--snr", help="comma list of SNRs in dB, or START:STOP:STEP (both ends included) "
                   f"(default {default('snr')})")
    p.add_argument("--channel", help="comma list: awgn, rayleigh-block, rayleigh-fast, or OFDM specs such as "
                   f"ofdm-tdl-c:delay_spread=300e-9:speed=3:csi=ls (options joined by ':') (default {default('channel')})")
    p.add_argument("--dataset", help=f"cifar10, celeba, kodak or a folder of images (default {default('dataset')})")
    p.add_argument("--image-size", help="side of the square images (default: the data set's)")
    p.add_argument("--family", help="comma list of DeepJSCC codec families, each a line of the learned methods: "
                   "perceptual (MSE + LPIPS), mse (MSE only) (default "
                   f"{default('family') if d.get('family') else 'none: the canonically named codec of each rho'})")
    p.add_argument("--images", help=f"number of images (the first N of --split) (default {default('images')})")
    p.add_argument("--realizations", help=f"channel realisations per image (default {default('realizations')})")
    p.add_argument("--seed", help=f"run seed (default {default('seed')})")
    p.add_argument("--out", help=f"output folder: results store, summary.csv, plots (default {default('out')})")
    p.add_argument("--steps", help="SING, CommIN, DPS: prior timesteps visited (default: the codec's recorded choice)")
    p.add_argument("--operator", help="SING: the linear operator A, e.g. pool2 (default: the codec's recorded choice)")
    p.add_argument("--zeta", help="SING-INN guidance step, 'paper' for the paper's SNR schedule (default: the "
                   "codec's recorded choice)")
    p.add_argument("--batch", help=f"images per task (default {default('batch')})")
    p.add_argument("--threads", help="torch threads per task; rows are bit-identical for a given value "
                   f"(default {default('threads')})")
    p.add_argument("--split", help=f"data split: test or val (default {default('split')})")
    p.add_argument("--data-root", help="folder holding the data sets (default: see singlink.data)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the tasks on the Ray cluster at ADDRESS (host:port), or 'local' to start one here")
    p.add_argument("--workers", default=None, help="with --ray local: worker processes (default: CPU cores)")
    p.add_argument("--new-run", action="store_true",
                   help="start a new run in the --out store even though settings, data or weights changed; its rows "
                        "are summarised apart from the old ones (default: resume, refusing any change)")
    p.add_argument("--max-rows", default=None, help=f"refuse grids of more rows than this (default {MAX_ROWS})")
    p.add_argument("--report-only", action="store_true",
                   help="write the report (summary.csv, paired.csv, claims.md, plots) from the rows already in the "
                        "--out store and run none: a look at a long sweep while it runs, or after it was stopped")


OVERRIDES = ("methods", "rho", "snr", "channel", "images", "realizations", "seed", "out", "steps", "operator", "zeta",
             "batch", "threads", "split", "data_root", "dataset", "image_size", "family")


def _check_out(out: Path) -> None:
    """--out must be a folder we can create and write (checked before anything is written: the
    probe is a temporary folder made and removed in --out or its nearest existing parent)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; give a folder path")
    probe = out.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {out} is not writable ({probe} is not a folder)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".singlink-probe-", dir=probe))
    except OSError as e:
        raise UsageError(f"--out {out} is not writable (cannot create a folder in {probe}: {e.strerror or e})") from None


def _dataset(cfg: SweepConfig):
    """The split the grid's images come from, exactly as the tasks read it."""
    from .tasks import _context

    try:
        return _context(cfg, None).data
    except (OSError, ValueError) as e:
        raise UsageError(f"--data-root {cfg.data_root or '(default)'}: {' '.join(str(e).split())[:300]}") from None


def _check_data(cfg: SweepConfig) -> int:
    n = len(_dataset(cfg))
    if cfg.images > n:
        raise UsageError(f"images = {cfg.images} but the {cfg.split} split has {n}; lower --images")
    return n


# --- the store's identity: what changes the numbers besides the settings -------------------------
# Config keys that say which data the grid reads (whichever the config has). data_root is not
# among them: the pixels are compared instead, so a copy of the same data elsewhere resumes.
DATA_KEYS = ("dataset", "image_size", "split")
_UNHASHED = (".md", ".png", ".jpg", ".txt")


def _source(data, i: int) -> str:
    """Where item ``i`` of ``data`` comes from (a file path when known), for messages."""
    from torch.utils.data import Subset

    while isinstance(data, Subset):
        data, i = data.dataset, data.indices[i]
    files = getattr(data, "files", None)
    return str(files[i]) if files is not None else f"item {i} of {type(data).__name__}"


def data_identity(cfg: SweepConfig) -> dict:
    """``{"spec": data-related config keys, "root": where the data was found, "images": {id: sha256}}``,
    the sha256 over each grid image's shape and uint8 pixels. Every image is read here, so an
    unreadable or odd-sized one is one line of error before any work starts."""
    import numpy as np
    import torch

    data = _dataset(cfg)
    digests, first = {}, None
    for i in range(cfg.images):
        try:
            image = data[i][0]
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error ...
            raise UsageError(f"cannot read image {i} of the {cfg.split} split ({_source(data, i)}): "
                             f"{' '.join(str(e).split())[:200] or type(e).__name__}; replace the file or point "
                             f"--data-root elsewhere") from None
        shape = tuple(image.shape)
        if first is None:
            first = shape
        elif shape != first:
            raise UsageError(f"image {i} of the {cfg.split} split ({_source(data, i)}) is {'x'.join(map(str, shape))} "
                             f"but image 0 is {'x'.join(map(str, first))}; a grid's images must share one size "
                             f"(fix the data under --data-root)")
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        h = hashlib.sha256(repr(shape).encode())
        h.update(np.ascontiguousarray(pixels).tobytes())
        digests[str(i)] = h.hexdigest()
    config = cfg.to_dict()
    root = getattr(getattr(data, "dataset", data), "root", None) or cfg.data_root
    return {"spec": {k: config[k] for k in DATA_KEYS if k in config}, "root": None if root is None else str(root),
            "images": digests}


def folder_sha256(folder: Path) -> str:
    """sha256 over the relative paths and contents of the files in ``folder`` that hold weights
    or configuration (model cards and sample images are left out)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        if f.suffix.lower() in _UNHASHED or any(part.startswith(".") for part in Path(rel).parts):
            continue
        h.update(rel.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def weights_identity(cfg: SweepConfig) -> dict:
    """``{name: sha256}`` of every DeepJSCC, INN and prior the grid loads (a hub id is recorded as such)."""
    from ..jscc.model import CHECKPOINTS

    names = {}
    for rho in cfg.rho:
        for family in cfg.families:
            names.update({name: name for name in checkpoint_names(cfg, rho, family).values()})
    out = {}
    for label, name in names.items():
        folder = Path(name) if Path(name).is_dir() else CHECKPOINTS / name
        if folder.is_dir():
            out[label] = folder_sha256(folder)
        else:
            from ..receiver.prior import HUB_ID

            if not HUB_ID.match(str(name)):
                raise UsageError(f"no checkpoint or prior {name!r}: not a folder, not shipped in {CHECKPOINTS}, "
                                 f"not a Hugging Face id (owner/name)")
            out[label] = f"hub id {name} (not hashed)"
    return out


def sweep_identity(cfg: SweepConfig) -> dict:
    """The fingerprint a store keeps beside the settings (:mod:`.store`): data, weights, and the
    phy backend with its Sionna version (two backends' draws differ, so their rows never mix)."""
    from .. import phy

    return {"data": data_identity(cfg), "weights": weights_identity(cfg),
            "phy": {"backend": phy.BACKEND, "sionna": phy.SIONNA_VERSION}}


def _mean_image(store, cfg: SweepConfig):
    """The baselines' failure image: the mean of the first ``mean_images`` training images,
    computed once per store and kept in it (so resumed and Ray runs use the very same array)."""
    import numpy as np

    blob = store.get_blob("mean_image")
    if blob is None:
        from ..baselines import training_mean_image

        print(f"computing the mean of the first {cfg.mean_images} (or all) {cfg.spec.tag} training images "
              "(once per store)", flush=True)
        mean = training_mean_image(cfg.spec, cfg.mean_images).numpy().astype(np.float32)
        store.put_blob("mean_image", mean.tobytes())
        return mean
    return np.frombuffer(blob, np.float32).reshape(cfg.image_shape).copy()


def run_local(tasks, cfg, mean):
    """Each task's ``(task, rows, examples)``, computed in this process."""
    from .tasks import execute

    for t in tasks:
        yield t, *execute(t, cfg, mean)


def record(results, tasks, cfg, store, desc: str = "sweep", leave: bool = True) -> None:
    """Store each of ``results`` (from :func:`run_local` or :func:`run_on_ray`) as it arrives,
    behind a progress bar whose ETA weighs the tasks by their cost."""
    from tqdm import tqdm

    total, done = sum(len(t.image_ids) for t in tasks), 0
    with tqdm(total=sum(t.cost(cfg) for t in tasks), desc=desc, dynamic_ncols=True, leave=leave,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]") as bar:
        bar.set_postfix_str(f"0/{total} rows")
        for t, rows, examples in results:
            store.add(rows, examples)
            done += len(rows)
            bar.set_postfix_str(f"{done}/{total} rows", refresh=False)
            bar.update(t.cost(cfg))


RAY_PROBE_S = 5.0  # how long --ray ADDRESS waits for anything to answer there
# and then for a Ray cluster to accept the driver (ray.init would retry for ever)
RAY_CONNECT_S = float(os.environ.get("SINGLINK_RAY_CONNECT_S", 90))


def probe_ray_address(address: str, timeout: float = RAY_PROBE_S) -> None:
    """Refuse (one line, within ``timeout`` seconds) a --ray address where nothing accepts a TCP
    connection: ``ray.init`` itself would retry for minutes, warning every few seconds."""
    if address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--ray takes HOST:PORT of a running Ray cluster (ray start --head) or 'local', got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e) or type(e).__name__)
        raise UsageError(f"--ray {address}: nothing answers there ({why}, waited at most {timeout:g} s); start a "
                         f"cluster with `ray start --head --port={port}` or use --ray local") from None


def connect_ray(address: str, workers: int | None):
    """``ray.init`` for ``--ray``: 'local' starts a cluster of ``workers`` CPUs in this process,
    anything else connects to a running cluster (``ray start --head``), after
    :func:`probe_ray_address` has seen something answer there."""
    if address != "local":
        probe_ray_address(address)
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if address != "local" and "RAY_AUTH_MODE" not in os.environ and token.is_file():
        # Recent Ray: `ray start --head` turns token authentication on by itself when this token
        # file exists, but ray.init(address=...) sends the token only with RAY_AUTH_MODE=token
        # (ray-project/ray#64755); a cluster without authentication accepts it as well. Ray reads
        # the variable when it is imported.
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs the ray package: pip install 'ray>=2.40'") from None
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    try:
        if address == "local":
            # address="local": always a new cluster of our own, even where `ray start` runs one
            ray.init(address="local", num_cpus=workers or os.cpu_count(), **kwargs)
        else:
            _init_within(ray, address, kwargs, RAY_CONNECT_S)
    except UsageError:
        raise
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0][:200]}") from None
    return ray


def _init_within(ray, address: str, kwargs: dict, timeout: float) -> None:
    """``ray.init(address=...)`` given at most ``timeout`` seconds: where something answers at
    the address but no Ray cluster replies (another service on that port), Ray retries for
    ever, so the call runs in a daemon thread and is given up on (one line of error)."""
    import threading

    outcome = {}

    def connect():
        try:
            ray.init(address=address, **kwargs)
            outcome["ok"] = True
        except BaseException as e:  # handed to the caller below
            outcome["error"] = e

    thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise UsageError(f"--ray {address}: something answers there but no Ray cluster accepted this driver within "
                         f"{timeout:g} s; check the address (the head's GCS port, 6379 by default)", exit_now=True)
    if "error" in outcome:
        raise outcome["error"]


def run_on_ray(ray, tasks, cfg, mean):
    """Each task's ``(task, rows, examples)``, computed as Ray tasks, in order of completion."""
    from .tasks import execute

    remote = ray.remote(num_cpus=1, max_retries=2)(execute)
    mean_ref = ray.put(mean)
    pending = {remote.remote(t, cfg, mean_ref): t for t in tasks}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            yield pending.pop(ref), *ray.get(ref)


def write_report(store, cfg: SweepConfig, out: Path, rows: list[dict] | None = None) -> tuple[list[dict], list[Path]]:
    """summary.csv, paired.csv, claims.md (SING's claims, where the grid has them), the plots and
    example grids from the store's rows of ``cfg``'s grid (``rows``, when the caller has read them);
    returns the summary and the paths written."""
    import io

    import numpy as np
    from PIL import Image

    from ..data import load_batch
    from ..provenance import code_version, write_atomic
    from .claims import claims_markdown, sing_claims
    from .report import PAIRED_COLUMNS, csv_text, example_grid, in_grid, metric_plot, paired_differences, summarize, summary_csv
    from .tasks import png_bytes

    if rows is None:
        rows = in_grid(store.rows(), cfg)  # the current run's series only
    summary = summarize(rows, cfg)
    written = {"summary.csv": summary_csv(summary), "psnr_vs_snr.png": metric_plot(summary, cfg, "psnr"),
               "lpips_vs_snr.png": metric_plot(summary, cfg, "lpips"), "ms_ssim_vs_snr.png": metric_plot(summary, cfg, "ms_ssim")}
    if any(s["lpips_vgg_mean"] is not None for s in summary):  # stores made before LPIPS-VGG have none
        written["lpips_vgg_vs_snr.png"] = metric_plot(summary, cfg, "lpips_vgg")
    if len(cfg.method_families()) > 1:
        written["paired.csv"] = csv_text(paired_differences(rows, cfg), PAIRED_COLUMNS)
    claims = claims_markdown(sing_claims(rows, cfg))
    if claims:
        written["claims.md"] = claims
    if cfg.examples:
        ids = list(range(min(cfg.examples, cfg.images)))
        x, _ = load_batch(_dataset(cfg), ids)
        originals = {i: np.asarray(Image.open(io.BytesIO(png_bytes(x[j])))) for j, i in enumerate(ids)}
        examples = store.examples()
        for rho in cfg.rho:
            for ch in cfg.channel:
                grid = example_grid(examples, originals, cfg, rho, ch)
                if grid is not None:
                    written[f"examples_rho{rho.replace('/', '_')}_{ch}.png"] = grid
    written["sweep.json"] = json.dumps({"config": cfg.to_dict(), "seed": cfg.seed, "version": code_version(),
                                        "sing": sing_settings(cfg), "store": str(store.path.name), "rows": len(rows),
                                        "grid_rows": cfg.grid_rows,
                                        "series": store.series_id,
                                        "runs": [{k: r[k] for k in ("run_id", "started", "executor", "series_id")}
                                                 for r in store.runs()]},
                                       indent=1)
    for name, data in written.items():
        write_atomic(out / name, data)
    return summary, [out / name for name in written]


def report_only(cfg: SweepConfig, args) -> int:
    """``--report-only``: the report of the rows of ``cfg``'s grid already in its store, none run.
    The store must have been made with the same settings, data and weights (a report of another
    grid's rows under this one's name would mislead); it is only read."""
    from .report import in_grid, summary_table
    from .store import ResultStore

    clash = [flag for flag, given in (("--ray", args.ray), ("--workers", args.workers), ("--new-run", args.new_run))
             if given]
    if clash:
        raise UsageError(f"--report-only runs nothing, so {' and '.join(clash)} cannot go with it")
    out = Path(cfg.out)
    store = ResultStore(out)
    if not store.exists:
        raise UsageError(f"no results store in {out}: run the sweep there first (without --report-only)")
    _check_data(cfg)
    store.check_settings(cfg.settings, sweep_identity(cfg),
                         advice="--report-only needs the command that made it (same preset, config and options)")
    rows = in_grid(store.rows(), cfg)
    stored = len(rows)
    if stored == 0:
        raise UsageError(f"the store in {out} has no rows of this grid yet; nothing to report")
    summary, paths = write_report(store, cfg, out, rows)
    print(summary_table(summary))
    left = cfg.grid_rows - stored
    print(f"report from {stored} of {cfg.grid_rows} rows" + (f" ({left} still to run: rerun without --report-only "
                                                              f"to finish)" if left else ""))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def run(args):
    from ..provenance import code_version
    from .config import _int
    from .report import summary_table
    from .store import ResultStore
    from .tasks import plan

    # Everything is checked before the first write: a refused command leaves the store's bytes as they were.
    max_rows = MAX_ROWS if args.max_rows is None else _int(args.max_rows, "--max-rows", 1)
    overrides = {key: getattr(args, key) for key in OVERRIDES}
    cfg = build_config(args.preset, args.config, overrides, max_rows=max_rows)
    workers = None
    if args.workers is not None:
        if args.ray != "local":
            raise UsageError("--workers sets the size of a cluster started with --ray local; an existing cluster "
                             "has its own workers, and without --ray the sweep runs in this process")
        workers = _int(args.workers, "--workers", 1)
    if args.report_only:
        return report_only(cfg, args)
    if args.ray is not None and args.ray != "local":
        probe_ray_address(args.ray)
    out = Path(cfg.out)
    _check_out(out)
    store = ResultStore(out)
    if not args.new_run:
        store.check_settings(cfg.settings)  # the cheap part first
    _check_data(cfg)
    sing = sing_settings(cfg)
    for rho in cfg.rho:  # say which checkpoints the grid uses: they are picked by data set, size, k and family
        for family in cfg.families:
            used = checkpoint_names(cfg, rho, family)
            if used:
                s = sing.get(" ".join(filter(None, (rho, family))))
                print(f"sweep: {cfg.spec.tag} rho {rho} (k = {cfg.k(rho)})" + (f", {family} codecs" if family else "")
                      + ": " + ", ".join(f"{kind} {name}" for kind, name in used.items())
                      + (f"; SING {s['operator']}, {s['steps']} steps, zeta {s['zeta']}" if s else "")
                      + "".join(f"; at {b['snr_db'][0]:g}..{b['snr_db'][1]:g} dB {b['operator']}, {b['steps']} steps, "
                                f"zeta {b['zeta']}" for b in (s or {}).get("bands", [])))
    identity = sweep_identity(cfg)
    store.check_settings(cfg.settings, identity, new_run=args.new_run)
    ray = connect_ray(args.ray, workers) if args.ray else None

    out.mkdir(parents=True, exist_ok=True)
    executor = f"ray:{args.ray}" if ray else "local"
    store.open_run(cfg.settings, cfg.to_dict(), code_version(), executor, identity=identity, new_run=args.new_run)
    try:
        mean = _mean_image(store, cfg) if any(m in BASELINE_METHODS for m in cfg.methods) else None
        tasks = plan(cfg, store.done_keys())
        n_rows = cfg.grid_rows
        pending = sum(len(t.image_ids) for t in tasks)
        series = f" (run {store.series_id} of this store)" if store.series_id > 1 else ""
        print(f"sweep: {n_rows} rows in the grid, {n_rows - pending} already in {store.path}{series}, {len(tasks)} "
              f"tasks to run ({executor})", flush=True)
        if tasks:
            record(run_on_ray(ray, tasks, cfg, mean) if ray else run_local(tasks, cfg, mean), tasks, cfg, store)
    finally:
        store.close()
        if ray:
            ray.shutdown()
    summary, paths = write_report(store, cfg, out)
    print(summary_table(summary))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
