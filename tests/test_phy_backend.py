"""Choosing the phy backend (SINGLINK_PHY): in either environment, a wrong choice is one clear line."""
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
    assert last_line(out) == ("ValueError: SINGLINK_PHY='sionna-jax' names no phy backend; set it to "
                              "sionna-tf or sionna-torch (default sionna-tf), or unset it")


def test_backend_of_the_other_sionna_line_is_refused_in_one_line():
    major = sionna_version().split(".")[0]
    other, venv = ("sionna-torch", ".venv-sionna2") if major == "1" else ("sionna-tf", ".venv ")
    out = import_phy(other)
    assert out.returncode != 0
    line = last_line(out)
    assert line.startswith(f"ValueError: phy backend {other} needs sionna-no-rt") and venv.strip() in line


@pytest.mark.parametrize("value", ["", " "])
def test_empty_choice_is_the_default(value, monkeypatch):
    from singlink.phy.backend import selected_backend

    monkeypatch.setenv("SINGLINK_PHY", value)
    assert selected_backend() == BACKENDS[0] == "sionna-tf"
