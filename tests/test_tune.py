"""SING's settings chosen on validation images (``singlink tune-sing``) and recorded in the
DeepJSCC checkpoint: the rule, the record, and the defaults Receiver, evaluate and sweep take from it."""
import json

import pytest
import torch

from singlink.errors import UsageError
from singlink.jscc.model import DeepJSCC, DeepJSCCConfig, recorded_sing
from singlink.receiver import Receiver
from singlink.receiver.inn import ConditionalINN
from singlink.receiver.prior import DiffusionPrior
from singlink.tune import choose


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An untrained rho 1/48 DeepJSCC at 32x32 (k = 64), a tiny prior and an INN recorded for it."""
    root = tmp_path_factory.mktemp("tune")
    torch.manual_seed(0)
    DeepJSCC(DeepJSCCConfig(k=64, channels=8)).save_pretrained(root / "jscc")
    DiffusionPrior.from_preset("tiny").save_pretrained(root / "prior")
    ConditionalINN(hidden=8, pairs=1, blocks=1, jscc={"name": "jscc", "k": 64, "rho": "1/48"},
                   snr_range=(-5, 5)).save_pretrained(root / "inn")
    return root


def test_rule_lowest_lpips_within_the_psnr_budget_at_every_snr():
    ref = {-5: 20.0, 1: 24.0}
    table = {"a": {-5: (19.5, 0.30), 1: (23.5, 0.30)},   # within 1 dB everywhere
             "b": {-5: (19.2, 0.20), 1: (22.5, 0.10)},   # lowest LPIPS, but 1.5 dB down at 1 dB
             "c": {-5: (19.9, 0.25), 1: (23.9, 0.26)}}   # within, lower LPIPS than a
    assert choose(table, ref, 1.0) == ("c", True)
    assert choose(table, ref, 2.0) == ("b", True)
    # nothing within budget: the least worst-SNR loss, flagged
    assert choose(table, ref, 0.05) == ("c", False)


def _with_sing(src, dst, block):
    import shutil

    shutil.copytree(src, dst)
    raw = json.loads((dst / "config.json").read_text()) | {"sing": block}
    (dst / "config.json").write_text(json.dumps(raw))
    return dst


def test_receiver_takes_recorded_settings_and_explicit_options_win(models, tmp_path):
    folder = _with_sing(models / "jscc", tmp_path / "jscc", {"operator": "pool2", "steps": 7, "zeta": 0.4,
                                                            "chosen_by": {"command": "x"}})
    assert recorded_sing(folder) == {"operator": "pool2", "steps": 7, "zeta": 0.4}
    zero = Receiver(folder, "sing-zero", prior=models / "prior")
    assert zero.method.sampler.steps == 7 and zero.method.sampler.operator.name == "pool2"
    inn = Receiver(folder, "sing-inn", prior=models / "prior", inn=models / "inn")
    assert inn.method.sampler.zeta == 0.4 and inn.method.sampler.sampler.steps == 7
    assert Receiver(folder, "sing-zero", prior=models / "prior", steps=3).method.sampler.steps == 3
    paper = _with_sing(models / "jscc", tmp_path / "paper", {"zeta": "paper"})
    assert Receiver(paper, "sing-inn", prior=models / "prior", inn=models / "inn").method.sampler.zeta is None
    # nothing recorded: the methods' own defaults
    assert Receiver(models / "jscc", "sing-zero", prior=models / "prior").method.sampler.steps == 100


@pytest.mark.parametrize("block, words", [({"steps": 0}, "sing.steps"), ({"zeta": -1}, "sing.zeta"),
                                          ({"zeta": "often"}, "sing.zeta")])
def test_a_bad_recorded_block_is_a_corrupt_checkpoint(models, tmp_path, block, words):
    folder = _with_sing(models / "jscc", tmp_path / "jscc", block)
    with pytest.raises(UsageError, match=f"corrupt DeepJSCC checkpoint.*{words}"):
        DeepJSCC.from_pretrained(folder)


def test_tune_sing_scans_on_validation_images_and_records_its_choice(models, tmp_path, one_thread):
    from singlink.cli import main

    folder = _with_sing(models / "jscc", tmp_path / "jscc", {})
    weights = (folder / "model.safetensors").read_bytes()
    out = tmp_path / "scan"
    assert main(["tune-sing", "--jscc", str(folder), "--prior", str(models / "prior"), "--inn", str(models / "inn"),
                 "--images", "2", "--snr", "-1,3", "--operators", "pool2,pool4", "--steps", "2,3",
                 "--zetas", "paper,0.3", "--record", "--out", str(out)]) == 0
    text = (out / "scan.md").read_text()
    for name in ("deepjscc", "sing-zero(pool2,2)", "sing-zero(pool4,3)", "sing-inn(zeta=paper)", "sing-inn(zeta=0.3)"):
        assert f"| {name} |" in text
    assert "**validation** images" in text and "**Chosen**" in text
    raw = json.loads((folder / "config.json").read_text())
    assert raw["sing"]["operator"] in ("pool2", "pool4") and raw["sing"]["steps"] in (2, 3)
    assert raw["sing"]["zeta"] in ("paper", 0.3) and raw["sing"]["chosen_by"]["split"] == "val"
    assert (folder / "model.safetensors").read_bytes() == weights  # only the config gains the block
    assert DeepJSCC.from_pretrained(folder).sing == recorded_sing(folder)


def test_tune_sing_bad_input_writes_nothing(models, tmp_path, capsys):
    from singlink.cli import main

    out = tmp_path / "scan"
    assert main(["tune-sing", "--jscc", str(models / "jscc"), "--zetas", "0.3,much", "--out", str(out)]) == 2
    assert "--zetas must be numbers >= 0 or 'paper'" in capsys.readouterr().err and not out.exists()
    assert main(["tune-sing", "--jscc", str(models / "jscc"), "--operators", "pool5", "--zetas", "",
                 "--prior", str(models / "prior"), "--out", str(out)]) == 2
    assert "--operators pool5" in capsys.readouterr().err and not out.exists()


def test_sweep_takes_the_recorded_settings_per_rho(monkeypatch):
    from singlink.sweep import config as sweep_config

    monkeypatch.setattr(sweep_config, "checkpoint_names", lambda cfg, rho, family="": {"jscc": rho})
    monkeypatch.setattr("singlink.jscc.model.recorded_sing",
                        lambda name: {"1/192": {"operator": "pool8", "steps": 25, "zeta": "paper"}, "1/48": {}}[name])
    cfg = sweep_config.SweepConfig(methods=("deepjscc", "sing-inn"), rho=("1/192", "1/48"))
    assert sweep_config.sing_options(cfg, "1/192") == {"operator": "pool8", "steps": 25, "zeta": "paper"}
    assert sweep_config.sing_options(cfg, "1/48") == {}
    cfg = sweep_config.SweepConfig(methods=("sing-zero",), rho=("1/192",), steps=10)
    assert sweep_config.sing_options(cfg, "1/192") == {"operator": "pool8", "steps": 10, "zeta": "paper"}


def test_tune_sing_scans_the_remedies_and_records_each_methods_choice(models, tmp_path, one_thread):
    """DDNM+'s projection and time travel for SING-Zero, then SING-INN, CommIN and DPS, each chosen by
    the same rule and recorded per method; Receiver then takes each method's choice by default."""
    from singlink.cli import main

    jscc = DeepJSCC.from_pretrained(models / "jscc")
    folder = _with_sing(models / "jscc", tmp_path / "jscc", {})
    raw = json.loads((folder / "config.json").read_text())
    raw["observation_noise"] = {"snr_db": [-5.0, 5.0], "sigma_y": {"pool4": [0.3, 0.1]}, "sha256": jscc.fingerprint}
    (folder / "config.json").write_text(json.dumps(raw))
    out = tmp_path / "scan"
    assert main(["tune-sing", "--jscc", str(folder), "--prior", str(models / "prior"), "--inn", str(models / "inn"),
                 "--images", "2", "--snr", "-1,3", "--operators", "pool4", "--steps", "3",
                 "--methods", "sing-zero,sing-inn,commin,dps", "--projections", "hard,noise-aware",
                 "--sigma-y-scales", "0.5,1", "--travel", "0,1:1", "--zetas", "0.3", "--commin-zetas", "0.3",
                 "--dps-zetas", "0.5", "--dps-starts", "1,0.5", "--record", "--out", str(out)]) == 0
    text = (out / "scan.md").read_text()
    for name in ("sing-zero(pool4,3)", "sing-zero(pool4,3,noise-aware x0.5)", "sing-zero(pool4,3,travel 1:1)",
                 "sing-zero(pool4,3,noise-aware x1,travel 1:1)", "sing-inn(zeta=0.3)", "commin(3,zeta=0.3)",
                 "dps(3,zeta=0.5)", "dps(3,zeta=0.5,start=0.5)"):
        assert f"| {name} |" in text
    sing = json.loads((folder / "config.json").read_text())["sing"]
    assert set(sing["methods"]) == {"sing-zero", "sing-inn", "commin", "dps"}
    assert sing["methods"]["dps"] in ({"steps": 3, "zeta": 0.5}, {"steps": 3, "zeta": 0.5, "start": 0.5})
    assert sing["methods"]["sing-zero"]["projection"] in ("hard", "noise-aware")
    assert set(sing["chosen_by"]["rule_met"]) == {"sing-zero", "sing-inn", "commin", "dps"}
    rx = Receiver(folder, "sing-zero", prior=models / "prior")
    assert rx.options == {key: v for key, v in sing["methods"]["sing-zero"].items()}
    assert Receiver(folder, "dps", prior=models / "prior").options == sing["methods"]["dps"]
    # bad settings: one line, nothing written
    for flags, words in ((["--travel", "3:x"], "--travel takes LENGTH:REPEATS"),
                         (["--sigma-y-scales", "-1"], "--sigma-y-scales must be numbers >= 0"),
                         (["--projections", "soft"], "--projections takes hard"),
                         (["--methods", "dps"], "--methods takes sing-zero")):
        assert main(["tune-sing", "--jscc", str(folder), "--out", str(tmp_path / "bad")] + flags) == 2
        assert not (tmp_path / "bad").exists()


