"""The dedupe ledger and outbox: one row per (symbol, job, partition, target), in SQLite.

Why a file beside the artifacts and not only the sensor's cursor: the cursor says which finished
runs the sensor has looked at, but a rerun or a backfill of a partition is a *new* run with the
same entries, and a cursor can be reset (in the UI, or a new ``DAGSTER_HOME`` over the same
artifacts). The ledger lives with what it announces (``{artifacts_dir}/.pipeline/
notifications.sqlite``): a row is claimed with ``INSERT OR IGNORE`` on that primary key, so a
key is queued at most once whatever reruns, restarts or repeated ticks do. The row is also the
outbox: a failed delivery stays ``pending`` with its next attempt time, so retries survive a
daemon restart and never hold up a tick; after ``max_attempts`` it is ``failed`` (given up).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from cryptorun_core.artifacts import PIPELINE_DIR, safe_join
from cryptorun_pipelines.notifications.message import Entry

LEDGER_FILE = "notifications.sqlite"
PENDING, SENT, FAILED = "pending", "sent", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    symbol TEXT NOT NULL,
    job TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    target TEXT NOT NULL,
    run_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (symbol, job, partition_key, target)
)
"""


def ledger_path(artifacts_dir: str | Path) -> Path:
    return safe_join(artifacts_dir, PIPELINE_DIR) / LEDGER_FILE


@dataclass(frozen=True)
class Delivery:
    entry: Entry
    target: str
    attempts: int
    status: str
    last_error: str | None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (*self.entry.key, self.target)


class Ledger:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute(_SCHEMA)
        return conn

    def enqueue(self, entries: Iterable[Entry], targets: Sequence[str], now: float) -> int:
        """Queue each entry for each target unless its key was ever queued; the number queued."""
        rows = [
            (e.symbol, e.job, e.partition, t, e.run_id, json.dumps(e.to_dict(), ensure_ascii=False), PENDING, 0, now, None, now, now)
            for e in entries for t in targets
        ]
        with closing(self._connect()) as conn, conn:
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            return conn.total_changes - before

    def due(self, targets: Sequence[str], now: float, limit: int = 1000) -> list[Delivery]:
        """Pending deliveries to ``targets`` whose next attempt is due, oldest first."""
        if not targets:
            return []
        marks = ",".join("?" * len(targets))
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT entry, target, attempts, status, last_error FROM deliveries WHERE status = ? AND target IN ({marks}) "
                "AND next_attempt_at <= ? ORDER BY created_at, job, partition_key, symbol, target LIMIT ?",
                (PENDING, *targets, now, limit),
            ).fetchall()
        return [Delivery(Entry.from_dict(json.loads(e)), t, a, s, err) for e, t, a, s, err in rows]

    def record(self, delivery: Delivery, *, status: str, now: float, next_attempt_at: float | None = None, error: str | None = None) -> None:
        """The outcome of one attempt of ``delivery``."""
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ? "
                "WHERE symbol = ? AND job = ? AND partition_key = ? AND target = ?",
                (status, next_attempt_at if next_attempt_at is not None else now, error, now, *delivery.key),
            )

    def rows(self) -> list[dict]:
        """Every row (tests, diagnostics)."""
        if not self.path.exists():
            return []
        with closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM deliveries ORDER BY created_at, symbol, target")]

    def pending_count(self, targets: Sequence[str]) -> int:
        if not targets or not self.path.exists():
            return 0
        marks = ",".join("?" * len(targets))
        with closing(self._connect()) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM deliveries WHERE status = ? AND target IN ({marks})", (PENDING, *targets)).fetchone()[0]
