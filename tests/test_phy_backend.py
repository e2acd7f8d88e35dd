"""Choosing the phy backend (SINGLINK_PHY): in either environment, a wrong choice is one clear line."""
import json
import os
import subprocess
import sys

import pytest

from singlink.phy.backend import BACKENDS, sionna_version


def import_phy(value):
    env = {**os.environ, "SINGLINK_PHY": value}
    return subprocess.run([sys.executable, "-c", "import singlink.phy"], capture_output=True, text=True,
                          timeout=300, env=env)


def last_line(out):
    return out.stderr.strip().splitlines()[-1]


def test_unknown_backend_is_refused_in_one_line():
    out = import_phy("sionna-jax")
    assert out.returncode != 0
    assert last_line(out) == ("singlink.errors.UsageError: no phy backend is called 'sionna-jax' (SINGLINK_PHY, "
                              "or singlink --phy); choose sionna-tf or sionna-torch (default sionna-tf)")


def test_backend_of_the_other_sionna_line_is_refused_in_one_line():
    major = sionna_version().split(".")[0]
    other, fix = (("sionna-torch", "run it in .venv-sionna2 (tools/bootstrap --sionna2)") if major == "1"
                  else ("sionna-tf", "run it in .venv (tools/bootstrap)"))
    out = import_phy(other)
    assert out.returncode != 0
    line = last_line(out)
    assert line.startswith(f"singlink.errors.UsageError: phy backend {other} needs sionna-no-rt") and fix in line


@pytest.mark.parametrize("value", ["", " "])
def test_empty_choice_is_the_default(value, monkeypatch):
    from singlink.phy.backend import selected_backend

    monkeypatch.setenv("SINGLINK_PHY", value)
    assert selected_backend() == BACKENDS[0] == "sionna-tf"


def test_cli_phy_option_names_the_backend_or_refuses_in_one_line(tmp_path):
    """``singlink --phy``: a bad name, or the backend this environment cannot run, is one line and
    exit status 2; the backend this environment runs is recorded by ``singlink info``."""
    major = sionna_version().split(".")[0]
    here, other = ("sionna-tf", "sionna-torch") if major == "1" else ("sionna-torch", "sionna-tf")

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "singlink", *argv], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)

    for name in ("sionna-jax", other):
        out = cli("--phy", name, "info", "--json")
        assert out.returncode == 2 and out.stdout == ""
        assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("singlink info: error: ")
    out = cli("--phy", here, "info", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["phy_backend"] == here and info["sionna"] == sionna_version()
    assert ("tensorflow" in info) == (here == "sionna-tf")


def test_sweep_store_refuses_rows_of_another_backend(tmp_path):
    """One store series holds one phy backend: a resume on the other is refused in one line, and a
    store from before the backend was recorded counts as sionna-tf's (the only backend then)."""
    from singlink.errors import UsageError
    from singlink.sweep.store import ResultStore

    data = {"spec": {"name": "cifar10"}, "images": {"0": "ab"}}
    tf = {"data": data, "weights": {}, "phy": {"backend": "sionna-tf", "sionna": "1.2.2"}}
    torch_ = {"data": data, "weights": {}, "phy": {"backend": "sionna-torch", "sionna": "2.2.0"}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    store = ResultStore(tmp_path / "a")
    store.open_run({"n": 1}, {}, {}, "local", identity=tf)
    store.check_settings({"n": 1}, tf)  # the same backend resumes
    with pytest.raises(UsageError, match=r"phy backend sionna-tf \(now sionna-torch\); phy sionna 1.2.2 \(now 2.2.0\)"):
        store.check_settings({"n": 1}, torch_)
    store.check_settings({"n": 1}, torch_, new_run=True)  # a new series may
    old = ResultStore(tmp_path / "b")
    old.open_run({"n": 1}, {}, {}, "local", identity={"data": data, "weights": {}})
    with pytest.raises(UsageError, match=r"phy backend sionna-tf \(now sionna-torch\)"):
        old.check_settings({"n": 1}, torch_)
    old.check_settings({"n": 1}, tf)
