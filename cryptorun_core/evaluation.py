"""Signal evaluation (issue #17): do a scan's entries beat its rejects afterwards?

**This module uses data after T, on purpose.** For past hot and warm cycles it joins every evaluated
symbol with its forward returns ``close(T + h) / close(T) − 1`` over h = 1 h, 4 h, 24 h, from bars of
the symbol's chosen venue that closed after T. Nothing here may feed a signal: no signal asset reads
its output (a test asserts it), and every table it writes carries ``uses_data_after_t = true``.

A cycle is recomputed from the market source exactly as the pipeline computes it (point in time,
SPEC §1: a backfill equals the live run): the regime window of the latest regime tick at or before T
(its ranking and regime), the job's segment snapshot at T, :func:`cryptorun_core.engine.run_scan`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from croniter import croniter

from cryptorun_core.artifacts import EVALUATION_COLUMNS, EVALUATION_SUMMARY_COLUMNS
from cryptorun_core.book_pruning import read_segment
from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_core.engine import run_scan
from cryptorun_core.market.base import MarketSource, to_utc
from cryptorun_core.regime_window import RegimeWindow, compute_window
from cryptorun_core.timefmt import iso_minutes
from cryptorun_core.universe import segment_symbols

HORIZONS_H: tuple[int, ...] = (1, 4, 24)
#: how long after its last cycle an evaluation reads bars: until then some forward returns do not exist
#: yet (a live venue has no such bar; the simulated market would invent it)
SETTLE = timedelta(hours=max(HORIZONS_H))
LABEL = "uses data after T: forward returns from bars closed after each cycle time (evaluation only, never a signal input)"
ROW_COLUMNS = EVALUATION_COLUMNS
#: score_gate (pass / fail of the score gate alone) says whether the score itself ranks well where the
#: other gates reject everything (replayed history has no books: every hot symbol fails on freshness)
GROUPINGS = ("decision", "score_gate", "primary_reason", "regime", "tier")
SUMMARY_COLUMNS = EVALUATION_SUMMARY_COLUMNS


def unsettled_problem(end: datetime, now: datetime) -> str | None:
    """Why cycles up to ``end`` cannot be evaluated at ``now`` (their forward returns need bars that
    close after now), or None."""
    end, now = to_utc(end), to_utc(now)
    if end + SETTLE <= now:
        return None
    return (f"the cycles up to {iso_minutes(end)} need bars up to {SETTLE // timedelta(hours=1)} h later "
            f"({iso_minutes(end + SETTLE)}), after now ({iso_minutes(now)}): evaluate up to "
            f"{iso_minutes(now - SETTLE)} at the latest")


def cycle_times(schedule: str, start: datetime, end: datetime, step: timedelta | None = None) -> list[datetime]:
    """Cycle times T in [start, end]: the ticks of ``schedule`` or, with ``step``, every ``step`` from the first tick."""
    start, end = to_utc(start), to_utc(end)
    it = croniter(schedule, start - timedelta(seconds=1))
    first = it.get_next(datetime)
    out: list[datetime] = []
    t = first
    while t <= end:
        out.append(t)
        t = t + step if step is not None else it.get_next(datetime)
    return out


def regime_tick(schedule: str, as_of: datetime) -> datetime:
    """The latest regime tick at or before T (the regime partition a scan at T reads)."""
    return croniter(schedule, to_utc(as_of) + timedelta(seconds=1)).get_prev(datetime)


@dataclass
class Evaluator:
    """Recomputes past cycles of ``config``'s scan jobs on ``source`` (regime windows memoised per tick)."""

    source: MarketSource
    config: AppConfig

    def __post_init__(self) -> None:
        self._windows: dict[datetime, RegimeWindow] = {}
        scans = {j.config.universe: j for j in self.config.jobs if j.type != "regime"}
        self.sizes = {seg: (scans[seg].config.max_sample if seg in scans else 0) for seg in ("hot", "warm")}
        regime_jobs = [j for j in self.config.jobs if j.type == "regime"]
        self.regime_schedule = regime_jobs[0].schedule if regime_jobs else f"0 */{self.config.regime.refresh_hours} * * *"

    def window(self, tick: datetime) -> RegimeWindow:
        if tick not in self._windows:
            self._windows[tick] = compute_window(self.source, self.config, tick, self.sizes["hot"], self.sizes["warm"])
        return self._windows[tick]

    def cycle(self, job: JobConfig, as_of: datetime) -> pd.DataFrame:
        """Every symbol the job evaluated at T (point in time: nothing after T is read here)."""
        as_of = to_utc(as_of)
        tick = regime_tick(self.regime_schedule, as_of)
        window = self.window(tick)
        start = croniter(self.regime_schedule, tick).get_prev(datetime)
        regime = {**window.regime.to_dict(), "partition_key": start.strftime("%Y-%m-%d-%H:%M")}
        segment = job.config.universe
        if not segment_symbols(window.ranking, segment):
            return _empty_rows()
        # the segment's read as the pipeline does it (a live or recorded source skips the books the live run skipped)
        snapshot = read_segment(self.source, self.config, job, window.ranking, as_of, segment, regime=regime)
        ev = run_scan(snapshot, window.ranking, regime, self.config, job).evaluated
        if ev.empty:
            return _empty_rows()
        fallback = _bar_venues(snapshot.bars, job.config.venues)
        return pd.DataFrame({
            "as_of": pd.Timestamp(as_of), "job": job.name, "segment": segment,
            "symbol": ev["symbol"].astype(str).to_numpy(),
            "venue": [v if isinstance(v, str) and v else fallback.get(s, "") for v, s in zip(ev["venue"], ev["symbol"])],
            "tier": ev["tier"].astype(str).to_numpy(), "regime": str(regime["regime"]),
            "score": pd.to_numeric(ev["score"], errors="coerce").to_numpy(float),
            "decision": ev["decision"].astype(str).to_numpy(),
            "score_gate": np.where(ev["gate_score"].astype(bool).to_numpy(), "pass", "fail"),
            "primary_reason": ev["primary_reason"].fillna("").astype(str).replace("", "entry").to_numpy(),
        })

    def forward_returns(self, rows: pd.DataFrame, horizons: Sequence[int] = HORIZONS_H) -> pd.DataFrame:
        """``rows`` with ``fwd_<h>h`` columns. USES DATA AFTER T: bars closed up to T + max(horizons)."""
        out = rows.copy()
        for h in horizons:
            out[f"fwd_{h}h"] = np.nan
        if rows.empty:
            return out
        longest = max(horizons)
        for as_of, idx in rows.groupby("as_of").groups.items():
            t = pd.Timestamp(as_of)
            later = (t + pd.Timedelta(hours=longest)).to_pydatetime()
            part = rows.loc[idx]
            requests = sorted({(v, s) for v, s in zip(part["venue"], part["symbol"]) if v})
            answers = self.source.fetch_ohlcv(requests, later, timeframe="1h", limit=longest + 2)
            closes = {}
            for r in answers:
                if r.ok and r.data is not None and len(r.data):
                    closes[(r.venue, r.symbol)] = pd.Series(r.data["close"].to_numpy(float),
                                                            index=pd.DatetimeIndex(r.data["timestamp"]) + pd.Timedelta(hours=1))
            for i in idx:
                c = closes.get((rows.at[i, "venue"], rows.at[i, "symbol"]))
                if c is None or t not in c.index:
                    continue
                base = c[t]
                for h in horizons:
                    at = t + pd.Timedelta(hours=h)
                    if at in c.index and base > 0:
                        out.at[i, f"fwd_{h}h"] = float(c[at] / base - 1.0)
        return out

    def evaluate(self, jobs: Iterable[JobConfig], start: datetime, end: datetime, step: timedelta | None = None) -> pd.DataFrame:
        """Rows of every cycle of ``jobs`` in [start, end] joined with their forward returns."""
        frames = []
        for job in jobs:
            for t in cycle_times(job.schedule, start, end, step):
                rows = self.cycle(job, t)
                if len(rows):
                    frames.append(self.forward_returns(rows))
        return pd.concat(frames, ignore_index=True) if frames else self.forward_returns(_empty_rows())


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in ROW_COLUMNS[:len(ROW_COLUMNS) - len(HORIZONS_H)]})


