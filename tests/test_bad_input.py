"""Every bad input is one clear line: a non-zero exit naming the option (command line, run in
process through ``singlink.cli.main``) or a documented exception (Python API), raised before any
work starts, and a results store it was pointed at keeps its bytes.

The tables are ordered cheapest first: cases refused while the arguments are read come before
those that need the data, the models or the store's fingerprint.
"""
import hashlib
import io
import os
import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from singlink.cli import main

SHARED_CIFAR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TINY = 'methods = ["deepjscc"]\ndataset = "cifar10"\nrho = ["1/192"]\nsnr = [0]\nimages = 2\nbatch = 2\nexamples = 0\n'

pytestmark = pytest.mark.skipif(not (SHARED_CIFAR / "test").is_dir(), reason="needs the shared CIFAR-10 copy")


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def _make_root(base: Path, name: str, mutate=None) -> Path:
    """A data root whose cifar10/train is the shared one (a link) and whose test split holds the
    first two images of each class (copies), image 0 being airplane/0000.jpg, image 1
    automobile/0000.jpg; ``mutate(test_folder)`` then damages it."""
    root = base / name
    (root / "cifar10" / "test").mkdir(parents=True)
    (root / "cifar10" / "train").symlink_to(SHARED_CIFAR / "train", target_is_directory=True)
    for c in CLASSES:
        (root / "cifar10" / "test" / c).mkdir()
        for f in ("0000.jpg", "0001.jpg"):
            shutil.copy(SHARED_CIFAR / "test" / c / f, root / "cifar10" / "test" / c / f)
    if mutate:
        mutate(root / "cifar10" / "test")
    return root


def _text_as_jpg(test):
    (test / "airplane" / "0000.jpg").write_text("this is not an image\n")


def _truncated(test):
    f = test / "airplane" / "0000.jpg"
    f.write_bytes(f.read_bytes()[:300])


def _mixed_sizes(test):
    from PIL import Image

    Image.new("RGB", (40, 32), (200, 10, 10)).save(test / "automobile" / "0000.jpg", quality=90)


