"""One regime window at T: the universe ranking, the three indicators and the regime (SPEC §2, §6).

A regime window is what the regime job computes for one 4h partition and what every scan of the
following cycles reads. :func:`compute_windows` computes it for one or many times T with the same
functions whatever the path: a single T reads a snapshot (``collect_snapshot``) and ranks it; a
range of T from a source that serves ranges (``bar_windows``: simulated, replay) is read once
(:mod:`cryptorun_core.range_read`) and each T is cut out of it — the results are equal, byte for
byte (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

import pandas as pd

from cryptorun_core import range_read
from cryptorun_core.config import AppConfig
from cryptorun_core.market.base import MarketSource
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.quality import BarRules, data_quality_summary, regime_data_quality
from cryptorun_core.regime import INDICATORS, RegimeResult, compute_indicators, regime_result, regime_universe
from cryptorun_core.timefmt import iso_z_exact, to_utc
from cryptorun_core.universe import rank_universe


@dataclass(frozen=True)
class RegimeWindow:
    """The regime window at ``as_of``: ranking (every symbol seen), indicators over the regime
    universe (its first ``regime_universe_size`` eligible symbols) and the voted regime."""

    as_of: datetime
    ranking: pd.DataFrame
    indicators: dict[str, float]
    universe_size: int
    timeframe: str
    regime: RegimeResult
    #: what the bar sanitation rejected or repaired at T and the inputs the source could not read
    #: (:func:`cryptorun_core.quality.regime_data_quality`); regime.json's format is fixed (SPEC §9),
    #: so this goes to the materialisation metadata and the run log
    data_quality: dict = field(default_factory=lambda: data_quality_summary([], []))

    def indicator_row(self, partition_key: str) -> pd.DataFrame:
        """The ``regime_indicators`` table of this window (one row; RegimeIndicatorsSchema)."""
        return pd.DataFrame(
            [
                {
                    **{k: float(self.indicators[k]) for k in INDICATORS},
                    "as_of": iso_z_exact(self.as_of),
                    "partition_key": partition_key,
                    "universe_size": self.universe_size,
                    "benchmark": self.regime.benchmark,
                    "timeframe": self.timeframe,
                }
            ]
        )

    def regime_json(self, partition_key: str) -> dict[str, Any]:
        """regime.json (SPEC §9) of this window."""
        return {**self.regime.to_dict(), "partition_key": partition_key}


def regime_json_from_row(row: pd.Series | dict, config: AppConfig) -> dict[str, Any]:
    """regime.json from a stored ``regime_indicators`` row (the same chain as a window's)."""
    result = regime_result({k: row[k] for k in INDICATORS}, to_utc(row["as_of"]), int(row["universe_size"]), config)
    return {**result.to_dict(), "partition_key": str(row["partition_key"])}


def _window(as_of: datetime, ranking: pd.DataFrame, indicators: dict, universe: list[str], timeframe: str,
            config: AppConfig, data_quality: dict) -> RegimeWindow:
    return RegimeWindow(to_utc(as_of), ranking, indicators, len(universe), timeframe,
                        regime_result(indicators, as_of, len(universe), config), data_quality)


def compute_window(source: MarketSource, config: AppConfig, as_of: datetime, hot_size: int, warm_size: int) -> RegimeWindow:
    """The regime window at ``as_of`` from one snapshot read (validation left to the caller's types)."""
    venues, limit = config.market.venues, config.market.history_bars
    snapshot = collect_snapshot(source, None, as_of, venues=venues, limit=limit, with_books=False)
    ranking = rank_universe(snapshot, config, hot_size=hot_size, warm_size=warm_size, validate=False)
    universe = regime_universe(ranking, config)
    wanted = sorted(set(universe) | {config.regime.benchmark})
    sub = collect_snapshot(source, wanted, as_of, venues=venues, limit=limit, with_books=False)
    indicators = compute_indicators(sub, ranking, config, validate=False)
    return _window(as_of, ranking, indicators, universe, source.native_timeframe, config, regime_data_quality(snapshot, venues))


def compute_windows(
    source: MarketSource, config: AppConfig, as_ofs: Sequence[datetime], hot_size: int, warm_size: int
) -> list[RegimeWindow]:
    """The regime window at every T of ``as_ofs``: one range read when the source serves ranges and
    there are several T, else :func:`compute_window` per T."""
    if not (len(as_ofs) > 1 and callable(getattr(source, "bar_windows", None))):
        return [compute_window(source, config, a, hot_size, warm_size) for a in as_ofs]
    venues, limit = config.market.venues, config.market.history_bars
    read = range_read.read_range(source, as_ofs, venues, limit, rules=BarRules.of(config))
    if read.history is None:  # bars to report (or no range to serve): each T read, sanitized and reported on its own
        return [compute_window(source, config, a, hot_size, warm_size) for a in as_ofs]
    rankings, universes, values = zip(*range_read.windows(source, read, config, hot_size, warm_size))
    # the range read holds only bars with nothing to report: what is left are the unreadable inputs
    reports = [data_quality_summary([], _unreadable(source, venues, a)) for a in as_ofs]
    return [_window(a, r, v, u, source.native_timeframe, config, q)
            for a, r, v, u, q in zip(as_ofs, rankings, values, universes, reports)]


def _unreadable(source: MarketSource, venues, as_of: datetime) -> list[dict]:
    rows = [{"venue": str(r.venue), "symbol": str(r.symbol), "reason": str(r.error), "detail": str(r.detail)}
            for v in venues for r in source.data_problems(v, as_of)]
    return sorted(rows, key=lambda r: (r["venue"], r["symbol"], r["reason"]))
