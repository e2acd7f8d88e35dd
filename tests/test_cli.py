"""The command line: help, the link demo's outputs and reproducibility, one-line errors."""
import json
import subprocess
import sys

import pytest

from singlink.cli import main


def cli(*args):
    return subprocess.run([sys.executable, "-m", "singlink", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_subcommands():
    r = cli("--help")
    assert r.returncode == 0
    for name in ("link", "info"):
        assert name in r.stdout


def test_link_demo_writes_table_results_and_plot_reproducibly(tmp_path, capsys):
    args = ["link", "--ebno", "0,3", "--batch", "50", "--max-batches", "2", "--seed", "11"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    table = capsys.readouterr().out
    assert "LDPC QPSK, rayleigh-block" in table and "uncoded QPSK, awgn" in table
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["seed"] == 11 and res["config"]["batch"] == 50 and "singlink" in res["version"]
    assert len(res["links"]) == 4 and all(len(link["points"]) == 2 for link in res["links"])
    assert (tmp_path / "a" / "ber.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    res_b = json.loads((tmp_path / "b" / "results.json").read_text())
    strip = lambda r: [[{k: v for k, v in p.items() if k != "seconds"} for p in l["points"]] for l in r["links"]]
    assert strip(res) == strip(res_b)


@pytest.mark.parametrize("args,message", [
    (["--ebno", "5:1:1"], "cannot read the grid"),
    (["--ebno", ""], "grid is empty"),
    (["--k", "600", "--n", "500"], "k < n"),
    (["--batch", "0"], "--batch must be >= 1"),
])
def test_link_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = cli("link", *args, "--out", str(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not any(tmp_path.iterdir())


def test_link_unwritable_out_leaves_existing_results(tmp_path):
    existing = tmp_path / "results.json"
    existing.write_text("{}")
    r = cli("link", "--ebno", "0", "--out", str(existing))  # a file where a folder is needed
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "cannot create --out" in r.stderr
    assert existing.read_text() == "{}"


def test_negative_number_lists_are_values():
    from singlink.cli import _join_negative_values

    assert _join_negative_values(["link", "--ebno", "-2,0,2", "--seed", "1"]) == ["link", "--ebno=-2,0,2", "--seed", "1"]
    assert _join_negative_values(["evaluate", "--snr", "-5", "--out", "x"]) == ["evaluate", "--snr=-5", "--out", "x"]