def _other_pixels(test):
    from PIL import Image

    f = test / "airplane" / "0000.jpg"
    Image.open(f).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(f, quality=90)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny stored sweep (DeepJSCC, 2 images, 0 dB), its config, and damaged data roots."""
    base = tmp_path_factory.mktemp("bad-input")
    config = base / "tiny.toml"
    config.write_text(TINY)
    store = base / "store"
    assert main(["sweep", "--config", str(config), "--out", str(store)]) == 0
    roots = {name: _make_root(base, name, mutate) for name, mutate in
             (("same", None), ("text", _text_as_jpg), ("truncated", _truncated), ("mixed", _mixed_sizes),
              ("other", _other_pixels))}
    blocker = base / "a-file"
    blocker.write_text("not a folder")
    garbage = base / "garbage"
    garbage.mkdir()
    (garbage / "results.sqlite").write_bytes(b"this is no database" * 100)
    return {"base": base, "config": config, "store": store, "roots": roots, "blocker": blocker, "garbage": garbage}


# (id, arguments after `sweep --config TINY --out STORE` (STORE, ROOT:<name>, BLOCKER, GARBAGE are
# replaced), the text the message must contain: the option it names)
SWEEP = [
    ("snr-nan-range", ["--snr", "0:nan:1"], "snr"),
    ("snr-inf-range", ["--snr", "0:inf:1"], "snr"),
    ("snr-huge-range", ["--snr", "0:1e12:1"], "--max-rows"),
    ("snr-million-points", ["--snr=-5:5:0.00001"], "--max-rows"),
    ("snr-minus-1e9", ["--snr=-1e9"], "snr"),
    ("snr-nan", ["--snr", "nan"], "snr"),
    ("snr-inf", ["--snr", "inf"], "snr"),
    ("snr-backwards-range", ["--snr", "5:0:1"], "snr"),
    ("snr-zero-step", ["--snr", "0:1:0"], "snr"),
    ("snr-words", ["--snr", "loud"], "snr"),
    ("grid-over-max-rows", ["--snr=-5:5:1", "--max-rows", "10"], "--max-rows"),
    ("max-rows-zero", ["--max-rows", "0"], "--max-rows"),
    ("max-rows-word", ["--max-rows", "lots"], "--max-rows"),
    ("images-zero", ["--images", "0"], "images"),
    ("batch-zero", ["--batch", "0"], "batch"),
    ("threads-zero", ["--threads", "0"], "threads"),
    ("realizations-zero", ["--realizations", "0"], "realizations"),
    ("seed-negative", ["--seed=-1"], "seed"),
    ("zeta-nan", ["--zeta", "nan"], "zeta"),
    ("zeta-negative", ["--zeta=-1"], "zeta"),
    ("operator-pool7", ["--operator", "pool7"], "pool7"),
    ("operator-unknown", ["--operator", "blur"], "operator"),
    ("split-train", ["--split", "train"], "split"),
    ("rho-non-integer-k", ["--rho", "1/100"], "rho"),
    ("rho-above-one", ["--rho", "2"], "rho"),
    ("rho-unshipped", ["--rho", "1/96"], "rho"),
    ("methods-unknown", ["--methods", "teleport"], "methods"),
    ("methods-empty", ["--methods", ","], "methods"),
    ("channel-unknown", ["--channel", "pigeon"], "channel"),
    ("preset-unknown", ["--preset", "nonesuch"], "preset"),
    ("workers-without-ray", ["--workers", "2"], "--workers"),
    ("workers-zero", ["--ray", "local", "--workers", "0"], "--workers"),
    ("ray-nothing-answers", ["--ray", "127.0.0.1:1"], "--ray"),
    ("ray-not-an-address", ["--ray", "somewhere"], "--ray"),
    ("out-in-proc", ["--out", "/proc/x"], "--out"),
    ("out-is-a-file", ["--out", "BLOCKER"], "--out"),
    ("out-under-a-file", ["--out", "BLOCKER/sub"], "--out"),
    ("out-not-a-store", ["--out", "GARBAGE"], "--out"),
    ("data-root-missing", ["--data-root", "/nonexistent/data"], "--data-root"),
    ("images-beyond-split", ["--images", "1000000"], "images"),
    ("text-file-named-jpg", ["--data-root", "ROOT:text"], "--data-root"),
    ("truncated-jpeg", ["--data-root", "ROOT:truncated"], "--data-root"),
    ("mixed-image-sizes", ["--data-root", "ROOT:mixed"], "--data-root"),
    ("resume-other-data", ["--data-root", "ROOT:other"], "--new-run"),
    ("resume-other-steps", ["--steps", "7"], "--new-run"),
]


def _fill(args, env):
    out = []
    for a in args:
        a = a.replace("BLOCKER", str(env["blocker"])).replace("GARBAGE", str(env["garbage"]))
        if a.startswith("ROOT:"):
            a = str(env["roots"][a[5:]])
        out.append(a)
    return out


def _one_line(err, option):
    err = err.strip()
    assert err and "\n" not in err, err
    assert "Traceback" not in err
    assert option in err, err
    return err


@pytest.mark.parametrize("args,option", [c[1:] for c in SWEEP], ids=[c[0] for c in SWEEP])
def test_sweep_refuses_with_one_line_and_leaves_the_store(env, args, option, capsys):
    before = _digests(env["store"])
    garbage = _digests(env["garbage"])
    argv = ["sweep", "--config", str(env["config"]), "--out", str(env["store"]), *_fill(args, env)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    _one_line(captured.err, option)
    assert "tasks to run" not in captured.out
    assert _digests(env["store"]) == before
    assert _digests(env["garbage"]) == garbage
    assert env["blocker"].read_text() == "not a folder"


EVALUATE = [
    ("snr-nan", ["--snr", "nan"], "--snr"),
    ("snr-minus-1e9", ["--snr=-1e9"], "--snr"),
    ("snr-words", ["--snr", "loud"], "--snr"),
    ("batch-zero", ["--batch", "0"], "--batch"),
    ("steps-zero", ["--steps", "0"], "--steps"),
    ("steps-fraction", ["--steps", "2.5"], "--steps"),
    ("images-zero", ["--images", "0"], "--images"),
    ("seed-negative", ["--seed=-1"], "--seed"),
    ("zeta-nan", ["--zeta", "nan"], "--zeta"),
    ("out-in-proc", ["--out", "/proc/x"], "--out"),
    ("methods-unknown", ["--methods", "teleport"], "--methods"),
    ("operators-pool7", ["--operators", "pool7"], "--operators"),
    ("channel-bogus", ["--channel", "bogus"], "--channel"),
    ("rho-non-integer-k", ["--rho", "1/100"], "--rho"),
    ("rho-contradicts-checkpoint", ["--rho", "1/48", "--jscc", "deepjscc-cifar10-rho1_192"], "--rho"),
    ("jscc-missing", ["--jscc", "/nonexistent/jscc"], "--jscc"),
    ("data-root-missing", ["--data-root", "/nonexistent/data"], "--data-root"),
    ("truncated-jpeg", ["--data-root", "ROOT:truncated"], "--data-root"),
]


@pytest.mark.parametrize("args,option", [c[1:] for c in EVALUATE], ids=[c[0] for c in EVALUATE])
def test_evaluate_refuses_with_one_line_before_writing(env, args, option, capsys):
    out = env["base"] / "evaluate-never"
    argv = ["evaluate", "--images", "2", "--methods", "deepjscc", "--out", str(out), *_fill(args, env)]
    assert main(argv) == 2
    _one_line(capsys.readouterr().err, option)
    assert not out.exists()


CALIBRATE = [
    ("operators-pool7", ["--operators", "pool7"], "--operators"),
    ("operators-empty", ["--operators", ","], "--operators"),
    ("images-zero", ["--images", "0"], "--images"),
    ("snr-inf", ["--snr", "inf"], "--snr"),
    ("jscc-missing", ["--jscc", "/nonexistent/jscc"], "no DeepJSCC checkpoint"),
]


@pytest.mark.parametrize("args,option", [c[1:] for c in CALIBRATE], ids=[c[0] for c in CALIBRATE])
def test_calibrate_sigma_y_refuses_with_one_line_and_records_nothing(env, args, option, capsys, tmp_path):
    from singlink.jscc.model import DeepJSCC

    DeepJSCC.from_pretrained("deepjscc-cifar10-rho1_192").save_pretrained(tmp_path / "jscc")
    before = _digests(tmp_path / "jscc")
    argv = ["calibrate-sigma-y", "--jscc", str(tmp_path / "jscc"), "--images", "2", "--record", *args]
    assert main(argv) == 2
    _one_line(capsys.readouterr().err, option)
    assert _digests(tmp_path / "jscc") == before


LINK = [
    ("ebno-nan", ["--ebno", "nan"], "--ebno"),
    ("ebno-inf-range", ["--ebno", "0:inf:1"], "--ebno"),
    ("ebno-huge-range", ["--ebno", "0:1e9:1e-9"], "--ebno"),
    ("ebno-minus-1e9", ["--ebno=-1e9"], "--ebno"),
    ("k-zero", ["--k", "0"], "--k"),
    ("k-not-below-n", ["--k", "600", "--n", "600"], "--k"),
    ("n-odd", ["--k", "500", "--n", "1001"], "--n"),
    ("ldpc-too-long", ["--k", "9000", "--n", "18000"], "--k"),
]


@pytest.mark.parametrize("args,option", [c[1:] for c in LINK], ids=[c[0] for c in LINK])
def test_link_refuses_with_one_line(env, args, option, capsys):
    assert main(["link", "--out", str(env["base"] / "link"), *args]) == 2
    _one_line(capsys.readouterr().err, option)
    assert not (env["base"] / "link" / "results.json").exists()


# --- the Python API ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api():
    import tensorflow as tf
    import torch

    from singlink import phy
    from singlink.receiver import Receiver

    torch.manual_seed(0)
    rx = Receiver("deepjscc-cifar10-rho1_192", "deepjscc")
    z = phy.normalize_power(tf.complex(tf.random.normal([2, 16]), tf.random.normal([2, 16])))
    return {"tf": tf, "torch": torch, "phy": phy, "rx": rx, "z": z, "Receiver": Receiver,
            "y": torch.randn(2, 16, dtype=torch.complex64), "x": torch.rand(2, 3, 32, 32)}


def _planted_pickle(path: Path, target: Path):
    class Plant:
        def __reduce__(self):
            return (os.system, (f"touch {target}",))

    path.write_bytes(pickle.dumps({b"data": Plant(), b"labels": [0]}))


API = [
    ("tf-to-torch-string", lambda a: a["phy"].tf_to_torch(a["tf"].constant(["a"])), "BridgeError", "string"),
    ("torch-to-tf-uint16", lambda a: a["phy"].torch_to_tf(a["torch"].zeros(2, dtype=a["torch"].uint16)),
     "BridgeError", "uint16"),
    ("channel-snr-nan", lambda a: a["phy"].AWGNChannel()(a["z"], float("nan")), "ValueError", "snr_db"),
    ("channel-snr-nan-per-row", lambda a: a["phy"].make_channel("rayleigh-block")(a["z"], a["tf"].constant([0.0, float("nan")])),
     "ValueError", "snr_db"),
    ("channel-snr-minus-inf", lambda a: a["phy"].AWGNChannel()(a["z"], float("-inf")), "ValueError", "snr_db"),
    ("channel-unknown", lambda a: a["phy"].make_channel("bogus"), "ValueError", "bogus"),
    ("receiver-empty-batch", lambda a: a["rx"](a["y"][:0], 0.0), "UsageError", "no images"),
    ("receiver-h-wrong-shape", lambda a: a["rx"].decode(a["y"], 0.0, h=a["torch"].ones(3, 2, dtype=a["torch"].complex64)),
     "UsageError", "h must"),
    ("receiver-wrong-k", lambda a: a["rx"].decode(a["y"][:, :8], 0.0), "UsageError", "k = 16"),
    ("receiver-snr-nan", lambda a: a["rx"].decode(a["y"], float("nan")), "UsageError", "snr_db"),
    ("receiver-snr-list-wrong-length", lambda a: a["rx"].decode(a["y"], [0.0, 1.0, 2.0]), "UsageError", "snr_db"),
    ("restore-uint8", lambda a: a["rx"].restore((a["x"] * 255).to(a["torch"].uint8), 0.0), "UsageError", "uint8"),
    ("restore-beyond-one", lambda a: a["rx"].restore(a["x"] * 255, 0.0), "UsageError", "[0, 1]"),
    ("restore-nan-pixels", lambda a: a["rx"].restore(a["x"] * float("nan"), 0.0), "UsageError", "[0, 1]"),
    ("restore-empty", lambda a: a["rx"].restore(a["x"][:0], 0.0), "UsageError", "no images"),
    ("restore-snr-nan", lambda a: a["rx"].restore(a["x"], float("nan")), "UsageError", "snr_db"),
    ("receiver-operator-pool7", lambda a: a["Receiver"](a["rx"].jscc, "sing-zero", operator="pool7", steps=1),
     "UsageError", "pool7"),
    ("receiver-unknown-method", lambda a: a["Receiver"](a["rx"].jscc, "teleport"), "UsageError", "teleport"),
    ("receiver-missing-checkpoint", lambda a: a["Receiver"]("/nonexistent/jscc"), "UsageError", "no DeepJSCC checkpoint"),
    ("dps-without-symbols", lambda a: a["Receiver"](a["rx"].jscc, "dps", steps=1).restore(a["x"], 0.0), "UsageError",
     "needs them"),
    ("dps-symbols-wrong-k", lambda a: a["Receiver"](a["rx"].jscc, "dps", steps=1)(a["y"][:, :8], 0.0), "UsageError",
     "k = 16"),
    ("dps-zeta-negative", lambda a: a["Receiver"](a["rx"].jscc, "dps", steps=1, zeta=-1), "UsageError", "zeta"),
    ("travel-longer-than-the-chain", lambda a: a["Receiver"](a["rx"].jscc, "sing-zero", steps=4, travel_length=4,
                                                             travel_repeats=1), "UsageError", "travel_length"),
    ("sigma-y-scale-negative", lambda a: a["Receiver"](a["rx"].jscc, "sing-zero", steps=2, sigma_y_scale=-1),
     "UsageError", "sigma_y_scale"),
    ("noise-aware-uncalibrated", lambda a: a["Receiver"](a["rx"].jscc, "sing-zero", steps=2, projection="noise-aware"),
     "UsageError", "calibrate-sigma-y"),
    ("inn-of-another-codec", lambda a: a["Receiver"](a["rx"].jscc, "sing-inn", inn="inn-cifar10-rho1_48", steps=1),
     "UsageError", "the INN was trained for the DeepJSCC deepjscc-cifar10-rho1_48"),
    ("store-not-a-database", lambda a: __import__("singlink.sweep", fromlist=["x"]).ResultStore(a["garbage"]).settings(),
     "UsageError", "not a singlink results store"),
    ("build-config-huge-grid", lambda a: __import__("singlink.sweep", fromlist=["x"]).build_config(
        overrides={"snr": "0:1e12:1"}), "UsageError", "--max-rows"),
]


@pytest.mark.parametrize("call,error,text", [c[1:] for c in API], ids=[c[0] for c in API])
def test_python_api_raises_one_documented_error(api, env, call, error, text):
    with pytest.raises(Exception) as info:
        call({**api, "garbage": env["garbage"]})
    assert type(info.value).__name__ == error or any(c.__name__ == error for c in type(info.value).__mro__)
    message = str(info.value)
    assert text in message and "\n" not in message, message


def test_cifar_archive_cannot_run_code(tmp_path):
    """A planted CIFAR-10 batch that would create a file when unpickled is refused in one line."""
    from singlink.data import CIFAR10

    target = tmp_path / "pwned"
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    _planted_pickle(batches / "test_batch", target)
    with pytest.raises(ValueError) as info:
        CIFAR10(tmp_path, "test")
    assert "refusing to load" in str(info.value) and "system" in str(info.value) and "\n" not in str(info.value)
    assert not target.exists()


def test_cifar_archive_reads_clean_batches(tmp_path):
    from singlink.data import CIFAR10

    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    (batches / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": [3, 7], b"batch_label": b"x",
                                                       b"filenames": [b"a.png", b"b.png"]}))
    ds = CIFAR10(tmp_path, "test")
    assert len(ds) == 2 and ds[1][1] == 7 and ds.layout == "archive"


# --- what must work -------------------------------------------------------------------------------

def test_snr_inf_is_a_noiseless_channel(api):
    tf, torch, phy = api["tf"], api["torch"], api["phy"]
    for name in ("awgn", "rayleigh-block"):
        y, h = phy.make_channel(name)(api["z"], float("inf"))
        assert float(tf.reduce_max(tf.abs(y - h * api["z"]))) == 0.0
    x_hat = api["rx"](phy.tf_to_torch(api["z"]).clone(), float("inf"))
    assert torch.isfinite(x_hat).all() and 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1


def test_readme_import_of_deepjscc():
    from singlink.jscc import DeepJSCC

    assert DeepJSCC.from_pretrained("deepjscc-cifar10-rho1_192").config.k == 16


def test_resume_with_the_same_pixels_elsewhere_and_new_run_keep_runs_apart(env, tmp_path, capsys):
    """Identical images under another root resume (nothing to run); changed pixels with --new-run
    start run 2 of the store, recorded with the reason, and the summary holds only run 2's rows."""
    from singlink.sweep import ResultStore, load_sweep

    store = tmp_path / "store"
    shutil.copytree(env["store"], store)
    base = ["sweep", "--config", str(env["config"]), "--out", str(store)]
    assert main([*base, "--data-root", str(env["roots"]["same"])]) == 0
    assert "0 tasks to run" in capsys.readouterr().out
    assert main([*base, "--data-root", str(env["roots"]["other"]), "--new-run"]) == 0
    assert "(run 2 of this store)" in capsys.readouterr().out
    s = ResultStore(store)
    series = s.series()
    assert [x["series_id"] for x in series] == [1, 2]
    assert series[1]["reason"].startswith("--new-run: data: the pixels of image(s) 0 differ")
    assert len(s.rows(series=1)) == len(s.rows(series=2)) == 2
    assert s.rows(series=1)[0]["psnr"] != s.rows(series=2)[0]["psnr"]  # image 0 changed
    _, rows = load_sweep(store)
    assert {r["run_id"] for r in rows} == {r["run_id"] for r in s.rows(series=2)}
    summary = (store / "summary.csv").read_text().splitlines()
    assert len(summary) == 2 and ",2," in summary[1]
    # and back to the first data: refused now, since the store's latest run is run 2
    before = _digests(store)
    assert main(base) == 2
    assert "--new-run" in capsys.readouterr().err and _digests(store) == before