def test_nearest_band_is_the_nearest_span_then_the_narrowest():
    from singlink.receiver.plugin import nearest_band

    spans = [(-5.0, 1.0), (3.0, 5.0)]
    assert [nearest_band(spans, s) for s in (-9, -1, 1.9, 2.0, 2.1, 4, 20)] == [0, 0, 0, 1, 1, 1, 1]
    # an unbounded main choice serves every SNR no band holds
    assert [nearest_band([None, (3.0, 5.0)], s) for s in (-5, 2.9, 3, 5, 5.1)] == [0, 0, 1, 1, 0]


def test_record_band_adds_an_snr_band_and_the_receiver_restores_each_image_with_its_bands_choice(
        models, tmp_path, one_thread):
    """tune-sing --record-band keeps the main choice and adds the band its --snr spans (replacing
    bands it overlaps); Receiver then restores each image with the choice nearest its SNR, with the
    same noise as a receiver built with that choice alone."""
    from singlink.cli import main

    folder = _with_sing(models / "jscc", tmp_path / "jscc", {})
    common = ["tune-sing", "--jscc", str(folder), "--prior", str(models / "prior"), "--images", "2", "--steps", "2",
              "--zetas", ""]
    assert main(common + ["--snr", "-5,-3", "--operators", "pool2", "--record", "--out", str(tmp_path / "a")]) == 0
    assert main(common + ["--snr", "3,5", "--operators", "pool8", "--record-band", "--out", str(tmp_path / "b")]) == 0
    sing = json.loads((folder / "config.json").read_text())["sing"]
    assert sing["operator"] == "pool2" and [b["snr_db"] for b in sing["bands"]] == [[3.0, 5.0]]
    assert sing["bands"][0]["operator"] == "pool8" and sing["bands"][0]["chosen_by"]["snr_db"] == [3.0, 5.0]
    jscc = DeepJSCC.from_pretrained(folder)
    assert [span for span, _ in jscc.sing_bands] == [(-5.0, -3.0), (3.0, 5.0)]
    # a later band over the same SNRs replaces it; --record keeps the bands
    assert main(common + ["--snr", "4", "--operators", "pool4", "--record-band", "--out", str(tmp_path / "c")]) == 0
    assert main(common + ["--snr", "-5,-3", "--operators", "pool2", "--record", "--out", str(tmp_path / "d")]) == 0
    sing = json.loads((folder / "config.json").read_text())["sing"]
    assert [(b["snr_db"], b["operator"]) for b in sing["bands"]] == [([4.0, 4.0], "pool4")]

    rx = Receiver(folder, "sing-zero", prior=models / "prior")
    assert rx.options["operator"] == "pool2" and "4..4 dB: operator pool4" in rx.options["bands"]
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    snr = torch.tensor([-4.0, 5.0, 0.0])
    out = rx.restore(x, snr, seed=7)
    alone = {op: Receiver(folder, "sing-zero", prior=models / "prior", operator=op).restore(x, snr, seed=7)
             for op in ("pool2", "pool4")}
    for i, op in enumerate(("pool2", "pool4", "pool2")):  # same noise; the UNet's sums vary with batch size
        torch.testing.assert_close(out[i], alone[op][i], atol=1e-4, rtol=0)
    # options the caller gives hold in every band: no bands left to tell apart
    assert "bands" not in Receiver(folder, "sing-zero", prior=models / "prior", operator="pool4").options
    assert main(common + ["--snr", "4", "--record", "--record-band", "--out", str(tmp_path / "e")]) == 2


