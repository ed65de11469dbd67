"""What a notification says: one scan entry, read back from the cycle's committed artifacts.

The facts come from the files the run committed (signals.csv / warm_signals.csv, and premove.csv
for the hot scan's premove state), found through the artifact registry, so a message says exactly
what a user reading the artifacts would see, rounded as SPEC §9 writes them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptorun_core.artifacts import ARTIFACTS, artifact_path, iso_z


def _asset(role: str, csv_kinds: tuple[str, ...]) -> str | None:
    return next((a.asset for a in ARTIFACTS if a.role == role and a.csv_kind in csv_kinds), None)


#: the signal asset and the premove asset (None for warm) of each scan role, from the registry
SIGNAL_ASSETS = {role: (_asset(role, ("signals", "warm_signals")), _asset(role, ("premove",))) for role in ("hot", "warm")}


@dataclass(frozen=True)
class Entry:
    """One entry of one scan cycle, as a message reports it."""

    job: str  # config job name (scan.hot)
    partition: str
    as_of: str  # T, ISO ``…Z``
    symbol: str
    venue: str
    score: float | None
    vadr: float | None
    spread_bps: float | None
    depth_usd: float | None
    regime: str
    badges: dict[str, str] = field(default_factory=dict)  # fresh, depth, sources, tier, premove
    run_id: str = ""
    run_url: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What is announced at most once: (symbol, job, partition)."""
        return (self.symbol, self.job, self.partition)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Entry:
        return cls(**raw)

    def with_run(self, run_id: str, ui_base_url: str) -> Entry:
        return Entry(**{**self.to_dict(), "run_id": run_id, "run_url": run_url(ui_base_url, run_id)})


def run_url(ui_base_url: str, run_id: str) -> str:
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}"


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_entries(artifacts_dir: str | Path, role: str, job: str, partition: str, as_of: Any) -> list[Entry]:
    """The entries of the ``role`` scan's cycle at ``as_of`` (``FileNotFoundError`` when its
    signal file is not there), in the file's order (score descending)."""
    signals_asset, premove_asset = SIGNAL_ASSETS[role]
    states: dict[str, str] = {}
    if premove_asset is not None:
        premove = artifact_path(artifacts_dir, premove_asset, as_of)
        if premove.is_file():
            states = {r["symbol"]: r.get("state", "") for r in _rows(premove)}
    entries = []
    for row in _rows(artifact_path(artifacts_dir, signals_asset, as_of)):
        badges = {
            "fresh": row.get("fresh", ""),
            "depth": row.get("depth_badge", ""),
            "sources": row.get("sources", ""),
            "tier": row.get("tier", ""),
        }
        if states.get(row["symbol"]):
            badges["premove"] = states[row["symbol"]]
        entries.append(
            Entry(
                job=job,
                partition=partition,
                as_of=iso_z(as_of),
                symbol=row["symbol"],
                venue=row.get("venue", ""),
                score=_number(row.get("score")),
                vadr=_number(row.get("vadr")),
                spread_bps=_number(row.get("spread_bps")),
                depth_usd=_number(row.get("depth_usd")),
                regime=row.get("regime", ""),
                badges={k: v for k, v in badges.items() if v},
            )
        )
    return entries


def sample_entry(ui_base_url: str) -> Entry:
    """The entry ``cryptorun notify test`` sends (marked as a test in every format)."""
    return Entry(
        job="notify.test", partition="test", as_of="2026-01-01T00:00:00Z", symbol="TEST/USD", venue="kraken",
        score=88.8, vadr=2.05, spread_bps=4.2, depth_usd=250000, regime="normal",
        badges={"fresh": "●", "depth": "✓", "sources": "3", "tier": "tier1"},
        run_id="test", run_url=f"{ui_base_url.rstrip('/')}/runs",
    )