def test_retrained_weights_are_refused(env, tmp_path, capsys):
    """A prior folder changed in place (as retraining would) is named in the refusal."""
    from singlink.jscc.model import CHECKPOINTS

    prior = tmp_path / "prior"
    shutil.copytree(CHECKPOINTS / "ddpm-cifar10-32-singlink", prior)
    config = tmp_path / "zero.toml"
    config.write_text(TINY.replace('["deepjscc"]', '["sing-zero"]').replace("images = 2", "images = 1")
                      + f'steps = 1\nprior = "{prior}"\n')
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(config), "--out", str(out)]) == 0
    capsys.readouterr()
    cfg_file = prior / "scheduler" / "scheduler_config.json"
    cfg_file.write_text(cfg_file.read_text() + "\n")
    before = _digests(out)
    assert main(["sweep", "--config", str(config), "--out", str(out)]) == 2
    err = _one_line(capsys.readouterr().err, "--new-run")
    assert "weights of" in err and str(prior) in err
    assert _digests(out) == before


def test_ray_address_of_another_service_gives_up_in_bounded_time(env, tmp_path):
    """Something listens at --ray's address but is no Ray cluster: ray.init would retry for ever;
    the sweep gives up after SINGLINK_RAY_CONNECT_S seconds with one line (a subprocess, since
    Ray's abandoned connection thread stays in the process)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # the kernel accepts connections; nothing ever answers
        port = server.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "singlink", "sweep", "--config", str(env["config"]), "--out",
                               str(tmp_path / "never"), "--ray", f"127.0.0.1:{port}"], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "SINGLINK_RAY_CONNECT_S": "3"})
    assert done.returncode == 2
    # the one line singlink writes (C++ start-up logs of TensorFlow and Ray are not singlink's)
    ours = [line for line in done.stderr.splitlines() if line.startswith("singlink")]
    assert len(ours) == 1 and "--ray" in ours[0] and "no Ray cluster" in ours[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "never").exists()


def test_schema_2_store_gets_families_from_its_runs(tmp_path):
    """A store made before the family dimension and LPIPS-VGG: each learned row takes the family its
    run was told (baselines none), lpips_vgg is NULL (not measured), read-only reads change no byte,
    and the first write migrates it for good."""
    import json

    from singlink.sweep import ResultStore
    from singlink.sweep.store import SCHEMA_VERSION

    folder = tmp_path / "v2"
    folder.mkdir()
    db = sqlite3.connect(folder / "results.sqlite")
    db.executescript("""CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
        CREATE TABLE series (series_id INTEGER PRIMARY KEY, started TEXT, settings TEXT, identity TEXT, reason TEXT);
        CREATE TABLE runs (run_id INTEGER PRIMARY KEY, started TEXT, config TEXT, version TEXT, executor TEXT,
            series_id INTEGER DEFAULT 1);
        CREATE TABLE rows (series_id INTEGER DEFAULT 1, method TEXT, rho TEXT, snr_db REAL, channel TEXT,
            image_id INTEGER, realization INTEGER, seed INTEGER, psnr REAL, ms_ssim REAL, lpips REAL,
            channel_uses INTEGER, bits_sent INTEGER, status TEXT, wall_s REAL, run_id INTEGER,
            PRIMARY KEY (series_id, method, rho, snr_db, channel, image_id, realization, seed));
        CREATE TABLE examples (series_id INTEGER DEFAULT 1, method TEXT, rho TEXT, snr_db REAL, channel TEXT,
            image_id INTEGER, seed INTEGER, png BLOB, PRIMARY KEY (series_id, method, rho, snr_db, channel, image_id, seed));
        INSERT INTO meta VALUES ('schema', '2');
        INSERT INTO series VALUES (1, 'then', '{}', NULL, 'new store');""")
    db.execute("INSERT INTO runs VALUES (1, 'then', ?, '{}', 'local', 1)", (json.dumps({"family": "mse"}),))
    db.execute("INSERT INTO runs VALUES (2, 'later', ?, '{}', 'local', 1)", (json.dumps({"family": None}),))
    db.executemany("INSERT INTO rows VALUES (1, ?, '1/192', 0.0, 'awgn', ?, 0, 0, 20.0, 0.9, 0.2, 64, NULL, 'ok', 1.0, ?)",
                   [("deepjscc", 0, 1), ("bpg-capacity", 0, 1), ("sing-zero", 1, 2)])
    db.execute("INSERT INTO examples VALUES (1, 'deepjscc', '1/192', 0.0, 'awgn', 0, 0, x'00')")
    db.commit()
    db.close()
    before = (folder / "results.sqlite").read_bytes()
    store = ResultStore(folder)
    got = {(r["method"], r["image_id"]): r for r in store.rows()}
    assert {k: r["family"] for k, r in got.items()} == {("deepjscc", 0): "mse", ("bpg-capacity", 0): "",
                                                         ("sing-zero", 1): ""}
    assert all(r["lpips_vgg"] is None and r["lpips"] == 0.2 for r in got.values())
    assert [e["family"] for e in store.examples()] == ["mse"]
    assert (folder / "results.sqlite").read_bytes() == before
    store.open_run({}, {}, {}, "local")
    store.close()
    db = sqlite3.connect(folder / "results.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == str(SCHEMA_VERSION)
    assert db.execute("SELECT COUNT(*) FROM rows WHERE family = 'mse'").fetchone()[0] == 1
    db.close()


def test_schema_1_store_is_read_and_migrated(env, tmp_path, capsys):
    """A store written before identities (no series) still resumes, and keeps its rows."""
    from singlink.sweep import ResultStore

    store = tmp_path / "old"
    store.mkdir()
    db = sqlite3.connect(store / "results.sqlite")
    src = sqlite3.connect(env["store"] / "results.sqlite")
    settings = src.execute("SELECT settings FROM series WHERE series_id = 1").fetchone()[0]
    cols = "method, rho, snr_db, channel, image_id, realization, seed, psnr, ms_ssim, lpips, channel_uses, " \
           "bits_sent, status, wall_s, run_id"
    rows = src.execute(f"SELECT {cols} FROM rows").fetchall()
    db.executescript("""CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
        CREATE TABLE runs (run_id INTEGER PRIMARY KEY, started TEXT, config TEXT, version TEXT, executor TEXT);
        CREATE TABLE rows (method TEXT, rho TEXT, snr_db REAL, channel TEXT, image_id INTEGER, realization INTEGER,
            seed INTEGER, psnr REAL, ms_ssim REAL, lpips REAL, channel_uses INTEGER, bits_sent INTEGER, status TEXT,
            wall_s REAL, run_id INTEGER, PRIMARY KEY (method, rho, snr_db, channel, image_id, realization, seed));
        CREATE TABLE examples (method TEXT, rho TEXT, snr_db REAL, channel TEXT, image_id INTEGER, seed INTEGER,
            png BLOB, PRIMARY KEY (method, rho, snr_db, channel, image_id, seed));""")
    db.execute("INSERT INTO meta VALUES ('settings', ?)", (settings,))
    db.execute("INSERT INTO runs VALUES (1, 'then', '{}', '{}', 'local')")
    db.executemany(f"INSERT INTO rows VALUES ({', '.join('?' * 15)})", rows)
    db.commit()
    db.close()
    src.close()
    assert len(ResultStore(store).rows()) == 2
    assert main(["sweep", "--config", str(env["config"]), "--out", str(store)]) == 0
    assert "2 already in" in capsys.readouterr().out
    s = ResultStore(store)
    assert len(s.rows()) == 2 and [x["series_id"] for x in s.series()] == [1]
