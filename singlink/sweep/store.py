"""The sweep's results store: one SQLite file, ``results.sqlite`` in the sweep's ``--out``.

SQLite because it gives what an append-only store needs for free: each task's rows go in with one
transaction (a kill mid-write rolls back on the next open, so a crash loses at most the rows in
flight), the primary key makes a rerun that recomputes a row a no-op (no duplicates), and pandas,
the notebook and the ``sqlite3`` shell read it directly.

Identity: a store holds one or more *series* of results. A series is fixed by everything that
changes a row's numbers: the row-affecting settings (:data:`.config.ROW_SETTINGS`) and the
*identity*, a fingerprint of the resolved data (the data-related config keys and a sha256 of the
uint8 pixels of every image the grid uses, per image), of the weights (the sha256 of every
checkpoint, prior and INN the grid loads, per name) and of the phy backend (``sionna-tf`` or
``sionna-torch``, and Sionna's version: the two draw different noise, so their rows never mix). A
rerun resumes the latest series when they all agree where both know them (the grid may grow: new
images and checkpoints are added to the fingerprint; a store from before the backend was recorded
counts as sionna-tf's, the only backend then); any disagreement is refused with one line naming what changed, unless the run asks
for a new series (``singlink sweep --new-run``), which is recorded with its reason. Rows of
different series are never summarised together: the report reads the latest series only.

Tables
------
``meta``     key/value: ``schema`` (3), ``settings`` (series 1's, JSON; kept for older readers),
             the failure mean image of the separation baselines (``mean_image``, float32 bytes;
             ``mean_image.<series>`` for later series)
``series``   one row per series: its settings and identity (JSON), start time and reason
``runs``     one row per invocation: its full config, code version, executor, start time, series
``rows``     one row per (series_id, method, family, rho, snr_db, channel, image_id, realization, seed):
             psnr, ms_ssim, lpips (AlexNet), lpips_vgg, channel_uses, bits_sent, status, wall_s and the
             run that made it. ``family`` is the DeepJSCC codec family the row's codec was picked by
             (``perceptual``, ``mse``), or "" for the canonically named codec and for the separation
             baselines, which use no codec
``examples`` reconstructions (PNG bytes) of the first images of each cell, realisation 0

Older stores are read as they are and migrated on their next write: schema 1 (before series: no
``series`` table, no ``series_id`` column) as one series 1 whose identity is unknown; schema 1 and 2
(before the family dimension and LPIPS-VGG) with each row's family taken from the config of the run
that made it ("" where that run named none) and lpips_vgg NULL (not measured).
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from ..errors import UsageError

STORE_NAME = "results.sqlite"
SCHEMA_VERSION = 3
KEY = ("method", "family", "rho", "snr_db", "channel", "image_id", "realization", "seed")
VALUES = ("psnr", "ms_ssim", "lpips", "lpips_vgg", "channel_uses", "bits_sent", "status", "wall_s")
COLUMNS = KEY + VALUES + ("run_id",)
EXAMPLE_COLUMNS = ("method", "family", "rho", "snr_db", "channel", "image_id", "seed", "png")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS series (series_id INTEGER PRIMARY KEY, started TEXT, settings TEXT, identity TEXT,
    reason TEXT);
CREATE TABLE IF NOT EXISTS runs (run_id INTEGER PRIMARY KEY, started TEXT, config TEXT, version TEXT, executor TEXT,
    series_id INTEGER DEFAULT 1);
CREATE TABLE IF NOT EXISTS rows (
    series_id INTEGER DEFAULT 1,
    method TEXT, family TEXT DEFAULT '', rho TEXT, snr_db REAL, channel TEXT, image_id INTEGER, realization INTEGER,
    seed INTEGER, psnr REAL, ms_ssim REAL, lpips REAL, lpips_vgg REAL, channel_uses INTEGER, bits_sent INTEGER, status TEXT, wall_s REAL,
    run_id INTEGER, PRIMARY KEY (series_id, {", ".join(KEY)}));
CREATE TABLE IF NOT EXISTS examples (
    series_id INTEGER DEFAULT 1,
    method TEXT, family TEXT DEFAULT '', rho TEXT, snr_db REAL, channel TEXT, image_id INTEGER, seed INTEGER, png BLOB,
    PRIMARY KEY (series_id, method, family, rho, snr_db, channel, image_id, seed));
"""

