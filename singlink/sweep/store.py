"""The sweep's results store: one SQLite file, ``results.sqlite`` in the sweep's ``--out``.

SQLite because it gives what an append-only store needs for free: each task's rows go in with one
transaction (a kill mid-write rolls back on the next open, so a crash loses at most the rows in
flight), the primary key makes a rerun that recomputes a row a no-op (no duplicates), and pandas,
the notebook and the ``sqlite3`` shell read it directly.

Tables
------
``meta``     key/value: the row-affecting settings (``settings``, JSON), the failure mean image
             of the separation baselines (``mean_image``, float32 bytes)
``runs``     one row per invocation: its full config, code version, executor and start time
``rows``     one row per (method, rho, snr_db, channel, image_id, realization, seed):
             psnr, ms_ssim, lpips, channel_uses, bits_sent, status, wall_s and the run that made it
``examples`` reconstructions (PNG bytes) of the first images of each cell, realisation 0
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from ..errors import UsageError

STORE_NAME = "results.sqlite"
KEY = ("method", "rho", "snr_db", "channel", "image_id", "realization", "seed")
VALUES = ("psnr", "ms_ssim", "lpips", "channel_uses", "bits_sent", "status", "wall_s")
COLUMNS = KEY + VALUES + ("run_id",)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS runs (run_id INTEGER PRIMARY KEY, started TEXT, config TEXT, version TEXT, executor TEXT);
CREATE TABLE IF NOT EXISTS rows (
    method TEXT, rho TEXT, snr_db REAL, channel TEXT, image_id INTEGER, realization INTEGER, seed INTEGER,
    psnr REAL, ms_ssim REAL, lpips REAL, channel_uses INTEGER, bits_sent INTEGER, status TEXT, wall_s REAL,
    run_id INTEGER, PRIMARY KEY ({", ".join(KEY)}));
CREATE TABLE IF NOT EXISTS examples (
    method TEXT, rho TEXT, snr_db REAL, channel TEXT, image_id INTEGER, seed INTEGER, png BLOB,
    PRIMARY KEY (method, rho, snr_db, channel, image_id, seed));
"""


class ResultStore:
    """``ResultStore(folder)``: the store in ``folder``. Reading never writes; :meth:`open_run`
    checks the settings before its first write."""

    def __init__(self, folder):
        self.path = Path(folder) / STORE_NAME
        self._db = None
        self.run_id = None

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        if readonly:
            return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA synchronous = FULL")
        return db

    def settings(self) -> dict | None:
        """The row-affecting settings the store was made with, or None for a new store."""
        if not self.exists:
            return None
        try:
            with self._connect(readonly=True) as db:
                row = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        except sqlite3.DatabaseError as e:
            raise UsageError(f"{self.path} is not a singlink results store ({e}); choose another --out") from None
        return json.loads(row[0]) if row else None

    def check_settings(self, settings: dict) -> None:
        """Refuse (one line) to add rows made under other settings than the stored ones."""
        stored = self.settings()
        if stored is None:
            return
        diff = [f"{k}={stored.get(k)!r} (now {settings.get(k)!r})" for k in sorted(set(stored) | set(settings))
                if stored.get(k) != settings.get(k)]
        if diff:
            raise UsageError(f"the store in {self.path.parent} was made with {', '.join(diff)}; rerun with those "
                             f"settings to resume, or give another --out")

    def open_run(self, settings: dict, config: dict, version: dict, executor: str) -> int:
        """Open for writing (creating the store if needed) and record this invocation."""
        self.check_settings(settings)
        self._db = self._connect(readonly=False)
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('settings', ?)", (json.dumps(settings, sort_keys=True),))
            cur = self._db.execute("INSERT INTO runs (started, config, version, executor) VALUES (?, ?, ?, ?)",
                                   (time.strftime("%Y-%m-%dT%H:%M:%S%z"), json.dumps(config, sort_keys=True),
                                    json.dumps(version, sort_keys=True), executor))
        self.run_id = cur.lastrowid
        return self.run_id

    def get_blob(self, key: str) -> bytes | None:
        if self._db is not None:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        elif self.exists:
            with self._connect(readonly=True) as db:
                row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        else:
            row = None
        return None if row is None else bytes(row[0])

    def put_blob(self, key: str, value: bytes) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def add(self, rows: list[dict], examples: list[dict] = ()) -> int:
        """Store one task's rows and example images in one transaction; rows already present
        are kept as they are. Returns the number of new rows."""
        with self._db:
            before = self._db.total_changes
            self._db.executemany(f"INSERT OR IGNORE INTO rows VALUES ({', '.join('?' * len(COLUMNS))})",
                                 [tuple(r[c] for c in KEY + VALUES) + (self.run_id,) for r in rows])
            added = self._db.total_changes - before
            self._db.executemany("INSERT OR IGNORE INTO examples VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [(e["method"], e["rho"], e["snr_db"], e["channel"], e["image_id"], e["seed"],
                                   e["png"]) for e in examples])
        return added

    def done_keys(self) -> set[tuple]:
        """The keys of the stored rows."""
        if not self.exists or self.settings() is None:
            return set()
        with self._connect(readonly=True) as db:
            return set(db.execute(f"SELECT {', '.join(KEY)} FROM rows"))

    def rows(self, where: str = "", params=()) -> list[dict]:
        """Stored rows as dicts (optionally filtered by an SQL ``where`` clause)."""
        if not self.exists or self.settings() is None:
            return []
        with self._connect(readonly=True) as db:
            cur = db.execute(f"SELECT {', '.join(COLUMNS)} FROM rows {where} ORDER BY {', '.join(KEY)}", params)
            return [dict(zip(COLUMNS, r)) for r in cur]

    def examples(self) -> list[dict]:
        if not self.exists or self.settings() is None:
            return []
        with self._connect(readonly=True) as db:
            cur = db.execute("SELECT method, rho, snr_db, channel, image_id, seed, png FROM examples")
            return [dict(zip(("method", "rho", "snr_db", "channel", "image_id", "seed", "png"), r)) for r in cur]

    def runs(self) -> list[dict]:
        if not self.exists or self.settings() is None:
            return []
        with self._connect(readonly=True) as db:
            cur = db.execute("SELECT run_id, started, config, version, executor FROM runs ORDER BY run_id")
            return [{"run_id": r[0], "started": r[1], "config": json.loads(r[2]), "version": json.loads(r[3]),
                     "executor": r[4]} for r in cur]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
