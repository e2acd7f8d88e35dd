"""Monte Carlo sweeps (``singlink sweep``): config, results store, tasks, report.

    >>> from singlink.sweep import load_sweep
    >>> cfg, rows = load_sweep("runs/sweep")      # the last run's config and its grid's rows
"""
from .config import SweepConfig, build_config, preset_names
from .report import SUMMARY_COLUMNS, in_grid, label, summarize
from .store import ResultStore


def load_sweep(out):
    """``(config, rows)`` of the sweep stored in folder ``out``: the config of its latest run and
    the stored rows of that config's grid (dicts with the store's columns)."""
    from ..errors import UsageError

    store = ResultStore(out)
    runs = store.runs()
    if not runs:
        raise UsageError(f"no sweep results in {out} (no {store.path.name}); run singlink sweep --out {out}")
    raw = dict(runs[-1]["config"])
    family = raw.get("family")  # runs before the family dimension recorded None or one name
    raw["family"] = (family,) if isinstance(family, str) else family or ()
    cfg = SweepConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    return cfg, in_grid(store.rows(), cfg)


__all__ = ["SweepConfig", "build_config", "preset_names", "ResultStore", "SUMMARY_COLUMNS", "in_grid", "label",
           "summarize", "load_sweep"]
