"""Separation baselines: HEVC payload accounting, best fit, LDPC budget, the cliff effect."""
import io
import os
import stat
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from singlink.baselines import (MCS_TABLE, BPGCodec, HEVCIntraCodec, SeparationBaseline, code_split, make_codec,
                                training_mean_image)
from singlink.baselines.codec import START_CODE
from singlink.data import dataset_by_name, load_batch, shared_data_dir, to_tensor
from singlink.errors import UsageError

K_RHO_1_6 = 512     # CIFAR-10, rho = 1/6: 3 * 32 * 32 / 6 complex channel uses
K_RHO_1_192 = 16    # rho = 1/192


@pytest.fixture(scope="module")
def codec():
    """One codec for the whole file, so payload sizes found by one test are cached for the next."""
    return HEVCIntraCodec()


@pytest.fixture(scope="module")
def cifar():
    images, _ = load_batch(dataset_by_name("cifar10", "test"), range(3))
    return images


@pytest.fixture(scope="module")
def mean_image():
    return training_mean_image(num_images=32)


def psnr(a, b):
    """PSNR in dB of one image (3, H, W) against another."""
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def pillow_heif_decode(heif: bytes) -> torch.Tensor:
    import pillow_heif

    return to_tensor(np.asarray(pillow_heif.open_heif(io.BytesIO(heif))).copy())


def kodak_crop():
    with Image.open(shared_data_dir() / "kodak" / "kodim01.png") as img:
        return to_tensor(img.convert("RGB").crop((256, 128, 512, 384)))


# --- codec -----------------------------------------------------------------------------------

def test_hevc_payload_is_the_raw_stream_and_the_container_carries_no_image(codec, cifar):
    overheads = set()
    for image, qps in [(cifar[0], (27, 37, 47)), (cifar[1], (37,)), (kodak_crop(), (37,))]:
        shape = tuple(image.shape[1:])
        for qp in qps:
            heif, payload = codec.heif(image, qp), codec.encode(image, qp)
            nals = payload.split(START_CODE)[1:]
            assert payload.startswith(START_CODE) and [(n[0] >> 1) & 63 for n in nals[:3]] == [32, 33, 34]
            assert len(nals) >= 4 and all(n in heif for n in nals)  # VPS, SPS, PPS, slices: all from the file
            overhead = len(heif) - len(payload)
            assert 0 < overhead < len(heif)
            overheads.add((shape, overhead))
            assert codec.heif_from_payload(payload, shape) == heif
            decoded = codec.decode(payload, shape)
            assert torch.equal(decoded, pillow_heif_decode(heif))
            assert psnr(decoded, image) > {27: 33, 37: 25, 47: 19}[qp]
    # the container depends on the shape only: one overhead per shape, whatever the image or QP
    assert len(overheads) == 2 and {s for s, _ in overheads} == {(32, 32), (256, 256)}


def test_hevc_decode_failures_and_padding(codec, cifar):
    payload = codec.encode(cifar[0], 40)
    assert torch.equal(codec.decode(payload + bytes(25), (32, 32)), codec.decode(payload, (32, 32)))
    no_start_code = np.random.default_rng(0).integers(1, 256, len(payload), dtype=np.uint8).tobytes()
    assert codec.decode(no_start_code, (32, 32)) is None
    assert codec.decode(payload[:50], (32, 32)) is None   # no coded slice left
    assert codec.decode(b"", (32, 32)) is None
    with pytest.raises(ValueError, match="0..51"):
        codec.encode(cifar[0], 52)


def test_best_fit_respects_the_budget_and_quality_grows_with_it(codec, cifar):
    image = cifar[2]
    assert codec.best_fit(image, 8 * 60) is None  # below even QP 51's payload
    fits = [codec.best_fit(image, b) for b in (1200, 2000, 3500, 6000)]
    qps = [qp for qp, _ in fits]
    assert all(8 * len(p) <= b for (_, p), b in zip(fits, (1200, 2000, 3500, 6000)))
    assert qps == sorted(qps, reverse=True) and len(set(qps)) == 4
    for (qp, _), budget in zip(fits, (1200, 2000, 3500, 6000)):  # the lowest QP that fits, sizes not monotone
        assert all(codec.payload_bits(image, q) > budget for q in range(qp))
    quality = [psnr(codec.decode(p, (32, 32)), image) for _, p in fits]
    assert quality == sorted(quality) and quality[-1] > quality[0] + 5


