"""Cost of the TensorFlow <-> torch DLPack bridge next to one link step.

Measures, for ``--n`` complex64 values (default 1e7, i.e. 80 MB):

- ``dlpack_ms``: one TF -> torch -> TF round trip through ``phy.tf_to_torch`` then
  ``phy.torch_to_tf`` (median over ``--reps``);
- ``numpy_ms``: the same round trip through host copies, the way code without the bridge does
  it: ``t.numpy()`` -> ``torch.from_numpy`` -> ``x.numpy()`` -> ``tf.constant`` (on GPU the torch
  tensor is moved to the GPU and back, ``.to(cuda)`` / ``.cpu()``);
- ``copied_bytes``: bytes the DLPack round trip copied, measured from data pointers: each hop
  (TF -> torch, torch -> TF) whose output buffer address differs from its input's counts that
  tensor's size; 0 means all three tensors share one buffer. ``numpy_copied_bytes`` is the
  same count for the numpy round trip;
- ``link_step_ms``: one link step on an (N, k) complex64 tensor of the same size
  (``phy.normalize_power`` + ``phy.AWGNChannel()`` + ZF ``phy.equalize``), run eagerly as
  ``phy.TFModule`` runs it, and ``link_step_graph_ms`` for the same step under ``tf.function``;
- ``bridge_share`` = ``dlpack_ms`` / the faster of the two link-step times (goal <= 0.01).

At 1e7 values the exchange is cheap next to anything, so the same measurements are repeated at the
sizes a sweep actually moves (``--sweep-sizes``, default ``16x16,16x64,16x512``: one task's batch of
16 images at rho 1/192, 1/48 and 1/6), in ``sweep_sizes``: per size ``bridge_share`` as above, and
``tfmodule_share``, the whole cost of crossing the bridge the way a sweep does (``phy.TFModule``
around the channel, torch in and out, with its gradient tape) over the channel alone called in
TensorFlow: ``(tfmodule_ms - channel_ms) / channel_ms``. ``bridge_share_sweep_max`` and
``tfmodule_share_sweep_max`` are the largest over those sizes. At these sizes the five
measurements alternate within each repetition (median of at least 100).

Every timing is the median of ``--reps`` single runs after a warm-up; on GPU each run ends with a
device synchronisation. The human-readable table comes first; the last line of stdout is one
JSON object.

Run::

    .venv/bin/python benchmarks/bridge.py                 # CPU, 1e7 values, 20 reps
    .venv/bin/python benchmarks/bridge.py --device gpu    # needs CUDA in both TF and torch
    .venv/bin/python benchmarks/bridge.py --n 1000000 --reps 50
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from singlink import phy  # noqa: E402  (first: configures TensorFlow)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402


# --- data pointers -----------------------------------------------------------------------------
# A TensorFlow tensor's buffer address, read from the DLPack capsule TensorFlow exports (the
# DLTensor's ``data + byte_offset``), without handing the capsule to torch.
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def tf_data_ptr(t: tf.Tensor) -> int:
    capsule = tf.experimental.dlpack.to_dlpack(t)
    dl = _DLTensor.from_address(_capsule_pointer(capsule, b"dltensor"))  # DLManagedTensor starts with it
    return int(dl.data or 0) + int(dl.byte_offset)


def copied_bytes_of(hops):
    """Sum of the sizes of the hops (src_ptr, dst_ptr, nbytes) whose buffers differ."""
    return sum(nbytes for src, dst, nbytes in hops if src != dst)


# --- timing ------------------------------------------------------------------------------------
def median_ms(fn, reps: int, sync, warmup: int = 2):
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), times


def interleaved_median_ms(fns: dict, reps: int, sync, warmup: int = 2) -> dict:
    """Median ms of each of ``fns`` ({name: fn}), run in turn within every repetition so that a
    change in the machine's load affects them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def device_info(device: str) -> dict:
    import sionna

    info = {"device": device, "tensorflow": tf.__version__, "torch": torch.__version__,
            "sionna": sionna.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "machine": platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        info["cpu"] = platform.processor() or None
    if device == "gpu":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--n", type=float, default=1e7, help="complex64 values (default 1e7)")
    p.add_argument("--rows", type=int, default=1000,
                   help="N of the (N, k) link-step tensor; k = n / N (default 1000)")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per measurement (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep-sizes", default="16x16,16x64,16x512",
                   help="ROWSxK sizes a sweep moves per task (default %(default)s)")
    args = p.parse_args(argv)
    try:
        sweep_sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sweep_sizes.split(",") if s.strip()]
        if any(len(s) != 2 or min(s) < 1 for s in sweep_sizes):
            raise ValueError
    except ValueError:
        p.error(f"--sweep-sizes must be a comma list of ROWSxK with positive integers, got {args.sweep_sizes!r}")

    n = int(args.n)
    if n < 1 or args.rows < 1 or args.reps < 1:
        p.error("--n, --rows and --reps must be >= 1")
    if n % args.rows:
        p.error(f"--n ({n}) must be a multiple of --rows ({args.rows}): the link step uses an (N, k) tensor")
    rows, k = args.rows, n // args.rows

    if args.device == "gpu":
        tf_gpus = tf.config.list_logical_devices("GPU")
        if not tf_gpus or not torch.cuda.is_available():
            p.error("--device gpu needs CUDA in both frameworks, but "
                    f"TensorFlow sees {len(tf_gpus)} GPU(s) and torch.cuda.is_available() is "
                    f"{torch.cuda.is_available()}; install CUDA builds of tensorflow and torch, "
                    "or run with --device cpu")
        tf_dev, torch_dev = "/GPU:0", torch.device("cuda", 0)

        def sync():
            tf.test.experimental.sync_devices()
            torch.cuda.synchronize()
    else:
        tf_dev, torch_dev = "/CPU:0", torch.device("cpu")

        def sync():
            pass

    phy.set_seed(args.seed)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    with tf.device(tf_dev):
        rng = tf.random.Generator.from_seed(args.seed)
        t = tf.complex(rng.normal([rows, k]), rng.normal([rows, k]))  # (N, k) complex64
    nbytes = n * t.dtype.size
    sync()

    # --- DLPack round trip -------------------------------------------------------------------
    def dlpack_roundtrip():
        return phy.torch_to_tf(phy.tf_to_torch(t))

    x = phy.tf_to_torch(t)
    t2 = phy.torch_to_tf(x)
    sync()
    p_t, p_x, p_t2 = tf_data_ptr(t), x.data_ptr(), tf_data_ptr(t2)
    dl_copied = copied_bytes_of([(p_t, p_x, nbytes), (p_x, p_t2, nbytes)])
    if not bool(tf.reduce_all(tf.equal(t, t2))):
        raise RuntimeError("DLPack round trip changed the values")
    del x, t2

    # --- numpy round trip (host copies) ------------------------------------------------------
    def numpy_roundtrip(record=None):
        a = t.numpy()
        xn = torch.from_numpy(a)
        if torch_dev.type == "cuda":
            xn = xn.to(torch_dev)
            b = xn.cpu().numpy()
        else:
            b = xn.numpy()
        with tf.device(tf_dev):
            out = tf.constant(b)
            if tf_dev != "/CPU:0":
                out = tf.identity(out)  # make sure it lands on the GPU
        if record is not None:
            record.update(a=a, xn=xn, b=b, out=out)
        return out

    r = {}
    numpy_roundtrip(r)
    sync()
    # On GPU the torch hop goes host -> device -> host; compare the addresses hop by hop.
    np_hops = [(tf_data_ptr(t), r["a"].ctypes.data, nbytes),
               (r["a"].ctypes.data, r["xn"].data_ptr(), nbytes),
               (r["xn"].data_ptr(), r["b"].ctypes.data, nbytes),
               (r["b"].ctypes.data, tf_data_ptr(r["out"]), nbytes)]
    np_copied = copied_bytes_of(np_hops)
    del r

    # --- one link step at the same size ------------------------------------------------------
    channel = phy.AWGNChannel()
    snr_db = 10.0

    def link_step(z):
        zn = phy.normalize_power(z)
        y, h = channel(zn, snr_db)
        z_hat, _ = phy.equalize(y, h, snr_db, "zf")
        return z_hat

    link_step_graph = tf.function(link_step)

    def run_eager():
        with tf.device(tf_dev):
            return link_step(t)

    def run_graph():
        with tf.device(tf_dev):
            return link_step_graph(t)

    dlpack_ms, dl_times = median_ms(dlpack_roundtrip, args.reps, sync)
    numpy_ms, np_times = median_ms(numpy_roundtrip, args.reps, sync)
    step_ms, step_times = median_ms(run_eager, args.reps, sync)
    graph_ms, graph_times = median_ms(run_graph, args.reps, sync)
    bridge_share = dlpack_ms / min(step_ms, graph_ms)

    # --- the sizes a sweep moves ---------------------------------------------------------------
    sweep = []
    module = phy.TFModule(channel)
    reps_small = max(args.reps, 100)  # small timings: more repetitions for a steady median
    for rows_s, k_s in sweep_sizes:
        with tf.device(tf_dev):
            ts = tf.complex(rng.normal([rows_s, k_s]), rng.normal([rows_s, k_s]))
        xs = phy.tf_to_torch(ts).clone()
        step_s = tf.function(link_step)

        def rt():
            return phy.torch_to_tf(phy.tf_to_torch(ts))

        def eager_s():
            with tf.device(tf_dev):
                return link_step(ts)

        def graph_s():
            with tf.device(tf_dev):
                return step_s(ts)

        def channel_tf():
            with tf.device(tf_dev):
                return channel(ts, snr_db)

        def channel_torch():
            with torch.no_grad():
                return module(xs, snr_db)

        m = interleaved_median_ms({"dlpack": rt, "eager": eager_s, "graph": graph_s, "channel": channel_tf,
                                   "tfmodule": channel_torch}, reps_small, sync)
        d_ms, e_ms, g_ms, c_ms, m_ms = (m[k] for k in ("dlpack", "eager", "graph", "channel", "tfmodule"))
        sweep.append({"shape": [rows_s, k_s], "dlpack_ms": d_ms, "link_step_ms": e_ms, "link_step_graph_ms": g_ms,
                      "bridge_share": d_ms / min(e_ms, g_ms), "channel_ms": c_ms, "tfmodule_ms": m_ms,
                      "tfmodule_share": (m_ms - c_ms) / c_ms})

    res = {
        "benchmark": "bridge",
        "n_values": n,
        "shape": [rows, k],
        "dtype": "complex64",
        "bytes": nbytes,
        "reps": args.reps,
        "dlpack_ms": dlpack_ms,
        "numpy_ms": numpy_ms,
        "speedup": numpy_ms / dlpack_ms if dlpack_ms > 0 else None,
        "copied_bytes": dl_copied,
        "numpy_copied_bytes": np_copied,
        "link_step_ms": step_ms,
        "link_step_graph_ms": graph_ms,
        "bridge_share": bridge_share,
        "bridge_share_goal": 0.01,
        "sweep_sizes": sweep,
        "bridge_share_sweep_max": max((r["bridge_share"] for r in sweep), default=None),
        "tfmodule_share_sweep_max": max((r["tfmodule_share"] for r in sweep), default=None),
        "dlpack_ms_min_max": [min(dl_times), max(dl_times)],
        "numpy_ms_min_max": [min(np_times), max(np_times)],
        "link_step_ms_min_max": [min(step_times), max(step_times)],
        "seed": args.seed,
        **device_info(args.device),
    }

    print(f"TF <-> torch bridge, {n:.3g} complex64 values ({nbytes / 1e6:.0f} MB), "
          f"device {args.device}, median of {args.reps} reps")
    print(f"  {'measurement':<44}{'ms':>12}{'copied bytes':>16}")
    print(f"  {'DLPack  tf_to_torch -> torch_to_tf':<44}{dlpack_ms:>12.4f}{dl_copied:>16,}")
    print(f"  {'numpy   .numpy -> from_numpy -> tf.constant':<44}{numpy_ms:>12.3f}{np_copied:>16,}")
    print(f"  {f'link step {rows}x{k} eager (norm+AWGN+ZF)':<44}{step_ms:>12.3f}")
    print(f"  {f'link step {rows}x{k} tf.function':<44}{graph_ms:>12.3f}")
    print(f"  bridge_share = DLPack / faster link step = {bridge_share:.2e} (goal <= 0.01); "
          f"DLPack is {res['speedup']:.0f}x faster than the numpy round trip")
    print(f"  at the sizes a sweep moves (median of {reps_small}):")
    print(f"  {'rows x k':<12}{'DLPack ms':>11}{'step ms':>10}{'bridge_share':>14}{'channel ms':>12}{'TFModule ms':>13}"
          f"{'tfmodule_share':>16}")
    for r in sweep:
        print(f"  {'x'.join(map(str, r['shape'])):<12}{r['dlpack_ms']:>11.4f}{min(r['link_step_ms'], r['link_step_graph_ms']):>10.3f}"
              f"{r['bridge_share']:>14.2e}{r['channel_ms']:>12.3f}{r['tfmodule_ms']:>13.3f}{r['tfmodule_share']:>16.2f}")
    sys.stdout.flush()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