_SHORT = 12  # hex digits of a sha256 shown in messages


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _columns(db, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def identity_changes(stored: dict | None, now: dict | None) -> list[str]:
    """What differs between two identities (:mod:`module docstring <.store>`), as short phrases;
    only what both know is compared (a grid that grows adds images and checkpoints)."""
    if not stored or not now:
        return []
    out = []
    sd, nd = stored.get("data", {}), now.get("data", {})
    ss, ns = sd.get("spec", {}), nd.get("spec", {})
    for k in sorted(set(ss) & set(ns)):
        if ss[k] != ns[k]:
            out.append(f"data {k}={ss[k]!r} (now {ns[k]!r})")
    si, ni = sd.get("images", {}), nd.get("images", {})
    changed = sorted((i for i in set(si) & set(ni) if si[i] != ni[i]), key=lambda i: int(i))
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        where = f" (made from {sd['root']}, now {nd['root']})" if sd.get("root") != nd.get("root") else ""
        out.append(f"data: the pixels of image(s) {shown} differ{where}")
    sw, nw = stored.get("weights", {}), now.get("weights", {})
    for name in sorted(set(sw) & set(nw)):
        if sw[name] != nw[name]:
            out.append(f"weights of {name} (sha256 {str(sw[name])[:_SHORT]}, now {str(nw[name])[:_SHORT]})")
    # the phy backend and its Sionna: stores from before it was recorded were all made on sionna-tf,
    # the only backend then
    sp, np_ = stored.get("phy", {"backend": "sionna-tf"}), now.get("phy", {})
    for k in sorted(set(sp) & set(np_)):
        if sp[k] != np_[k]:
            out.append(f"phy {k} {sp[k]} (now {np_[k]})")
    return out


def merge_identity(stored: dict | None, now: dict) -> dict:
    """``stored`` extended by what ``now`` adds (new images, new checkpoints)."""
    if not stored:
        return now
    data = dict(stored.get("data", {}))
    data["spec"] = {**now.get("data", {}).get("spec", {}), **data.get("spec", {})}
    data["images"] = {**now.get("data", {}).get("images", {}), **data.get("images", {})}
    data.setdefault("root", now.get("data", {}).get("root"))
    merged = {"data": data, "weights": {**now.get("weights", {}), **stored.get("weights", {})}}
    phy = {**now.get("phy", {}), **stored.get("phy", {})}
    return merged | ({"phy": phy} if phy else {})


def needs_migration(db) -> bool:
    """Whether ``db`` holds rows in an older schema than :data:`SCHEMA_VERSION`."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return "rows" in tables and not {"series_id", "family", "lpips_vgg"} <= _columns(db, "rows")


def migrate(db) -> None:
    """Bring a schema 1 or 2 store to schema 3, in one transaction, rows keeping their values
    (module docstring). SQLite cannot change a primary key in place, so the rows and examples
    tables are rebuilt."""
    if not needs_migration(db):
        return
    from .config import BASELINE_METHODS

    cols = _columns(db, "rows")
    series = "series_id" if "series_id" in cols else "1"
    db.execute("BEGIN IMMEDIATE")
    try:
        if "series_id" not in cols:
            row = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
            db.execute("CREATE TABLE IF NOT EXISTS series (series_id INTEGER PRIMARY KEY, started TEXT, settings TEXT, "
                       "identity TEXT, reason TEXT)")
            if row:
                db.execute("INSERT OR IGNORE INTO series VALUES (1, NULL, ?, NULL, 'made before store identities')",
                           (row[0],))
        if "series_id" not in _columns(db, "runs"):
            db.execute("ALTER TABLE runs ADD COLUMN series_id INTEGER DEFAULT 1")
        baselines = ", ".join(f"'{m}'" for m in BASELINE_METHODS)
        family = "family" if "family" in cols else (
            f"CASE WHEN method IN ({baselines}) THEN '' ELSE COALESCE((SELECT json_extract(runs.config, '$.family') "
            f"FROM runs WHERE runs.run_id = rows_old.run_id), '') END")
        select = {"series_id": series, "family": family, "lpips_vgg": "lpips_vgg" if "lpips_vgg" in cols else "NULL"}
        db.execute("ALTER TABLE rows RENAME TO rows_old")
        db.execute([s for s in _SCHEMA.split(";") if "EXISTS rows (" in s][0])
        db.execute(f"INSERT INTO rows (series_id, {', '.join(COLUMNS)}) SELECT "
                   f"{', '.join(select.get(c, c) for c in ('series_id',) + COLUMNS)} FROM rows_old")
        db.execute("DROP TABLE rows_old")
        ecols = _columns(db, "examples")
        # an example takes the family of the row of the same image and cell
        efamily = "family" if "family" in ecols else (
            f"COALESCE((SELECT r.family FROM rows r WHERE r.series_id = {series} AND r.method = e.method AND "
            f"r.rho = e.rho AND r.snr_db = e.snr_db AND r.channel = e.channel AND r.image_id = e.image_id AND "
            f"r.seed = e.seed LIMIT 1), '')")
        eselect = {"series_id": series, "family": efamily}
        db.execute("ALTER TABLE examples RENAME TO examples_old")
        db.execute([s for s in _SCHEMA.split(";") if "EXISTS examples (" in s][0])
        db.execute(f"INSERT INTO examples (series_id, {', '.join(EXAMPLE_COLUMNS)}) SELECT "
                   f"{', '.join(eselect.get(c, c) for c in ('series_id',) + EXAMPLE_COLUMNS)} FROM examples_old e")
        db.execute("DROP TABLE examples_old")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.commit()
    except BaseException:
        db.rollback()
        raise


class ResultStore:
    """``ResultStore(folder)``: the store in ``folder``. Reading never writes; :meth:`open_run`
    checks the settings and identity before its first write."""

    def __init__(self, folder):
        self.path = Path(folder) / STORE_NAME
        self._db = None
        self.run_id = None
        self.series_id = None

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        if readonly:
            return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA synchronous = FULL")
        return db

    def _read(self, fn):
        """``fn(db)`` on a read-only connection (the open write connection if there is one);
        a file that is not a singlink store is one line of error."""
        if self._db is not None:
            return fn(self._db)
        try:
            db = self._connect(readonly=True)
            try:
                if needs_migration(db):  # an older store is read as migrated, in a copy in memory
                    mem = sqlite3.connect(":memory:")
                    db.backup(mem)
                    db.close()
                    db = mem
                    migrate(db)
                return fn(db)
            finally:
                db.close()
        except sqlite3.DatabaseError as e:
            raise UsageError(f"{self.path} is not a singlink results store ({e}); choose another --out") from None

    def _series_list(self, db) -> list[dict]:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "series" in tables:
            cur = db.execute("SELECT series_id, started, settings, identity, reason FROM series ORDER BY series_id")
            return [{"series_id": r[0], "started": r[1], "settings": json.loads(r[2]),
                     "identity": json.loads(r[3]) if r[3] else None, "reason": r[4]} for r in cur]
        if "meta" not in tables:
            return []
        row = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        return [{"series_id": 1, "started": None, "settings": json.loads(row[0]), "identity": None,
                 "reason": None}] if row else []

    def series(self) -> list[dict]:
        """The store's series, oldest first: dicts with series_id, started, settings, identity, reason."""
        if not self.exists:
            return []
        return self._read(self._series_list)

    def latest_series(self) -> dict | None:
        s = self.series()
        return s[-1] if s else None

    def settings(self) -> dict | None:
        """The row-affecting settings of the store's latest series, or None for a new store."""
        latest = self.latest_series()
        return None if latest is None else latest["settings"]

    def changes(self, settings: dict, identity: dict | None = None) -> list[str]:
        """What differs between the latest series and these settings and identity (empty: a resume)."""
        latest = self.latest_series()
        if latest is None:
            return []
        stored = latest["settings"]
        diff = [f"{k}={stored.get(k)!r} (now {settings.get(k)!r})" for k in sorted(set(stored) | set(settings))
                if stored.get(k) != settings.get(k)]
        return diff + identity_changes(latest["identity"], identity)

    RESUME_ADVICE = ("resume with the same settings, data and weights, give a new --out, or pass --new-run to start "
                     "a new run in this store (summarised apart from the old rows)")

    def check_settings(self, settings: dict, identity: dict | None = None, new_run: bool = False,
                       advice: str = RESUME_ADVICE) -> None:
        """Refuse (one line, ending in ``advice``) rows made under other settings, data or weights
        than the latest series' (nothing to refuse with ``new_run``: a new series starts)."""
        diff = self.changes(settings, identity)
        if diff and not new_run:
            raise UsageError(f"the store in {self.path.parent} was made with {'; '.join(diff)}; {advice}")

    def _migrate(self) -> None:
        """Bring the open store to the current schema (:func:`migrate`)."""
        migrate(self._db)

    def open_run(self, settings: dict, config: dict, version: dict, executor: str, identity: dict | None = None,
                 new_run: bool = False) -> int:
        """Open for writing (creating the store if needed) and record this invocation: it resumes
        the latest series, or starts a new one (a new store, or ``new_run``). Returns the run id."""
        self.check_settings(settings, identity, new_run)
        latest = self.latest_series()
        self._db = self._connect(readonly=False)
        self._migrate()
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('settings', ?)",
                             (json.dumps(settings, sort_keys=True),))
            if latest is None or new_run:
                reason = "new store" if latest is None else "--new-run: " + (
                    "; ".join(self.changes(settings, identity)) or "same settings, data and weights")
                cur = self._db.execute("INSERT INTO series (started, settings, identity, reason) VALUES (?, ?, ?, ?)",
                                       (_now(), json.dumps(settings, sort_keys=True),
                                        json.dumps(identity, sort_keys=True) if identity else None, reason))
                self.series_id = cur.lastrowid
            else:
                self.series_id = latest["series_id"]
                if identity:
                    merged = merge_identity(latest["identity"], identity)
                    self._db.execute("UPDATE series SET identity = ? WHERE series_id = ?",
                                     (json.dumps(merged, sort_keys=True), self.series_id))
            cur = self._db.execute("INSERT INTO runs (started, config, version, executor, series_id) "
                                   "VALUES (?, ?, ?, ?, ?)",
                                   (_now(), json.dumps(config, sort_keys=True), json.dumps(version, sort_keys=True),
                                    executor, self.series_id))
        self.run_id = cur.lastrowid
        return self.run_id

    def _blob_key(self, key: str) -> str:
        return key if (self.series_id or 1) == 1 else f"{key}.{self.series_id}"

    def get_blob(self, key: str) -> bytes | None:
        """A meta value of the current series (``key`` for series 1, ``key.<n>`` for series n)."""
        if not self.exists:
            return None
        row = self._read(lambda db: db.execute("SELECT value FROM meta WHERE key = ?",
                                               (self._blob_key(key),)).fetchone())
        return None if row is None else bytes(row[0])

    def put_blob(self, key: str, value: bytes) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (self._blob_key(key), value))

    def add(self, rows: list[dict], examples: list[dict] = ()) -> int:
        """Store one task's rows and example images in one transaction (in the current series);
        rows already present are kept as they are. Returns the number of new rows."""
        with self._db:
            before = self._db.total_changes
            self._db.executemany(f"INSERT OR IGNORE INTO rows (series_id, {', '.join(COLUMNS)}) "
                                 f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
                                 [(self.series_id,) + tuple(r[c] for c in KEY + VALUES) + (self.run_id,) for r in rows])
            added = self._db.total_changes - before
            self._db.executemany(f"INSERT OR IGNORE INTO examples (series_id, {', '.join(EXAMPLE_COLUMNS)}) "
                                 f"VALUES ({', '.join('?' * (len(EXAMPLE_COLUMNS) + 1))})",
                                 [(self.series_id,) + tuple(e[c] for c in EXAMPLE_COLUMNS) for e in examples])
        return added

    def _series_filter(self, db, series: int | None) -> tuple[str, tuple]:
        """SQL condition selecting ``series`` (None: the current one, else the latest)."""
        if series is None:
            series = self.series_id
        if series is None:
            listed = self._series_list(db)
            series = listed[-1]["series_id"] if listed else 1
        return "series_id = ?", (series,)

    def _has_rows(self) -> bool:
        return self.exists and self.latest_series() is not None

    def done_keys(self, series: int | None = None) -> set[tuple]:
        """The keys of the stored rows of ``series`` (default: the current, else the latest)."""
        if not self._has_rows():
            return set()

        def q(db):
            cond, params = self._series_filter(db, series)
            return set(db.execute(f"SELECT {', '.join(KEY)} FROM rows WHERE {cond}", params))
        return self._read(q)

    def rows(self, where: str = "", params=(), series: int | None = None) -> list[dict]:
        """Stored rows of ``series`` (default: the current, else the latest) as dicts, optionally
        filtered by an SQL ``where`` clause (``"WHERE ..."``)."""
        if not self._has_rows():
            return []

        def q(db):
            cond, sparams = self._series_filter(db, series)
            extra = where.strip()
            if extra.upper().startswith("WHERE "):
                extra = extra[6:]
            clause = f"WHERE {cond}" + (f" AND ({extra})" if extra else "")
            cur = db.execute(f"SELECT {', '.join(COLUMNS)} FROM rows {clause} ORDER BY {', '.join(KEY)}",
                             tuple(sparams) + tuple(params))
            return [dict(zip(COLUMNS, r)) for r in cur]
        return self._read(q)

    def examples(self, series: int | None = None) -> list[dict]:
        if not self._has_rows():
            return []

        def q(db):
            cond, params = self._series_filter(db, series)
            cur = db.execute(f"SELECT {', '.join(EXAMPLE_COLUMNS)} FROM examples WHERE {cond}", params)
            return [dict(zip(EXAMPLE_COLUMNS, r)) for r in cur]
        return self._read(q)

    def runs(self) -> list[dict]:
        if not self._has_rows():
            return []

        def q(db):
            has = "series_id" in _columns(db, "runs")
            cur = db.execute(f"SELECT run_id, started, config, version, executor, {'series_id' if has else '1'} "
                             f"FROM runs ORDER BY run_id")
            return [{"run_id": r[0], "started": r[1], "config": json.loads(r[2]), "version": json.loads(r[3]),
                     "executor": r[4], "series_id": r[5]} for r in cur]
        return self._read(q)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
