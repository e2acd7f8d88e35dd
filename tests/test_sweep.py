"""singlink sweep: resume after a real SIGKILL, bit-identical reruns, Ray on a loopback cluster,
the baselines' bit budget and cliff through the sweep, and one-line config errors that leave a
store untouched."""
import hashlib
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from singlink.cli import main

SINGLINK = [sys.executable, "-m", "singlink"]
TINY = """
methods = ["deepjscc", "sing-zero", "bpg-capacity"]
dataset = "cifar10"
rho = ["1/192"]
snr = [-5, 5]
images = 6
batch = 2
steps = 3
mean_images = 200
examples = 2
"""
GRID_ROWS = 3 * 2 * 6


def _sweep(config, out, *extra):
    done = subprocess.run([*SINGLINK, "sweep", "--config", str(config), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _rows(out, drop=("wall_s", "run_id")):
    """The stored rows without the fields that may differ between runs."""
    from singlink.sweep import ResultStore

    return [{k: v for k, v in r.items() if k not in drop} for r in ResultStore(out).rows()]


def _count(store):
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or being written
        return 0


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny config and an uninterrupted in-process run of it."""
    folder = tmp_path_factory.mktemp("sweep")
    config = folder / "tiny.toml"
    config.write_text(TINY)
    done = _sweep(config, folder / "reference")
    return config, folder / "reference", done.stdout


def test_uninterrupted_run_writes_every_output(tiny):
    config, ref, stdout = tiny
    for name in ("summary.csv", "paired.csv", "claims.md", "psnr_vs_snr.png", "lpips_vs_snr.png", "ms_ssim_vs_snr.png",
                 "lpips_vgg_vs_snr.png", "examples_rho1_192_awgn.png", "sweep.json"):
        assert (ref / name).stat().st_size > 0, name
    header, *lines = (ref / "summary.csv").read_text().splitlines()
    assert header == ("method,family,rho,snr_db,channel,n,psnr_mean,psnr_ci95,ms_ssim_mean,ms_ssim_ci95,lpips_mean,"
                      "lpips_ci95,lpips_vgg_mean,lpips_vgg_ci95")
    assert len(lines) == 3 * 2 and all(",6," in line for line in lines)
    assert "deepjscc" in stdout and "summary.csv" in stdout
    # the checkpoints are picked by (data set, image size, k) and named
    assert ("sweep: cifar10 rho 1/192 (k = 16): jscc deepjscc-cifar10-rho1_192, prior ddpm-cifar10-32-singlink"
            in stdout)
    assert len(_rows(ref)) == GRID_ROWS


def test_paired_differences_match_the_rows(tiny):
    """paired.csv: for each pair of methods, the per-image difference on the same images and draws,
    checked against the stored rows and scipy's paired t interval."""
    import csv

    from scipy import stats

    _, ref, _ = tiny
    paired = list(csv.DictReader((ref / "paired.csv").open()))
    assert {(p["method"], p["versus"]) for p in paired} == {("sing-zero", "deepjscc"), ("bpg-capacity", "deepjscc"),
                                                           ("bpg-capacity", "sing-zero")}
    rows = _rows(ref)
    got = next(p for p in paired if p["method"] == "sing-zero" and p["versus"] == "deepjscc" and float(p["snr_db"]) == 5)
    value = {(r["method"], r["image_id"]): r["lpips"] for r in rows if r["snr_db"] == 5.0}
    d = np.array([value["sing-zero", i] - value["deepjscc", i] for i in range(6)])
    assert int(got["n"]) == 6 and float(got["lpips_diff"]) == pytest.approx(d.mean(), abs=1e-12)
    low, high = stats.ttest_1samp(d, 0).confidence_interval(0.95)
    assert float(got["lpips_diff_ci95"]) == pytest.approx((high - low) / 2, rel=1e-9)


def test_rerun_is_a_no_op_and_recomputation_is_bit_identical(tiny, tmp_path):
    config, ref, _ = tiny
    before = _rows(ref)
    again = _sweep(config, ref)
    assert "0 tasks to run" in again.stdout
    assert _rows(ref) == before  # no duplicates, nothing rewritten
    _sweep(config, tmp_path / "fresh")
    assert _rows(tmp_path / "fresh") == before  # same seed, fresh store: the same bits


def test_sigkill_mid_run_then_rerun_gives_the_same_summary(tiny, tmp_path):
    config, ref, _ = tiny
    out = tmp_path / "killed"
    proc = subprocess.Popen([*SINGLINK, "sweep", "--config", str(config), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while _count(out / "results.sqlite") == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _count(out / "results.sqlite")
    assert 0 < stored < GRID_ROWS, f"kill landed outside the run ({stored} of {GRID_ROWS} rows stored)"
    assert not (out / "summary.csv").exists()
    # a report of the rows stored so far, none run: the store's bytes stay as they were
    before = _digest(out / "results.sqlite")
    partial = _sweep(config, out, "--report-only")
    assert f"report from {stored} of {GRID_ROWS} rows ({GRID_ROWS - stored} still to run" in partial.stdout
    assert _digest(out / "results.sqlite") == before and _count(out / "results.sqlite") == stored
    n = [int(line.split(",")[5]) for line in (out / "summary.csv").read_text().splitlines()[1:]]
    assert sum(n) == stored
    rerun = _sweep(config, out)
    assert f"{stored} already in" in rerun.stdout
    assert (out / "summary.csv").read_text() == (ref / "summary.csv").read_text()
    assert _rows(out) == _rows(ref)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the test's Ray head did not come up on port {port}")


def test_ray_cluster_on_loopback_gives_the_same_summary(tiny, tmp_path):
    config, ref, _ = tiny
    ray = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    # --block ties the cluster to this process, so stopping it stops this cluster only: `ray stop`
    # would also kill every other Ray cluster on the machine (a user's sweep running beside the tests).
    head = subprocess.Popen([ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, head)
        done = _sweep(config, tmp_path / "ray", "--ray", f"127.0.0.1:{port}")
    finally:
        head.terminate()
        try:
            head.wait(timeout=120)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
    assert "ray:127.0.0.1" in done.stdout
    assert (tmp_path / "ray" / "summary.csv").read_text() == (ref / "summary.csv").read_text()
    assert _rows(tmp_path / "ray") == _rows(ref)


def test_baselines_through_the_sweep_respect_the_budget_and_fall_off_the_cliff(tmp_path, capsys):
    """rho 1/6 (k = 512): 16-QAM 2/3 delivers both images at 15 dB and loses them at -5 dB (mean
    image); no row sends more than k * bits/symbol * rate (LDPC) or k log2(1 + SNR) (capacity)."""
    import torch

    from singlink.data import cifar10_splits, load_batch
    from singlink.metrics import psnr
    from singlink.sweep import ResultStore

    config = tmp_path / "cliff.yaml"
    config.write_text("methods: [bpg-ldpc, bpg-capacity]\ndataset: cifar10\nrho: ['1/6']\nsnr: [-5, 15]\nimages: 2\nbatch: 2\n"
                      "mean_images: 200\nldpc_modulation: 16qam\nldpc_rate: '2/3'\nexamples: 0\n")
    assert main(["sweep", "--config", str(config), "--out", str(tmp_path / "cliff")]) == 0
    capsys.readouterr()
    store = ResultStore(tmp_path / "cliff")
    rows = {(r["method"], r["snr_db"], r["image_id"]): r for r in store.rows()}
    assert len(rows) == 2 * 2 * 2
    mean = torch.from_numpy(np.frombuffer(store.get_blob("mean_image"), np.float32).reshape(3, 32, 32).copy())
    x, _ = load_batch(cifar10_splits()["test"], [0, 1])
    mean_psnr = psnr(mean.expand_as(x), x)
    for (method, snr, i), r in rows.items():
        assert r["channel_uses"] == 512
        limit = 512 * 4 * 2 / 3 if method == "bpg-ldpc" else math.floor(512 * math.log2(1 + 10 ** (snr / 10)))
        assert r["bits_sent"] <= limit
        if snr == 15:
            assert r["status"] == "ok" and r["psnr"] > 20 and r["bits_sent"] > 0
        else:  # the cliff: the mean image, exactly
            assert r["status"] in ("block-error", "no-fit")
            assert r["psnr"] == pytest.approx(float(mean_psnr[i]), abs=1e-4)
    assert rows[("bpg-ldpc", 15.0, 0)]["bits_sent"] == 1365  # 2 codewords x 682 (module docstring)


def test_codec_families_are_a_grid_dimension(tmp_path):
    """Two codec families in one grid: each family's rows are those of a grid of that family alone
    (same channel draws, bit-identical), labelled in the summary; the baselines run once."""
    config = tmp_path / "families.toml"
    config.write_text('methods = ["deepjscc", "bpg-capacity"]\ndataset = "celeba"\nrho = ["1/192"]\nsnr = [-5, 5]\n'
                      'images = 2\nbatch = 2\nmean_images = 50\nexamples = 1\n')
    both = _sweep(config, tmp_path / "both", "--family", "perceptual,mse")
    _sweep(config, tmp_path / "mse", "--family", "mse")
    rows = _rows(tmp_path / "both")
    assert sorted({(r["method"], r["family"]) for r in rows}) == [("bpg-capacity", ""), ("deepjscc", "mse"),
                                                                  ("deepjscc", "perceptual")]
    assert len(rows) == 3 * 2 * 2 and all(r["lpips_vgg"] is not None for r in rows)
    key = lambda r: (r["snr_db"], r["image_id"])  # noqa: E731
    mse = sorted((r for r in rows if r["family"] == "mse"), key=key)
    alone = sorted((r for r in _rows(tmp_path / "mse") if r["method"] == "deepjscc"), key=key)
    assert mse == alone
    perceptual = {key(r): r["psnr"] for r in rows if r["family"] == "perceptual"}
    assert all(perceptual[key(r)] != r["psnr"] for r in mse)  # another codec, not a copy
    assert "deepjscc [mse]" in both.stdout and "deepjscc [perceptual]" in both.stdout
    assert "mse codecs: jscc deepjscc-celeba64-rho1_192-mse" in both.stdout


BAD = [
    (["--methods", "deepjscc,teleport"], "unknown methods 'teleport'"),
    (["--rho", "1/96"], "no shipped deepjscc checkpoint for cifar10 at 32x32 with k=32"),
    (["--dataset", "imagenet"], "--dataset 'imagenet' is neither a known data set"),
    (["--dataset", "celeba", "--image-size", "32"], "no shipped deepjscc checkpoint of the perceptual family for celeba at 32x32"),
    (["--dataset", "celeba", "--image-size", "60"], "need a ratio in (0, 1] with integer k"),
    (["--rho", "1/100"], "need a ratio in (0, 1] with integer k"),
    (["--snr", ""], "snr is empty"),
    (["--snr", "-5,loud"], "snr values must be numbers"),
    (["--images", "many"], "images must be an integer"),
    (["--channel", "pigeon"], "unknown channel 'pigeon'"),
    (["--preset", "nonesuch"], "unknown preset 'nonesuch'"),
    (["--steps", "4"], "was made with steps=3 (now 4)"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[b[1].split()[0] + "-" + b[0][0] for b in BAD])
def test_config_errors_are_one_line_and_leave_the_store_untouched(tiny, args, message, capsys):
    config, ref, _ = tiny
    before = {p.name: _digest(p) for p in ref.iterdir()}
    assert main(["sweep", "--config", str(config), "--out", str(ref), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert {p.name: _digest(p) for p in ref.iterdir()} == before


@pytest.mark.parametrize("text,message", [("images = 2.5\n", "images must be an integer"),
                                          ("snr = \"3 dB\"\n", "snr values must be numbers"),
                                          ("methods = []\n", "methods is empty"),
                                          ("speed = 3\n", "unknown key(s) speed"),
                                          ("images = [\n", "is not valid TOML")])
def test_bad_config_files_are_one_line(tmp_path, text, message, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["sweep", "--config", str(bad), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert not (tmp_path / "never").exists()


def test_report_only_refuses_what_it_cannot_report(tiny, tmp_path, capsys):
    config, ref, _ = tiny
    before = {p.name: _digest(p) for p in ref.iterdir()}
    for args, message in ((["--out", str(tmp_path / "empty")], "no results store in"),
                          (["--out", str(ref), "--steps", "4"], "was made with steps=3 (now 4); --report-only needs"),
                          (["--out", str(ref), "--ray", "local"], "so --ray cannot go with it")):
        assert main(["sweep", "--config", str(config), "--report-only", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert {p.name: _digest(p) for p in ref.iterdir()} == before
    assert not (tmp_path / "empty").exists()


def test_unwritable_out_is_one_line(tiny, tmp_path, capsys):
    config, _, _ = tiny
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        assert main(["sweep", "--config", str(config), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "--out" in err and "\n" not in err, err
    assert blocker.read_text() == "not a folder"


def test_every_preset_builds_and_published_points_are_cited():
    from singlink.sweep.config import build_config, preset_names
    from singlink.sweep.published import published_points

    for name in preset_names():
        cfg = build_config(name)
        assert cfg.preset == name and cfg.grid_rows > 0
    label, points = published_points("cifar10", "1/6", "awgn")
    assert "Bourtsoulatze 2019" in label and dict(points)[5] == 27.0
    assert published_points("celeba", "1/6", "awgn") is None
