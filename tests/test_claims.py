"""The SING paper's claims (singlink.sweep.claims) decided on synthetic paired rows whose
differences are known, against scipy's paired t intervals."""
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from singlink.sweep.claims import claims_markdown, sing_claims

N = 40


def _rows(lpips_shift, psnr_shift, rhos=("1/192", "1/48"), snrs=(-5.0, 5.0), gain=None, seed=0):
    """DeepJSCC rows with per-image noise, and each SING method offset from them by a per-image
    noisy shift (method -> (lpips offset, psnr offset)); ``gain`` overrides SING-INN's LPIPS offset per rho."""
    rng = np.random.default_rng(seed)
    rows = []
    for rho in rhos:
        for snr in snrs:
            for i in range(N):
                base = {"family": "", "rho": rho, "snr_db": snr, "channel": "awgn", "image_id": i, "realization": 0}
                lp, ps = 0.2 + 0.05 * rng.random(), 20 + rng.random()
                rows.append(base | {"method": "deepjscc", "lpips": lp, "psnr": ps})
                for m in lpips_shift:
                    dl = (gain or {}).get(rho, lpips_shift[m]) if m == "sing-inn" else lpips_shift[m]
                    rows.append(base | {"method": m, "lpips": lp + dl + 0.002 * rng.standard_normal(),
                                        "psnr": ps + psnr_shift[m] + 0.05 * rng.standard_normal()})
    return rows


def _cfg(methods, rhos=("1/192", "1/48"), snrs=(-5, 5)):
    return SimpleNamespace(methods=list(methods), rho=list(rhos), snr=list(snrs), channel=["awgn"], families=("",))


def _find(claims, text, rho):
    return next(c for c in claims if c["claim"] == text and c["rho"] == rho)


def test_verdicts_follow_the_paired_intervals():
    rows = _rows({"sing-zero": 0.01, "sing-inn": -0.01}, {"sing-zero": -2.0, "sing-inn": -0.1})
    claims = sing_claims(rows, _cfg(["deepjscc", "sing-zero", "sing-inn"]))
    assert [r[4] for r in _find(claims, "LPIPS: SING-INN < SING-Zero", "1/192")["results"]] == ["holds", "holds"]
    assert [r[4] for r in _find(claims, "LPIPS: SING-Zero < DeepJSCC", "1/48")["results"]] == ["fails", "fails"]
    assert [r[4] for r in _find(claims, "LPIPS: SING-INN < DeepJSCC", "1/48")["results"]] == ["holds", "holds"]
    assert [r[4] for r in _find(claims, "PSNR: SING-Zero within 1 dB of DeepJSCC", "1/192")["results"]] == ["fails"] * 2
    assert [r[4] for r in _find(claims, "PSNR: SING-INN within 1 dB of DeepJSCC", "1/192")["results"]] == ["holds"] * 2
    # the numbers are scipy's paired t interval on the per-image differences
    snr, diff, ci, n, _ = _find(claims, "LPIPS: SING-INN < SING-Zero", "1/48")["results"][1]
    v = {(r["method"], r["image_id"]): r["lpips"] for r in rows if r["rho"] == "1/48" and r["snr_db"] == snr}
    d = np.array([v["sing-inn", i] - v["sing-zero", i] for i in range(N)])
    low, high = stats.ttest_rel(d, np.zeros(N)).confidence_interval(0.95)
    assert (n, diff, ci) == (N, pytest.approx(d.mean(), abs=1e-12), pytest.approx((high - low) / 2, rel=1e-9))


def test_an_indistinguishable_pair_is_not_significant():
    rows = _rows({"sing-zero": 0.0}, {"sing-zero": 0.0}, rhos=("1/192",), snrs=(1.0,))
    (c,) = [c for c in sing_claims(rows, _cfg(["deepjscc", "sing-zero"], ("1/192",), (1,))) if "LPIPS" in c["claim"]]
    snr, diff, ci, n, verdict = c["results"][0]
    assert abs(diff) < ci and verdict == "not significant"