def test_bpg_used_when_on_path(tmp_path, monkeypatch, cifar):
    """The BPG wrapper's command lines and failure handling, against stand-in bpgenc/bpgdec scripts
    (no BPG binaries exist here): the stand-in 'codes' by quantising pixels with step qp + 1."""
    enc = f"""#!{sys.executable}
import sys
from PIL import Image
a = sys.argv[1:]
o = dict(zip(a[:-1:2], a[1:-1:2]))
assert o["-f"] == "444" and o["-b"] == "8", o
q = int(o["-q"]) + 1
img = Image.open(a[-1]).convert("RGB")
body = bytes(v // q * q for v in img.tobytes())
open(o["-o"], "wb").write(b"BPG" + bytes(img.size) + body + b"\\xff")
"""
    dec = f"""#!{sys.executable}
import sys
from PIL import Image
a = sys.argv[1:]
d = open(a[-1], "rb").read()
if not d.startswith(b"BPG") or not d.endswith(b"\\xff"):
    sys.exit(1)
Image.frombytes("RGB", (d[3], d[4]), d[5:-1]).save(a[a.index("-o") + 1])
"""
    for name, text in (("bpgenc", enc), ("bpgdec", dec)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    codec = make_codec()
    assert isinstance(codec, BPGCodec)
    payload = codec.encode(cifar[0], 9)
    decoded = codec.decode(payload + bytes(7), (32, 32))
    assert decoded.shape == (3, 32, 32) and (cifar[0] - decoded).abs().max() <= 10 / 255 + 1e-6
    assert codec.decode(b"not a bpg file", (32, 32)) is None


# --- channel coding ----------------------------------------------------------------------------

def test_code_splits_are_valid_5g_nr_codes():
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    for k in (K_RHO_1_192, K_RHO_1_6, 3000, 196608):
        for modulation, rate in MCS_TABLE:
            s = code_split(k, modulation, rate)
            assert s.symbols <= k and s.info_bits <= k * s.bits_per_symbol * rate and s.n % s.bits_per_symbol == 0
            if s.valid:
                LDPC5GEncoder(s.k_info, s.n)  # raises for codes Sionna does not support
    assert not code_split(K_RHO_1_192, "bpsk", Fraction(2, 3)).valid  # 10 information bits < 12
    big = code_split(196608, "16qam", Fraction(3, 4))
    assert big.codewords > 1 and big.k_info <= 3824 and big.info_bits > 0.99 * 196608 * 4 * 0.75


def check_budget(info, k):
    for row in info:
        assert row["channel_uses"] == k and row["symbols_used"] <= k
        assert row["payload_bits"] <= row["bits_sent"]
        if row["variant"] != "bpg-capacity" and row["modulation"] is not None:
            bps = {"bpsk": 1, "qpsk": 2, "16qam": 4}[row["modulation"]]
            assert row["bits_sent"] <= k * bps * Fraction(row["coderate"]).limit_denominator(64)
        else:
            assert row["bits_sent"] <= row["budget_bits"]
        assert row["decoded_ok"] == (row["status"] == "ok")


def test_never_sends_more_than_the_budget_and_fails_to_the_mean_image(codec, cifar, mean_image):
    mean = mean_image.expand_as(cifar)
    cases = [("bpg-ldpc", {}, K_RHO_1_6, "awgn", 15.0),                      # BPSK 2/3: 341 bits, nothing fits
             ("bpg-ldpc", {"modulation": "16qam", "coderate": "3/4"}, K_RHO_1_6, "awgn", 15.0),
             ("bpg-ldpc", {"modulation": "16qam", "coderate": "3/4"}, K_RHO_1_6, "rayleigh-block", 20.0),
             ("bpg-ldpc", {"modulation": "16qam", "coderate": "3/4"}, K_RHO_1_6, "awgn", -5.0),   # forced block errors
             ("bpg-ldpc", {"modulation": "qpsk", "coderate": "1/2"}, K_RHO_1_192, "awgn", 20.0),  # no fit at rho 1/192
             ("bpg-capacity", {}, K_RHO_1_192, "awgn", 30.0),
             ("bpg-capacity", {}, K_RHO_1_6, "rayleigh-block", 10.0)]
    statuses = {}
    for variant, mcs, k, channel, snr in cases:
        base = SeparationBaseline(variant, mean_image, k, codec=codec, **mcs)
        x_hat, info = base.transmit(cifar, snr, channel=channel, seed=3)
        check_budget(info, k)
        statuses[len(statuses)] = {row["status"] for row in info}
        for i, row in enumerate(info):
            if not row["decoded_ok"]:
                assert torch.equal(x_hat[i], mean[i])  # the cliff: exactly the mean image
            else:
                assert psnr(x_hat[i], cifar[i]) > psnr(mean[i], cifar[i]) + 5
    assert statuses[0] == {"no-fit"} and statuses[1] == {"ok"} and statuses[3] == {"block-error"}
    assert statuses[4] == {"no-fit"} and statuses[5] == {"no-fit"}  # rho 1/192: 16 * 9.97 = 159 bits at most


def test_bpg_ldpc_at_rho_1_6_and_15db_decodes(codec, cifar, mean_image):
    base = SeparationBaseline("bpg-ldpc", mean_image, K_RHO_1_6, codec=codec, modulation="16qam", coderate=2 / 3)
    x_hat, info = base.transmit(cifar, 15.0, seed=0)
    assert [r["status"] for r in info] == ["ok"] * 3 and {r["codewords"] for r in info} == {1}
    for i, row in enumerate(info):
        assert torch.equal(x_hat[i], codec.decode(codec.encode(cifar[i], row["qp"]), (32, 32)))
        assert psnr(x_hat[i], cifar[i]) > psnr(mean_image, cifar[i]) + 5


def test_capacity_at_high_snr_reproduces_the_hevc_decode(codec, cifar, mean_image):
    base = SeparationBaseline("bpg-capacity", mean_image, 2048, codec=codec)
    x_hat, info = base.transmit(cifar[:2], 25.0, seed=0)
    for i, row in enumerate(info):
        assert abs(row["budget_bits"] - 2048 * np.log2(1 + 10 ** 2.5)) <= 1 and row["status"] == "ok"
        assert row["qp"] < 27 and torch.equal(x_hat[i], codec.decode(codec.encode(cifar[i], row["qp"]), (32, 32)))


def test_fading_capacity_budgets_follow_the_seed(codec, cifar, mean_image):
    base = SeparationBaseline("bpg-capacity", mean_image, K_RHO_1_6, codec=codec)
    budgets = [[r["budget_bits"] for r in base.transmit(cifar, 10.0, "rayleigh-block", seed=s)[1]] for s in (1, 1, 2)]
    assert budgets[0] == budgets[1] != budgets[2] and len(set(budgets[0])) == 3


def test_corrupted_payload_gives_the_mean_image(cifar, mean_image):
    class Corrupting(HEVCIntraCodec):
        def encode(self, image, qp):
            return bytes(b ^ 0x5A for b in super().encode(image, qp))

    for variant, mcs in (("bpg-capacity", {}), ("bpg-ldpc", {"modulation": "16qam", "coderate": "3/4"})):
        base = SeparationBaseline(variant, mean_image, K_RHO_1_6, codec=Corrupting(), **mcs)
        x_hat, info = base.transmit(cifar[:1], 25.0)
        assert info[0]["status"] == "decode-failed" and not info[0]["decoded_ok"] and info[0]["bits_sent"] > 0
        assert torch.equal(x_hat[0], mean_image)


def test_best_mcs_picks_the_largest_reliable_budget(codec, cifar, mean_image):
    """At 15 dB over AWGN every 16-QAM code is reliable, so the best expected PSNR is that of the
    largest budget, 16-QAM 3/4, for every image."""
    base = SeparationBaseline("bpg-ldpc-best", mean_image, K_RHO_1_6, codec=codec, mc_images=16)
    rates = base.mcs_error_rates(15.0)
    assert len(rates) == len(MCS_TABLE) and max(rates.values()) <= base.bler_target
    x_hat, info = base.transmit(cifar[:2], 15.0)
    check_budget(info, K_RHO_1_6)
    assert {(r["modulation"], r["coderate"]) for r in info} == {("16qam", 0.75)}
    assert all(r["status"] == "ok" for r in info)


def test_best_mcs_under_fading_weighs_budget_against_outage(codec, cifar, mean_image):
    """Under block fading at 15 dB: each image gets the MCS of highest expected PSNR, which carries
    the image; a reliable MCS too small for any 32x32 stream (BPSK 1/3) is never chosen."""
    from singlink.metrics import psnr as psnr_batch

    base = SeparationBaseline("bpg-ldpc-best", mean_image, K_RHO_1_6, codec=codec, mc_images=64)
    rates = base.mcs_error_rates(15.0, "rayleigh-block")
    mean = mean_image.expand_as(cifar[0])
    fail = float(psnr_batch(mean[None], cifar[:1])[0])
    choice = base.choose_mcs(cifar[0], mean, rates)
    fit = codec.best_fit(cifar[0], choice.info_bits)
    assert fit is not None and choice.info_bits > 1000
    best = (1 - rates[choice]) * base._quality(cifar[0], *fit) + rates[choice] * fail
    for split, p in rates.items():
        other = codec.best_fit(cifar[0], split.info_bits)
        q = fail if other is None else base._quality(cifar[0], *other)
        assert (1 - p) * q + p * fail <= best + 1e-9
    x_hat, info = base.transmit(cifar, 15.0, "rayleigh-block", seed=1)
    check_budget(info, K_RHO_1_6)
    assert all(r["qp"] is not None for r in info)  # every image was sent


def test_usage_errors(mean_image):
    with pytest.raises(UsageError, match="unknown separation variant"):
        SeparationBaseline("bpg-turbo", mean_image, 512)
    with pytest.raises(UsageError, match="bpg-ldpc only"):
        SeparationBaseline("bpg-ldpc-best", mean_image, 512, modulation="qpsk")
    with pytest.raises(UsageError, match="unknown modulation"):
        SeparationBaseline("bpg-ldpc", mean_image, 512, modulation="8psk")
    with pytest.raises(UsageError, match="unknown channel"):
        SeparationBaseline("bpg-capacity", mean_image, 512).transmit(torch.zeros(1, 3, 32, 32), 10.0, channel="rician")