def test_a_band_without_its_snrs_is_a_corrupt_checkpoint(models, tmp_path):
    folder = _with_sing(models / "jscc", tmp_path / "jscc", {"bands": [{"operator": "pool2"}]})
    with pytest.raises(UsageError, match=r"corrupt DeepJSCC checkpoint.*sing.bands\[0\] has no snr_db"):
        DeepJSCC.from_pretrained(folder)


def test_sweep_reports_the_recorded_snr_bands(monkeypatch):
    from singlink.sweep import config as sweep_config

    monkeypatch.setattr(sweep_config, "checkpoint_names", lambda cfg, rho, family="": {"jscc": rho})
    monkeypatch.setattr("singlink.jscc.model.recorded_sing", lambda name: {"operator": "pool4", "steps": 50})
    monkeypatch.setattr("singlink.jscc.model.recorded_sing_bands", lambda name: [
        ((-5.0, 1.0), {"operator": "pool4", "steps": 50}), ((3.0, 5.0), {"operator": "pool2"})])
    cfg = sweep_config.SweepConfig(methods=("sing-zero",), rho=("1/48",))
    assert sweep_config.sing_settings(cfg)["1/48"]["bands"] == [
        {"snr_db": [3.0, 5.0], "operator": "pool2", "steps": 50, "zeta": "paper"}]
    cfg = sweep_config.SweepConfig(methods=("sing-zero",), rho=("1/48",), operator="pool8")
    assert sweep_config.sing_settings(cfg)["1/48"]["bands"][0]["operator"] == "pool8"
