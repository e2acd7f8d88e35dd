"""How a sweep scales on Ray: cells per second with 2 workers over 1 worker, on the same small
sweep, measured side by side in one run (goal: speedup_2_workers >= 1.7 on 2 cores).

    .venv/bin/python benchmarks/sweep_scaling.py [--images 16] [--steps 20] [--snr -5,-3,-1,1,3,5] [--runs 3]

The 1- and 2-worker measurements alternate (1, 2, 1, 2, ...) for ``--runs`` pairs, so that a change
in the machine's load affects both alike; ``speedup_2_workers`` is the median of the pairs'
speedups, ``cells_per_s_*`` the medians of each worker count, and every pair's numbers are listed.

A cell is one method at one (rho, SNR, channel, realisation) over all images (batch = images, so
a cell is one Ray task). For each worker count a local Ray cluster is started (``ray.init`` with
that many CPUs), its workers are warmed up (imports, data, models: a worker's one-off start-up,
which a long sweep amortises), then every cell of the sweep runs through the same path as
``singlink sweep --ray`` (``run_on_ray`` and ``record``), rows going to a fresh store. Last line: a JSON object.
"""
import argparse
import json
import statistics
import tempfile
import time


def warm_up(cfg, mean, workers: int):
    """Run one cell on each worker, concurrently (each holds its CPU until all have loaded)."""
    import ray

    from singlink.sweep.tasks import Task, execute

    @ray.remote(num_cpus=1)
    def load(task):
        execute(task, cfg, mean)
        time.sleep(3.0)  # keep this worker busy so that the next warm-up lands on another one
        return True

    task = Task(cfg.methods[-1], cfg.rho[0], float(cfg.snr[0]), cfg.channel[0], 0, 0, (0,))
    ray.get([load.remote(task) for _ in range(workers)])


def cells_per_second(cfg, workers: int) -> tuple[float, int]:
    from singlink.provenance import code_version
    from singlink.sweep.command import connect_ray, record, run_on_ray
    from singlink.sweep.store import ResultStore
    from singlink.sweep.tasks import plan

    ray = connect_ray("local", workers)
    try:
        warm_up(cfg, None, workers)
        with tempfile.TemporaryDirectory() as out:
            store = ResultStore(out)
            store.open_run(cfg.settings, cfg.to_dict(), code_version(), f"benchmark ray:local x{workers}")
            tasks = plan(cfg, set())
            t0 = time.perf_counter()
            record(run_on_ray(ray, tasks, cfg, None), tasks, cfg, store, desc=f"{workers} worker(s)", leave=False)
            elapsed = time.perf_counter() - t0
            store.close()
    finally:
        ray.shutdown()
    return len(tasks) / elapsed, len(tasks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="16")
    ap.add_argument("--steps", default="20")
    ap.add_argument("--snr", default="-5,-3,-1,1,3,5")
    ap.add_argument("--runs", type=int, default=3, help="alternating 1-/2-worker pairs (median; default %(default)s)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    from singlink.sweep import build_config

    cfg = build_config(overrides={"methods": "deepjscc,sing-zero", "snr": args.snr, "images": args.images,
                                  "batch": args.images, "steps": args.steps, "examples": 0})
    pairs = []
    for i in range(args.runs):
        one, cells = cells_per_second(cfg, 1)
        two, _ = cells_per_second(cfg, 2)
        pairs.append((one, two))
        print(f"run {i + 1}/{args.runs}, {cells} cells: {one:.3f} cells/s with 1 worker, {two:.3f} with 2, "
              f"speedup {two / one:.3f}", flush=True)
    one = statistics.median(p[0] for p in pairs)
    two = statistics.median(p[1] for p in pairs)
    speedups = [b / a for a, b in pairs]
    print(f"median of {args.runs}: {one:.3f} cells/s with 1 worker, {two:.3f} with 2, speedup "
          f"{statistics.median(speedups):.3f} (range {min(speedups):.3f}-{max(speedups):.3f})")
    print(json.dumps({"cells": cells, "images_per_cell": cfg.images, "steps": cfg.steps, "runs": args.runs,
                      "cells_per_s_1_worker": round(one, 4), "cells_per_s_2_workers": round(two, 4),
                      "speedup_2_workers": round(statistics.median(speedups), 3),
                      "speedup_2_workers_min_max": [round(min(speedups), 3), round(max(speedups), 3)],
                      "pairs": [{"cells_per_s_1_worker": round(a, 4), "cells_per_s_2_workers": round(b, 4)}
                                for a, b in pairs],
                      "goal": 1.7}))


if __name__ == "__main__":
    main()