def _bar_venues(bars: pd.DataFrame, venues: Sequence[str]) -> dict[str, str]:
    """A symbol without a chosen venue (no valid book) is measured on the first job venue with its bars."""
    out: dict[str, str] = {}
    if bars.empty:
        return out
    have = set(map(tuple, bars[["venue", "symbol"]].drop_duplicates().to_numpy()))
    for s in sorted({s for _, s in have}):
        for v in venues:
            if (v, s) in have:
                out[s] = v
                break
    return out


def summarize(rows: pd.DataFrame, horizons: Sequence[int] = HORIZONS_H) -> pd.DataFrame:
    """Per job, grouping (decision, primary_reason, regime, tier), group and horizon: count (symbols with
    a forward return), mean and median forward return, hit rate (share > 0) and the Spearman rank
    correlation of score with the forward return (None with fewer than 3 rows or a constant column)."""
    records: list[dict[str, Any]] = []
    if rows.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    for job, by_job in rows.groupby("job", sort=True):
        for grouping in GROUPINGS:
            for group, part in by_job.groupby(grouping, sort=True):
                for h in horizons:
                    fwd = pd.to_numeric(part[f"fwd_{h}h"], errors="coerce")
                    ok = fwd.notna()
                    records.append(_stats(str(job), grouping, str(group), h, fwd[ok], part.loc[ok, "score"]))
        for h in horizons:  # every evaluated symbol of the job
            fwd = pd.to_numeric(by_job[f"fwd_{h}h"], errors="coerce")
            ok = fwd.notna()
            records.append(_stats(str(job), "all", "all", h, fwd[ok], by_job.loc[ok, "score"]))
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))