def test_gain_at_the_lower_rho_is_a_paired_comparison_across_rhos():
    rows = _rows({"sing-zero": 0.0, "sing-inn": 0.0}, {"sing-zero": 0.0, "sing-inn": 0.0},
                 gain={"1/192": -0.02, "1/48": -0.005})
    claims = sing_claims(rows, _cfg(["deepjscc", "sing-zero", "sing-inn"]))
    (c,) = [c for c in claims if c["claim"].startswith("SING-INN's LPIPS gain")]
    assert c["rho"] == "1/192 vs 1/48"
    _, diff, ci, n, verdict = c["results"][0]
    assert n == N and diff == pytest.approx(0.015, abs=2e-3) and verdict == "holds"
    # reversed: the gain is larger at the higher rho
    rows = _rows({"sing-inn": 0.0}, {"sing-inn": 0.0}, gain={"1/192": -0.005, "1/48": -0.02})
    (c,) = [c for c in sing_claims(rows, _cfg(["deepjscc", "sing-inn"])) if c["claim"].startswith("SING-INN's")]
    assert c["results"][0][4] == "fails"


def test_no_claims_without_deepjscc_and_a_sing_method():
    rows = _rows({"sing-zero": 0.0}, {"sing-zero": 0.0})
    assert sing_claims(rows, _cfg(["sing-zero"])) == []
    assert sing_claims(rows, _cfg(["deepjscc", "bpg-capacity"])) == []
    assert claims_markdown([]) == ""


def test_markdown_tallies_each_row():
    rows = _rows({"sing-zero": 0.01, "sing-inn": -0.01}, {"sing-zero": -0.1, "sing-inn": -0.1})
    text = claims_markdown(sing_claims(rows, _cfg(["deepjscc", "sing-zero", "sing-inn"])))
    assert "## LPIPS: SING-Zero < DeepJSCC" in text
    line = next(s for s in text.splitlines() if s.startswith("| 1/192 | awgn |") and "fails (+0.01" in s)
    assert line.endswith("| 0 / 2 / 0 |")


def test_claims_are_tested_within_each_codec_family():
    """With two codec families each family's restorations are held against its own DeepJSCC, and
    each claim names the family: here SING helps the mse codec and hurts the perceptual one."""
    mse = [r | {"family": "mse"} for r in _rows({"sing-inn": -0.02}, {"sing-inn": -0.1}, rhos=("1/192",))]
    perceptual = [r | {"family": "perceptual"} for r in _rows({"sing-inn": 0.02}, {"sing-inn": -0.1}, rhos=("1/192",),
                                                                seed=1)]
    cfg = _cfg(["deepjscc", "sing-inn"], rhos=("1/192",))
    cfg.families = ("perceptual", "mse")
    claims = sing_claims(perceptual + mse, cfg)
    assert [r[4] for r in _find(claims, "[mse] LPIPS: SING-INN < DeepJSCC", "1/192")["results"]] == ["holds"] * 2
    assert [r[4] for r in _find(claims, "[perceptual] LPIPS: SING-INN < DeepJSCC", "1/192")["results"]] == ["fails"] * 2
    assert all(r[3] == N for c in claims for r in c["results"])  # no family's rows leak into another's cells


def test_commin_and_lpips_vgg_claims():
    """CommIN's claim (lowest LPIPS: CommIN < SING-INN) and every restoration against DeepJSCC are
    tested in LPIPS-alex and, where the rows have it, LPIPS-VGG (here twice LPIPS-alex, so both
    metrics give the same verdicts)."""
    rows = _rows({"sing-inn": -0.01, "commin": -0.03}, {"sing-inn": -0.1, "commin": -2.0}, rhos=("1/192",))
    cfg = _cfg(["deepjscc", "sing-inn", "commin"], rhos=("1/192",))
    assert not any("LPIPS-VGG" in c["claim"] for c in sing_claims(rows, cfg))
    claims = sing_claims([r | {"lpips_vgg": 2 * r["lpips"]} for r in rows], cfg)
    for name in ("LPIPS", "LPIPS-VGG"):
        assert [r[4] for r in _find(claims, f"{name}: CommIN < SING-INN", "1/192")["results"]] == ["holds"] * 2
        assert [r[4] for r in _find(claims, f"{name}: CommIN < DeepJSCC", "1/192")["results"]] == ["holds"] * 2
    assert [r[4] for r in _find(claims, "PSNR: CommIN within 1 dB of DeepJSCC", "1/192")["results"]] == ["fails"] * 2
