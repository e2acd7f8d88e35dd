"""The per-sample and per-symbol loops of :class:`~singlink_gr.burst.Synchronizer`, compiled by numba.

Why compiled, and why by hand: GNU Radio has no block for a feed-forward, data-aided burst
estimator (``burst.py`` says why its loops do not serve), and the same algorithm written as numpy
array expressions costs about a hundred small array calls per burst, each a few microseconds of
interpreter and allocation overhead: 1.5 ms per burst at -5 dB, more than twice the DeepJSCC
decoder's time per image. These loops do the same arithmetic in one pass each (float64
accumulation; complex64 in and out, as before). The coarse FFT of :func:`detect` runs inside the
kernel through rocket-fft (numpy.fft for numba, on pocketfft, the FFT numpy itself uses): a
preamble check is then one compiled call, not five numpy calls each with its interpreter
overhead, and every burst makes four or five of them at -5 dB (its candidate and the strongest
tags inside it). gr-fec's decoders stay with GNU Radio. ``cache=True`` keeps the machine code
beside this file, so only the first process after a change compiles (a few seconds).

Every kernel takes plain arrays; symbol indices follow :class:`~singlink_gr.burst.Layout`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

RESYNC = 32   # symbols between exact evaluations of a rotating phasor (its recursion drifts ~1e-16 per step)

__all__ = ["preamble_search", "carrier_peak", "detect", "first_preamble", "burst_symbols", "phase_track", "known_gain",
           "polar_sc", "load"]


@njit(cache=True, inline="always")
def _cubic_weights(mu):
    """Cubic Lagrange weights of x[i-1..i+2] for the position i + mu, 0 <= mu < 1."""
    return (-mu * (mu - 1.0) * (mu - 2.0) / 6.0, (mu + 1.0) * (mu - 1.0) * (mu - 2.0) / 2.0,
            -(mu + 1.0) * mu * (mu - 2.0) / 2.0, (mu + 1.0) * mu * (mu - 1.0) / 6.0)


@njit(cache=True)
def preamble_search(x, guess, radius, pre, sps, segment):
    """Timing of a preamble near sample ``guess`` of matched-filter output x (complex64).

    For every integer start tau in guess +- radius that leaves the whole preamble in x, the
    non-coherent segmented correlation m(tau) = sum_s |sum_{n in segment s} x[tau + sps n] pre_n^*|^2
    (segments of ``segment`` chips: a carrier offset turns the phase within a segment only a
    little); the peak refined by a parabola through it and its neighbours (at most half a sample).
    Returns (found, t0, zz, energy): zz_n = y_n pre_n^* with y_n = x(t0 + sps n) (cubic
    interpolation) the de-modulated preamble (complex64, (Np,)) and energy = sum |y_n|^2."""
    npre = len(pre)
    lo = max(guess - radius, 1)
    hi = min(guess + radius, len(x) - 3 - (npre - 1) * sps)
    zz = np.zeros(npre, np.complex64)
    if hi < lo:
        return False, 0.0, zz, 0.0
    nseg = npre // segment
    ntau = hi - lo + 1
    m = np.zeros(ntau)
    acc = np.empty(ntau, np.complex128)
    for s in range(nseg):   # all timings at once, chip by chip: the innermost loop runs over contiguous samples
        acc[:] = 0
        for q in range(s * segment, (s + 1) * segment):
            c = np.conj(pre[q])
            base = lo + sps * q
            for a in range(ntau):
                acc[a] += x[base + a] * c
        for a in range(ntau):
            m[a] += acc[a].real * acc[a].real + acc[a].imag * acc[a].imag
    j = int(np.argmax(m))
    frac = 0.0
    if 0 < j < len(m) - 1:
        a_, b_, c_ = m[j - 1], m[j], m[j + 1]
        den = a_ - 2.0 * b_ + c_
        if den < 0:
            frac = min(max(0.5 * (a_ - c_) / den, -0.5), 0.5)
    t0 = float(lo + j) + frac
    energy = 0.0
    i0 = int(np.floor(t0))
    c_m1, c_0, c_1, c_2 = _cubic_weights(t0 - i0)   # chips a whole sps apart share the weights
    for n in range(npre):
        i = i0 + sps * n
        y = c_m1 * x[i - 1] + c_0 * x[i] + c_1 * x[i + 1] + c_2 * x[i + 2]
        energy += y.real * y.real + y.imag * y.imag
        zz[n] = y * np.conj(pre[n])
    return True, t0, zz, energy


@njit(cache=True)
def _dtft_mag(zz, k, nfft):
    """|sum_n zz_n exp(-j 2 pi k n / nfft)| (phasor recursion)."""
    step = np.exp(-2j * np.pi * k / nfft)
    p = 1.0 + 0j
    acc = 0j
    for n in range(len(zz)):
        acc += zz[n] * p
        p *= step
    return abs(acc)


@njit(cache=True)
def carrier_peak(coarse, zz, nfft):
    """Carrier offset and coherent energy of the de-modulated preamble zz: the peak of its
    ``nfft``-point periodogram |Z_k| refined by a parabola through its neighbours (the single-tone
    ML estimate), f in cycles per symbol in [-1/2, 1/2); coh = |sum_n zz_n exp(-j 2 pi f n)|^2.
    Returns (f, coh).

    The fine periodogram is evaluated only around the peak of ``coarse`` (|Z|^2 on an nfft / U-point
    grid, U = nfft / len(coarse)): +-2U fine bins, moved until its maximum is inside. That is the
    nfft-point FFT's peak whenever the coarse peak lies in the same lobe, i.e. unless another peak
    comes within the coarse grid's scalloping loss (< 1 dB at 4x zero padding) of the highest, which
    happens only for candidates far below the detection threshold."""
    up = nfft // len(coarse)
    half = 2 * up
    centre = up * int(np.argmax(coarse))
    vals = np.empty(2 * half + 1)
    for _ in range(8):
        for i in range(2 * half + 1):
            vals[i] = _dtft_mag(zz, centre - half + i, nfft)
        j = int(np.argmax(vals))
        if 0 < j < 2 * half:
            break
        centre += j - half
    j = min(max(j, 1), 2 * half - 1)
    a_, b_, c_ = vals[j - 1], vals[j], vals[j + 1]
    den = a_ - 2.0 * b_ + c_
    kf = (centre - half + j) + (0.5 * (a_ - c_) / den if den < 0 else 0.0)
    f = ((kf + nfft / 2) % nfft - nfft / 2) / nfft
    acc = 0j
    step = np.exp(-2j * np.pi * f)
    p = 1.0 + 0j
    for n in range(len(zz)):
        if n % RESYNC == 0:   # the phasor recursion, restarted exactly now and then (an exp per chip cost 5 us)
            p = np.exp(-2j * np.pi * f * n)
        acc += zz[n] * p
        p *= step
    return f, acc.real * acc.real + acc.imag * acc.imag


@njit(cache=True)
def detect(x, guess, radius, pre, sps, segment, nfft_coarse, nfft, coarse_bound, threshold):
    """A preamble near sample ``guess``: :func:`preamble_search`, then the ``nfft_coarse``-point
    periodogram P of the de-modulated preamble; when even its bound ``coarse_bound`` max P stays
    under ``threshold`` times the preamble's energy scale the candidate is refused there (see
    :meth:`~singlink_gr.burst.Synchronizer.detect` for why that bound holds), otherwise
    :func:`carrier_peak` gives the carrier offset and the coherent energy.
    Returns (status, t0, metric, f): status 0 when the window leaves x, 1 refused by the coarse
    bound (metric = max P / scale), 2 searched (metric = coherent energy / scale, f in cycles/symbol)."""
    found, t0, zz, energy = preamble_search(x, guess, radius, pre, sps, segment)
    if not found:
        return 0, 0.0, 0.0, 0.0
    scale = len(pre) * max(energy, 1e-30)
    padded = np.zeros(nfft_coarse, np.complex128)
    padded[:len(zz)] = zz
    spectrum = np.fft.fft(padded)
    power = np.empty(nfft_coarse)   # |.|^2 by hand: numba's np.abs of complex (hypot) cost as much as the FFT
    for i in range(nfft_coarse):
        power[i] = spectrum[i].real * spectrum[i].real + spectrum[i].imag * spectrum[i].imag
    peak = power.max()
    if peak * coarse_bound < threshold * scale:
        return 1, t0, peak / scale, 0.0
    f, coh = carrier_peak(power, zz, nfft)
    return 2, t0, coh / scale, f


@njit(cache=True)
def first_preamble(x, guesses, radius, pre, sps, segment, nfft_coarse, nfft, coarse_bound, threshold):
    """The smallest of ``guesses`` (samples into x) at which :func:`detect` finds a preamble whose
    metric reaches ``threshold``, or -1: the check of a burst for a new preamble inside it, one
    compiled call for all its candidates."""
    first = -1
    for guess in guesses:
        status, _, metric, _ = detect(x, guess, radius, pre, sps, segment, nfft_coarse, nfft, coarse_bound, threshold)
        if status == 2 and metric >= threshold and (first < 0 or guess < first):
            first = guess
    return first


@njit(cache=True)
def burst_symbols(x, t0, sps, first, n, cfo_per_symbol):
    """Burst symbols first..n-1 of matched-filter output x at the timing t0 (cubic
    interpolation): as sampled, and de-rotated by the carrier offset (exp(-j 2 pi cfo m) at symbol
    m). Returns (raw, derotated), complex64 (n - first,) each. Symbols lie a whole ``sps`` samples
    apart, so all share one set of interpolation weights."""
    raw = np.empty(n - first, np.complex64)
    rot = np.empty(n - first, np.complex64)
    w = -2.0 * np.pi * cfo_per_symbol
    step = np.exp(1j * w)
    p = 1.0 + 0j
    i0 = int(np.floor(t0))
    c_m1, c_0, c_1, c_2 = _cubic_weights(t0 - i0)
    for j in range(n - first):
        m = first + j
        if j % RESYNC == 0:   # the phasor recursion p *= step, restarted exactly now and then
            p = np.exp(1j * (w * m))
        i = i0 + sps * m
        s = c_m1 * x[i - 1] + c_0 * x[i] + c_1 * x[i + 1] + c_2 * x[i + 2]
        raw[j] = s
        rot[j] = s * p
        p *= step
    return raw, rot


@njit(cache=True)
def _grid_peak(d, tt, grid):
    """The frequency on the evenly spaced ``grid`` (cycles/symbol) where |sum_m d_m exp(-j 2 pi f t_m)|
    peaks (kept off the grid's ends), refined by a parabola. Each term's phasor steps from one
    grid frequency to the next by a constant factor (one exp per term, not one per term and
    frequency: 41 + 21 frequencies by ~10 pilot blocks were most of a burst's phase tracking)."""
    e = np.empty(len(d), np.complex128)
    w = np.empty(len(d), np.complex128)
    for m in range(len(d)):
        e[m] = np.exp(-2j * np.pi * grid[0] * tt[m])
        w[m] = np.exp(-2j * np.pi * (grid[1] - grid[0]) * tt[m])
    p = np.empty(len(grid))
    for g in range(len(grid)):
        acc = 0j
        for m in range(len(d)):
            acc += d[m] * e[m]
            e[m] *= w[m]
        p[g] = abs(acc)
    j = min(max(int(np.argmax(p)), 1), len(grid) - 2)
    a_, b_, c_ = p[j - 1], p[j], p[j + 1]
    den = a_ - 2.0 * b_ + c_
    return grid[j] + (0.5 * (a_ - c_) / den * (grid[1] - grid[0]) if den < 0 else 0.0)


@njit(cache=True)
def _unwrap(phi):
    """numpy.unwrap (period 2 pi) of a float64 vector."""
    out = phi.copy()
    shift = 0.0
    for i in range(1, len(phi)):
        dd = phi[i] - phi[i - 1]
        ddmod = (dd + np.pi) % (2 * np.pi) - np.pi
        if ddmod == -np.pi and dd > 0:
            ddmod = np.pi
        if abs(dd) >= np.pi:
            shift += ddmod - dd
        out[i] = phi[i] + shift
    return out


@njit(cache=True)
def phase_track(y, npre, pre, blocks, pilots, metric, coarse, fine):
    """Phase and residual frequency over a burst from its preamble (symbols 0..npre-1, values
    ``pre``) and pilot blocks (indices ``blocks`` (B, P), values ``pilots`` (B, P)); y complex64
    after the preamble's carrier correction. Block sums c_b = sum y pilot^*; a coarse residual
    frequency from consecutive blocks; the ML frequency over all blocks (peak of the block sums'
    periodogram on the ``coarse`` grid, then on ``fine`` (offsets) around it: unlike a line fit
    through unwrapped phases it cannot slip a cycle when a block is buried in noise); what is left
    (phase noise) smoothed over 3-21 blocks (enough pilot symbols for a 0.1 rad phase error at the
    SNR the preamble metric indicates, rho ~ snr / (1 + snr)) and interpolated per symbol.
    Returns (y exp(-j phase), complex64, and the residual frequency in cycles/symbol)."""
    nb, plen = blocks.shape
    c = np.empty(nb + 1, np.complex128)
    tt = np.empty(nb + 1)
    acc = 0j
    for n in range(npre):
        acc += y[n] * np.conj(pre[n])
    c[0] = acc
    tt[0] = (npre - 1) / 2.0
    for b in range(nb):
        acc = 0j
        tsum = 0.0
        for q in range(plen):
            acc += y[blocks[b, q]] * np.conj(pilots[b, q])
            tsum += blocks[b, q]
        c[b + 1] = acc
        tt[b + 1] = tsum / plen
    fr0 = 0.0
    if nb >= 2:
        acc = 0j
        for b in range(2, nb + 1):
            acc += c[b] * np.conj(c[b - 1])
        fr0 = np.angle(acc) / (2 * np.pi * (tt[2] - tt[1]))
    d = np.empty(nb + 1, np.complex128)
    for m in range(nb + 1):
        d[m] = c[m] * np.exp(-2j * np.pi * fr0 * tt[m])
    df = 0.0
    if nb + 1 >= 3:
        df = _grid_peak(d, tt, coarse)
        df = _grid_peak(d, tt, df + fine)
    slope = 2 * np.pi * df
    acc = 0j
    for m in range(nb + 1):
        acc += d[m] * np.exp(-1j * slope * tt[m])
    icpt = np.angle(acc)
    rho = min(max(metric, 1e-3), 0.999)
    snr = rho / (1 - rho)
    width = int(min(max(2 * np.ceil(50.0 / (snr * plen) / 2) + 1, 3), 21))
    h = width // 2
    cs = np.zeros(nb + 2, np.complex128)
    for m in range(nb + 1):
        cs[m + 1] = cs[m] + d[m] * np.exp(-1j * (slope * tt[m] + icpt))
    ang = np.empty(nb + 1)
    for i in range(nb + 1):
        ang[i] = np.angle(cs[min(i + h + 1, nb + 1)] - cs[max(i - h, 0)])   # moving sum over `width` blocks
    ang = _unwrap(ang)
    fr = fr0 + slope / (2 * np.pi)
    w = 2 * np.pi * fr
    # phase(n) = w n + icpt + wobble(n), wobble linear between the block centres tt (constant outside,
    # as numpy.interp): per segment the phasor exp(-j phase) turns by a constant step
    out = np.empty(len(y), np.complex64)
    m = 0            # knots at or before n
    p = step = 1.0 + 0j
    for n in range(len(y)):
        moved = False
        while m <= nb and tt[m] <= n:
            m += 1
            moved = True
        if moved or n % RESYNC == 0:
            if m == 0:
                wob, dwob = ang[0], 0.0
            elif m == nb + 1:
                wob, dwob = ang[nb], 0.0
            else:
                dwob = (ang[m] - ang[m - 1]) / (tt[m] - tt[m - 1])
                wob = ang[m - 1] + (n - tt[m - 1]) * dwob
            p = np.exp(-1j * (w * n + icpt + wob))
            step = np.exp(-1j * (w + dwob))
        out[n] = y[n] * p
        p *= step
    return out, fr


@njit(cache=True)
def known_gain(y, idx, ref):
    """Least-squares gain of known symbols: g = <ref, y[idx]> / <ref, ref>; returns (g, sum of
    |y[idx] - g ref|^2)."""
    num = 0j
    den = 0.0
    for j in range(len(idx)):
        num += np.conj(ref[j]) * y[idx[j]]
        den += ref[j].real * ref[j].real + ref[j].imag * ref[j].imag
    g = num / den if den > 0 else 0j
    if abs(g) < 1e-12:
        g = 1.0 + 0j
    res = 0.0
    for j in range(len(idx)):
        e = y[idx[j]] - g * ref[j]
        res += e.real * e.real + e.imag * e.imag
    return g, res


POLAR_LLR_FACTOR = np.float32(-2.19722458)   # gr-fec's polar_decoder_common::D_LLR_FACTOR, applied to its input


@njit(cache=True)
def _polar_skip(beta, u, i, height):
    """A rate-0 node (only frozen bits, all 0) at ``height`` starting at bit i: its bits and partial
    sums are 0 whatever its LLRs; then its partial sums up the tree (:func:`_polar_up`)."""
    size = 1 << height
    for j in range(size):
        u[i + j] = 0
        beta[size + j] = 0
    _polar_up(beta, i, height)
    return i + size


@njit(cache=True)
def _polar_up(beta, i, height):
    """Partial sums up from the completed node at ``height`` holding bit i: a right child completes
    its parent ([left ^ right, right]), a left child fills its parent's first half and stops."""
    depth = 0
    while (2 << depth) < len(beta):
        depth += 1
    h = height
    while h < depth:
        size = 1 << h
        if not (i >> h) & 1:
            for j in range(size):
                beta[2 * size + j] = beta[size + j]
            return
        for j in range(size):
            beta[3 * size + j] = beta[size + j]
            beta[2 * size + j] ^= beta[size + j]
        h += 1


@njit(cache=True)
def polar_sc(soft, reverse, rate0, info):
    """Successive-cancellation decoding of gr-fec's polar code, bit for bit gr-fec's ``polar_decoder_sc``.

    Why by hand: gr-fec's SC decoder makes one VOLK call (``volk_32f_8u_polarbutterfly_32f``) per
    code bit, 1,024 calls for a 72-bit header, 0.13 ms, as much as the rest of a burst's
    arithmetic; the same tree walked once in one compiled loop, skipping the subtrees that hold
    only frozen bits, costs a tenth of that. Same decoder: gr-fec scales the input by
    D_LLR_FACTOR (< 0) and, stage by stage, combines code bit pairs (2i, 2i + 1) with the min-sum
    f(a, b) = sign(a) sign(b) min(|a|, |b|) and g(a, b, s) = b + (1 - 2 s) a (s the partial sum
    of the bits decided before), deciding u_i = 1 where the LLR < 0, frozen bits their value (0).
    Pairing (2i, 2i + 1) at every stage is pairing (i, i + M/2) on the bit-reversed input, which
    this walks depth first, each f and g computed once from the same float32 operands (min and
    sign are exact, g one rounding); a subtree of frozen bits decides 0s whatever its LLRs, so
    its LLRs are not computed. The decisions equal gr-fec's (``tests/test_gnuradio.py`` checks
    that on random LLRs).

    soft: (N,) float32 LLRs log p(1)/p(0) as gr-fec's decoder takes them; reverse: (N,) the
    bit-reversal permutation of 0..N-1; rate0: (log2 N + 1, N) bool, rate0[h, q] whether the
    node of height h holding bits q 2^h .. (q + 1) 2^h - 1 has only frozen bits; info: the
    unfrozen bit indices, ascending. Returns the info bits (uint8, len(info)) and the codeword
    they encode to (uint8, N: the root's partial sums, in the input's bit order)."""
    n_bits = len(soft)
    depth = len(rate0) - 1
    llr = np.empty(2 * n_bits, np.float32)   # the node at height h: llr[2^h : 2^(h+1)] (h = depth: the channel)
    beta = np.empty(2 * n_bits, np.uint8)    # its partial sums (the left child's in its first half while in progress)
    u = np.empty(n_bits, np.uint8)
    for j in range(n_bits):
        llr[n_bits + j] = soft[reverse[j]] * POLAR_LLR_FACTOR
    i = 0
    while i < n_bits:
        h = depth
        if i == 0 and rate0[depth, 0]:
            i = _polar_skip(beta, u, 0, depth)
            continue
        if i:   # from the lowest common ancestor with bit i - 1: its right child, by g
            h = 1
            while not (i >> (h - 1)) & 1:
                h += 1
            half = 1 << (h - 1)
            if rate0[h - 1, i >> (h - 1)]:
                i = _polar_skip(beta, u, i, h - 1)
                continue
            for j in range(half):
                a, b = llr[2 * half + j], llr[3 * half + j]
                llr[half + j] = b - a if beta[2 * half + j] else b + a
            h -= 1
        skipped = False
        while h:   # then left children down to the leaf, by f
            half = 1 << (h - 1)
            if rate0[h - 1, i >> (h - 1)]:
                i = _polar_skip(beta, u, i, h - 1)
                skipped = True
                break
            for j in range(half):
                a, b = llr[2 * half + j], llr[3 * half + j]
                m = min(abs(a), abs(b))
                llr[half + j] = m if (a < 0) == (b < 0) else -m
            h -= 1
        if skipped:
            continue
        u[i] = beta[1] = np.uint8(llr[1] < 0)   # an information bit (a frozen leaf is a rate-0 node)
        _polar_up(beta, i, 0)
        i += 1
    out = np.empty(len(info), np.uint8)
    for j in range(len(info)):
        out[j] = u[info[j]]
    code = np.empty(n_bits, np.uint8)
    for j in range(n_bits):
        code[reverse[j]] = beta[n_bits + j]
    return out, code


_READY = []


def load():
    """Compile the kernels (or load them from numba's cache) now, with the argument types the
    synchroniser passes, rather than inside the first burst's ``work()`` call, where the few
    hundred milliseconds it takes would stall a live stream."""
    if _READY:
        return
    x = np.zeros(64, np.complex64)
    pre = np.ones(15, np.complex64)
    preamble_search(x, 20, 2, pre, 2, 15)
    detect(x, 20, 2, pre, 2, 15, 16, 64, 1.5, 0.0)
    first_preamble(x, np.array([20], np.int64), 2, pre, 2, 15, 16, 64, 1.5, 0.0)
    burst_symbols(x, 2.0, 2, 0, 8, 0.0)
    blocks = np.arange(16, 40, dtype=np.int64).reshape(3, 8)
    phase_track(x, 15, pre, blocks, np.ones((3, 8), np.complex64), 0.5, np.linspace(-1e-3, 1e-3, 5),
                np.linspace(-1e-4, 1e-4, 5))
    known_gain(x, np.arange(4), np.ones(4, np.complex64))
    rate0 = np.zeros((4, 8), np.bool_)
    rate0[0, :3] = rate0[1, 0] = True
    polar_sc(np.zeros(8, np.float32), np.array([0, 4, 2, 6, 1, 5, 3, 7]), rate0, np.array([3, 4, 5, 6, 7]))
    _READY.append(True)