def _stats(job: str, grouping: str, group: str, h: int, fwd: pd.Series, score: pd.Series) -> dict[str, Any]:
    n = len(fwd)
    rho = None
    s = pd.to_numeric(score, errors="coerce")
    both = fwd.notna() & s.notna()
    if both.sum() >= 3 and fwd[both].nunique() > 1 and s[both].nunique() > 1:
        rho = float(fwd[both].rank().corr(s[both].rank()))
    return {"job": job, "grouping": grouping, "group": group, "horizon": f"{h}h", "count": n,
            "mean": float(fwd.mean()) if n else None, "median": float(fwd.median()) if n else None,
            "hit_rate": float((fwd > 0).mean()) if n else None, "spearman_score": rho}


def per_cycle(rows: pd.DataFrame, horizons: Sequence[int] = HORIZONS_H) -> pd.DataFrame:
    """One row per (job, as_of, decision): count and mean forward return per horizon."""
    if rows.empty:
        return pd.DataFrame(columns=["job", "as_of", "decision", "count", *(f"mean_fwd_{h}h" for h in horizons)])
    agg = {f"mean_fwd_{h}h": (f"fwd_{h}h", "mean") for h in horizons}
    out = rows.groupby(["job", "as_of", "decision"], sort=True).agg(count=("symbol", "size"), **agg).reset_index()
    return out


def report(rows: pd.DataFrame, start: datetime, end: datetime) -> dict[str, Any]:
    """The evaluation JSON: label, range, the summary table and per-cycle counts."""
    summary = summarize(rows)
    return {
        "uses_data_after_t": True,
        "label": LABEL,
        "from": to_utc(start).isoformat(),
        "to": to_utc(end).isoformat(),
        "horizons": [f"{h}h" for h in HORIZONS_H],
        "cycles": int(rows["as_of"].nunique()) if len(rows) else 0,
        "evaluated": len(rows),
        "summary": _records(summary),
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else (round(v, 6) if isinstance(v, float) else v))
                    for k, v in rec.items()})
    return out
