"""Market regime at T: three indicators, three votes, a label, a confidence and a weight blend (SPEC §6).

Pipeline: :func:`compute_indicators` (snapshot + ranking → three numbers) → :func:`vote` (three
calm/normal/volatile votes) → :func:`majority` (label) → :func:`confidence` →
:func:`blend_weights`; :func:`compute_regime` runs them all and returns a :class:`RegimeResult`
whose :meth:`RegimeResult.to_dict` is the regime.json content of SPEC §9 (without
``partition_key``, which the pipeline adds). The array-level helpers
(:func:`indicators_from_closes`, :func:`realized_vol`, :func:`pct_above_ma`,
:func:`breadth_thrust`) are pure numpy and usable on their own.

Interpretive choices:

* **Universe** = the eligible rows of the ranking, by rank, at most
  ``config.universe.regime_universe_size`` of them. Only bars of ``config.market.venues`` count.
* **One close series per symbol.** A multi-venue symbol uses the period closes of its *primary
  venue*, chosen over the periods the regime looks at (0..max(ma_periods, thrust_periods + 1) − 1):
  the venue with the most periods present (so a venue that only just listed the symbol does not
  knock it out of the 20-period MA), then the largest Σ close·volume (the most traded series),
  then config venue order. Live, every venue has the full window and volume decides.
* **Period closes** come from :func:`cryptorun_core.periods.period_table`; a period counts as
  present when it has at least one closed bar (its close is that of its newest bar, which for any
  period but a gap-ridden one is exactly the close at T − 24h·d). ``pct_above_20ma`` leaves out
  a symbol unless all of its periods 0..19 are present; a breadth comparison at d needs periods
  d and d+1 of that symbol, otherwise the symbol counts in neither advancers nor decliners.
* **Breadth window.** Up to ``thrust_periods`` (30) comparisons d = 0..29 (period d vs d+1). The
  number used is ``min(thrust_periods, P − 1)`` where P is the number of periods present in the
  universe's data (the largest period index + 1): with 720 hourly bars there are 30 periods and so
  29 comparisons; a daily history longer than 31 days gives the full 30.
* **Benchmark** (``config.regime.benchmark``). If it trades on several venues the venue used is
  the one with enough bars for the full return window, then the largest Σ close·volume over the
  bars of that window, then config order. Realized vol needs the full window (168 hourly returns,
  or 7 daily returns on a daily-only snapshot); less → ValueError.
* Missing benchmark, empty eligible universe, no symbol with 20 periods or no breadth comparison
  → ``ValueError`` naming what is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cryptorun_core.config import FACTORS, REGIMES, AppConfig, RegimeThresholds
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.periods import PairPeriods, kahan_rows, kahan_sum
from cryptorun_core.quality import BarRules
from cryptorun_core.schemas import RegimeIndicatorsSchema, validate_frame
from cryptorun_core.timefmt import iso_z_exact, to_utc

INDICATORS = ("realized_vol_7d", "pct_above_20ma", "breadth_thrust")
VOTE_KEYS = {"realized_vol_7d": "vol_vote", "pct_above_20ma": "ma_vote", "breadth_thrust": "breadth_vote"}
# SPEC §6 definition of realized_vol_7d: (number of returns, annualisation factor) per timeframe.
VOL_WINDOW = {"1h": (168, 24 * 365), "1d": (7, 365)}


# ------------------------------------------------------------------------------------------
# pure array helpers
# ------------------------------------------------------------------------------------------


def realized_vol(closes: np.ndarray, timeframe: str = "1h") -> float:
    """SPEC §6 ``realized_vol_7d``: stdev (ddof=1) of the last n log returns · √annualisation.

    ``closes`` oldest → newest. Hourly: n = 168, factor 24·365; daily fallback: n = 7, factor
    365. The last n returns are those between the last n + 1 closes (SPEC §1).
    Raises ValueError when fewer than n + 1 closes are given.
    """
    n, ann = VOL_WINDOW[timeframe]
    c = np.asarray(closes, dtype=float)
    if len(c) < n + 1:
        raise ValueError(f"realized_vol_7d needs {n + 1} closes on timeframe {timeframe} (got {len(c)})")
    rets = np.diff(np.log(c[-(n + 1):]))
    return float(np.std(rets, ddof=1) * math.sqrt(ann))


def pct_above_ma(period_closes: np.ndarray, ma_periods: int = 20) -> tuple[float, int]:
    """SPEC §6 ``pct_above_20ma``: 100 · share of symbols whose period-0 close > mean of closes 0..19.

    ``period_closes``: (n_symbols, n_periods) array, column d = period d (0 newest), NaN when the
    period is missing. Symbols lacking any of periods 0..ma_periods−1 are left out. Returns
    (pct, number of symbols used); pct is NaN when no symbol qualifies.
    """
    m = np.asarray(period_closes, dtype=float).reshape(len(period_closes), -1)
    if m.shape[1] < ma_periods:
        return float("nan"), 0
    window = m[:, :ma_periods]
    ok = ~np.isnan(window).any(axis=1)
    n = int(ok.sum())
    if n == 0:
        return float("nan"), 0
    above = window[ok, 0] > window[ok].mean(axis=1)
    return float(100.0 * above.mean()), n


def ema_seeded(values: np.ndarray, span: int) -> float:
    """EMA with α = 2/(span+1), seeded with the first value, oldest → newest; returns the last value."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise ValueError("EMA of an empty series")
    alpha = 2.0 / (span + 1.0)
    # y_0 = x_0, y_t = (1-α) y_{t-1} + α x_t  ==  pandas ewm(adjust=False)
    return float(pd.Series(v).ewm(alpha=alpha, adjust=False).mean().iloc[-1])


def breadth_ratios(period_closes: np.ndarray, n_comparisons: int) -> np.ndarray:
    """advancers/(advancers + decliners) for d = 0..n−1 (index d; period d close vs period d+1).

    Unchanged symbols and symbols missing either period count in neither; 0.5 when both are 0.
    """
    m = np.asarray(period_closes, dtype=float).reshape(len(period_closes), -1)
    n = int(n_comparisons)
    if m.shape[1] < n + 1:
        m = np.pad(m, ((0, 0), (0, n + 1 - m.shape[1])), constant_values=np.nan)
    newer, older = m[:, :n], m[:, 1 : n + 1]
    with np.errstate(invalid="ignore"):
        adv = (newer > older).sum(axis=0)
        dec = (newer < older).sum(axis=0)
    total = adv + dec
    return np.where(total > 0, adv / np.maximum(total, 1), 0.5)


def breadth_thrust(period_closes: np.ndarray, n_comparisons: int, span: int = 10) -> float:
    """SPEC §6 ``breadth_thrust``: EMA (α = 2/(span+1), seeded, oldest → newest) of the breadth ratios."""
    ratios = breadth_ratios(period_closes, n_comparisons)
    return ema_seeded(ratios[::-1], span)


def available_comparisons(period_closes: np.ndarray, thrust_periods: int) -> int:
    """min(thrust_periods, P − 1), P = number of periods present (largest present index + 1)."""
    m = np.asarray(period_closes, dtype=float).reshape(len(period_closes), -1)
    present = np.flatnonzero(~np.isnan(m).all(axis=0)) if m.size else np.array([], dtype=int)
    if len(present) == 0:
        return 0
    return int(min(thrust_periods, present[-1]))


def indicators_from_closes(
    benchmark_closes: np.ndarray,
    period_closes: np.ndarray,
    *,
    timeframe: str = "1h",
    ma_periods: int = 20,
    thrust_periods: int = 30,
    thrust_ema_span: int = 10,
) -> dict[str, Any]:
    """The three SPEC §6 indicators from arrays.

    ``benchmark_closes``: the benchmark's closed bars, oldest → newest, on ``timeframe``.
    ``period_closes``: (n_symbols, n_periods) period closes of the regime universe, column d =
    period d, NaN when missing. Returns the indicators plus ``n_ma_symbols`` and
    ``n_thrust_comparisons``. Raises ValueError when an indicator cannot be computed.
    """
    vol = realized_vol(benchmark_closes, timeframe)
    pct, n_ma = pct_above_ma(period_closes, ma_periods)
    if n_ma == 0:
        raise ValueError(f"pct_above_20ma: no symbol of the regime universe has {ma_periods} periods of closes")
    n_cmp = available_comparisons(period_closes, thrust_periods)
    if n_cmp < 1:
        raise ValueError("breadth_thrust: the regime universe has fewer than 2 periods of closes")
    thrust = breadth_thrust(period_closes, n_cmp, thrust_ema_span)
    return {
        "realized_vol_7d": vol,
        "pct_above_20ma": pct,
        "breadth_thrust": thrust,
        "n_ma_symbols": n_ma,
        "n_thrust_comparisons": n_cmp,
    }


# ------------------------------------------------------------------------------------------
# votes, label, confidence, weights, refresh
# ------------------------------------------------------------------------------------------


def _vote_one(value: float, calm: float, volatile: float) -> str:
    """Band vote. calm < volatile: value < calm → calm, > volatile → volatile (realized vol);
    calm > volatile: value > calm → calm, < volatile → volatile (pct, thrust); boundaries → normal."""
    if calm < volatile:
        return "calm" if value < calm else "volatile" if value > volatile else "normal"
    return "calm" if value > calm else "volatile" if value < volatile else "normal"


def vote(indicators: Mapping[str, float], thresholds: RegimeThresholds) -> dict[str, str]:
    """SPEC §6 votes: vol < 0.40 calm / > 0.80 volatile; pct > 70 calm / < 45 volatile;
    thrust > 0.60 calm / < 0.40 volatile; else normal (thresholds from config)."""
    out = {}
    for ind in INDICATORS:
        band = getattr(thresholds, ind)
        out[VOTE_KEYS[ind]] = _vote_one(float(indicators[ind]), band.calm, band.volatile)
    return out


def majority(votes: Mapping[str, str]) -> str:
    """SPEC §6: two or three equal votes decide; three different votes → normal."""
    values = list(votes.values())
    for label in REGIMES:
        if values.count(label) >= 2:
            return label
    return "normal"


def band_score(value: float, calm: float, volatile: float) -> float:
    """clip(distance to the nearest threshold of the value's band / width of the normal band, 0, 1).

    The calm and volatile bands have one threshold each; the normal band's nearest threshold is
    the closer of the two (so a normal vote scores at most 0.5, at the band's centre).
    """
    width = abs(volatile - calm)
    label = _vote_one(value, calm, volatile)
    if label == "calm":
        dist = abs(value - calm)
    elif label == "volatile":
        dist = abs(value - volatile)
    else:
        dist = min(abs(value - calm), abs(value - volatile))
    return float(np.clip(dist / width, 0.0, 1.0))


def confidence(indicators: Mapping[str, float], votes: Mapping[str, str], label: str, thresholds: RegimeThresholds) -> float:
    """SPEC §6: ``0.5·(agreeing/3) + 0.5·mean over agreeing indicators of band_score``.

    Agreeing votes are the votes equal to ``label``. When the three votes differ the label is
    normal by the tie rule and exactly the one normal vote agrees (1/3). With no agreeing vote
    (not reachable through :func:`majority`) the confidence is 0.
    """
    agreeing = [ind for ind in INDICATORS if votes[VOTE_KEYS[ind]] == label]
    if not agreeing:
        return 0.0
    scores = [band_score(float(indicators[ind]), getattr(thresholds, ind).calm, getattr(thresholds, ind).volatile) for ind in agreeing]
    c = 0.5 * (len(agreeing) / 3.0) + 0.5 * float(np.mean(scores))
    return float(np.clip(c, 0.0, 1.0))


def blend_weights(label: str, conf: float, weights: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """SPEC §6: ``weight_blend = c·W[regime] + (1 − c)·W[normal]`` (sums to 1 as both rows do)."""
    return {f: float(conf * weights[label][f] + (1.0 - conf) * weights["normal"][f]) for f in FACTORS}


def next_refresh(as_of: datetime, refresh_hours: int) -> datetime:
    """The next regime tick strictly after T: the next multiple of ``refresh_hours`` hours since
    midnight UTC, capped at the next midnight (cron ``0 */h * * *`` semantics when h ∤ 24)."""
    t = pd.Timestamp(to_utc(as_of))
    midnight = t.floor("D")
    step = pd.Timedelta(hours=refresh_hours)
    k = (t - midnight) // step + 1
    nxt = min(midnight + k * step, midnight + pd.Timedelta(days=1))
    return nxt.to_pydatetime()


# ------------------------------------------------------------------------------------------
# snapshot level
# ------------------------------------------------------------------------------------------


@dataclass
class RegimeResult:
    """The regime at ``as_of`` (SPEC §6); :meth:`to_dict` gives the regime.json fields of SPEC §9."""

    label: str
    confidence: float
    indicators: dict[str, float]
    votes: dict[str, str]
    weight_blend: dict[str, float]
    as_of: datetime
    next_refresh: datetime
    universe_size: int
    benchmark: str
    thresholds: dict[str, dict[str, float]]
    details: dict[str, Any] = field(default_factory=dict)  # diagnostics, not part of regime.json

    @property
    def regime(self) -> str:
        return self.label

    def to_dict(self) -> dict[str, Any]:
        """regime.json fields (SPEC §9) as plain JSON-ready types; ``partition_key`` is added by the pipeline."""
        as_of = iso_z_exact(self.as_of)
        return {
            "timestamp": as_of,
            "regime": str(self.label),
            "indicators": {k: float(self.indicators[k]) for k in INDICATORS},
            "confidence": float(self.confidence),
            "votes": {k: str(self.votes[k]) for k in VOTE_KEYS.values()},
            "weight_blend": {f: float(self.weight_blend[f]) for f in FACTORS},
            "next_refresh": iso_z_exact(self.next_refresh),
            "as_of": as_of,
            "universe_size": int(self.universe_size),
            "benchmark": str(self.benchmark),
            "thresholds": {k: {"calm": float(v["calm"]), "volatile": float(v["volatile"])} for k, v in self.thresholds.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RegimeResult":
        """Inverse of :meth:`to_dict` (extra keys such as ``partition_key`` are ignored)."""
        return cls(
            label=data["regime"],
            confidence=float(data["confidence"]),
            indicators={k: float(data["indicators"][k]) for k in INDICATORS},
            votes=dict(data["votes"]),
            weight_blend={f: float(data["weight_blend"][f]) for f in FACTORS},
            as_of=to_utc(data["as_of"]),
            next_refresh=to_utc(data["next_refresh"]),
            universe_size=int(data["universe_size"]),
            benchmark=str(data["benchmark"]),
            thresholds={k: dict(v) for k, v in data["thresholds"].items()},
        )


def regime_universe(ranking: pd.DataFrame, config: AppConfig) -> list[str]:
    """Eligible ranked symbols by rank, at most ``config.universe.regime_universe_size`` (SPEC §6)."""
    if ranking is None or ranking.empty:
        return []
    all_ranks = ranking["rank"].to_numpy(dtype=float, na_value=np.nan)
    elig = ranking["eligible"].to_numpy(dtype=bool) & ~np.isnan(all_ranks)
    ranks = all_ranks[elig]
    symbols = ranking["symbol"].to_numpy(dtype=object)[elig]
    return symbols[np.argsort(ranks, kind="stable")][: config.universe.regime_universe_size].tolist()


def benchmark_closes(series: Mapping[str, tuple[np.ndarray, np.ndarray]], benchmark: str, timeframe: str,
                     venues: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Closes (oldest → newest) of the benchmark on its chosen venue (see module docstring).

    ``series``: venue → (close, volume) of the benchmark's sanitized closed bars on that venue,
    oldest → newest (venues without bars absent). The venue: enough bars for the full return
    window, then the most bars in it, then the largest Σ close·volume over them (pandas'
    compensated sum), then config order."""
    if not series:
        raise ValueError(
            f"benchmark {benchmark} (config regime.benchmark) has no closed bars in the snapshot on venues {', '.join(venues)}"
        )
    n, _ = VOL_WINDOW[timeframe]

    def preference(venue: str) -> tuple:
        close, volume = series[venue]
        tail = min(len(close), n + 1)
        usd = kahan_sum((close[len(close) - tail:] * volume[len(close) - tail:]).tolist())
        return (-(tail >= n + 1), -tail, -usd, venues.index(venue))

    venue = min(sorted(series), key=preference)
    closes = np.asarray(series[venue][0], dtype=float)
    if len(closes) < n + 1:
        raise ValueError(
            f"benchmark {benchmark} has only {len(closes)} closed {timeframe} bars on {venue}; "
            f"realized_vol_7d needs {n + 1}"
        )
    return closes, venue


def period_close_matrix(periods: PairPeriods, symbols: list[str], n_periods: int, venues: tuple[str, ...]) -> tuple[np.ndarray, dict[str, str]]:
    """(len(symbols), n_periods) period closes on each symbol's primary venue (NaN when missing).

    ``periods``: the pairs of ``venues`` trading ``symbols`` (any order) with at least their periods
    0..n_periods−1. Primary venue: most periods present, then largest Σ close·volume over them
    (pandas' compensated sum in period order), then config order. Returns the matrix and
    {symbol: primary venue}.
    """
    mat = np.full((len(symbols), n_periods), np.nan)
    row_of = {s: i for i, s in enumerate(symbols)}
    row = np.array([row_of.get(s, -1) for s in periods.symbol.tolist()], dtype=np.int64)
    present = periods.n_bars[:, :n_periods] > 0
    n_present = present.sum(axis=1)
    cand = np.flatnonzero((row >= 0) & (n_present > 0))
    if not len(cand):
        return mat, {}
    usd = kahan_rows(periods.usd_volume[cand, :n_periods], present[cand])
    order = np.array([venues.index(v) for v in periods.venue[cand].tolist()], dtype=np.int64)
    # per symbol: most periods, then largest Σ close·volume, then config order
    ranked = cand[np.lexsort((order, -usd, -n_present[cand], row[cand]))]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = row[ranked][1:] != row[ranked][:-1]
    best = ranked[first]
    closes = periods.close[best, :n_periods]
    mat[row[best], : closes.shape[1]] = closes
    primary = dict(sorted(zip(periods.symbol[best].tolist(), periods.venue[best].tolist())))
    return mat, primary


def indicators_from_periods(
    periods: PairPeriods, bench: Mapping[str, tuple[np.ndarray, np.ndarray]], symbols: list[str], config: AppConfig,
    timeframe: str, validate: bool = True,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The three indicators and their diagnostics from the regime universe ``symbols`` (non-empty),
    its pairs' periods at T (:func:`period_close_matrix`) and the benchmark's bars per venue
    (:func:`benchmark_closes`)."""
    rc = config.regime
    venues = tuple(config.market.venues)
    bench_closes, bench_venue = benchmark_closes(bench, rc.benchmark, timeframe, venues)
    n_periods = max(rc.ma_periods, rc.thrust_periods + 1)
    mat, primary = period_close_matrix(periods, symbols, n_periods, venues)
    raw = indicators_from_closes(
        bench_closes,
        mat,
        timeframe=timeframe,
        ma_periods=rc.ma_periods,
        thrust_periods=rc.thrust_periods,
        thrust_ema_span=rc.thrust_ema_span,
    )
    indicators = {k: float(raw[k]) for k in INDICATORS}
    if validate:
        validate_frame(RegimeIndicatorsSchema, pd.DataFrame([indicators]))
    details = {
        "benchmark_venue": bench_venue,
        "n_ma_symbols": raw["n_ma_symbols"],
        "n_thrust_comparisons": raw["n_thrust_comparisons"],
        "primary_venues": primary,
        "symbols": symbols,
    }
    return indicators, details


def _compute(snapshot: MarketSnapshot, ranking: pd.DataFrame, config: AppConfig, validate: bool = True) -> tuple[dict[str, float], dict[str, Any]]:
    """Indicators from the snapshot's sanitized bars (:meth:`MarketSnapshot.clean_bars`, selected
    through :meth:`MarketSnapshot.bar_pairs` — garbage bars never vote) and memoised period table;
    only the regime universe's pairs are touched, so the cost does not grow with the snapshot."""
    rc = config.regime
    venues = tuple(config.market.venues)
    symbols = regime_universe(ranking, config)
    if not symbols:
        raise ValueError("regime: the ranking has no eligible symbols (empty regime universe)")
    n_periods = max(rc.ma_periods, rc.thrust_periods + 1)
    snapshot.use_bar_rules(BarRules.of(config))
    pairs = snapshot.bar_pairs()
    pairs = pairs[(pairs["venue"].isin(venues) & pairs["symbol"].isin(set(symbols) | {rc.benchmark})).to_numpy()]
    bench = {}
    if len(pairs):
        clean = snapshot.clean_bars()[0]
        close, volume = clean["close"].to_numpy(float), clean["volume"].to_numpy(float)
        for venue, start, stop in pairs.loc[(pairs["symbol"] == rc.benchmark).to_numpy(), ["venue", "start", "stop"]].itertuples(index=False):
            bench[venue] = (close[start:stop], volume[start:stop])
        periods = PairPeriods.from_table(
            snapshot.periods(), pairs["venue"].to_numpy(object), pairs["symbol"].to_numpy(object), max_periods=n_periods
        )
    else:
        periods = PairPeriods.empty(np.zeros(0, object), np.zeros(0, object), n_periods)
    return indicators_from_periods(periods, bench, symbols, config, snapshot.timeframe, validate)


def compute_indicators(snapshot: MarketSnapshot, ranking: pd.DataFrame, config: AppConfig, *, validate: bool = True) -> dict[str, float]:
    """``{realized_vol_7d, pct_above_20ma, breadth_thrust}`` at ``snapshot.as_of`` (SPEC §6).

    See the module docstring for the universe, venue and window choices. Validated with
    :data:`cryptorun_core.schemas.RegimeIndicatorsSchema` (through :func:`cryptorun_core.schemas.validate_frame`)
    unless ``validate=False`` (the Dagster asset's output type validates the same row). Raises
    ValueError (naming what is missing) for a missing benchmark, an empty universe or too little history.
    """
    return _compute(snapshot, ranking, config, validate)[0]


def regime_result(
    indicators: Mapping[str, float], as_of: datetime, universe_size: int, config: AppConfig, details: dict | None = None
) -> RegimeResult:
    """Votes → majority label → confidence → weight blend → next refresh from the three indicators
    at ``as_of`` (SPEC §6): the one chain behind every regime.json."""
    rc = config.regime
    values = {k: float(indicators[k]) for k in INDICATORS}
    votes = vote(values, rc.thresholds)
    label = majority(votes)
    conf = confidence(values, votes, label, rc.thresholds)
    as_of = to_utc(as_of)
    thresholds = {ind: {"calm": getattr(rc.thresholds, ind).calm, "volatile": getattr(rc.thresholds, ind).volatile} for ind in INDICATORS}
    return RegimeResult(
        label=label,
        confidence=conf,
        indicators=values,
        votes=votes,
        weight_blend=blend_weights(label, conf, rc.weights),
        as_of=as_of,
        next_refresh=next_refresh(as_of, rc.refresh_hours),
        universe_size=int(universe_size),
        benchmark=rc.benchmark,
        thresholds=thresholds,
        details=details or {},
    )


def compute_regime(snapshot: MarketSnapshot, ranking: pd.DataFrame, config: AppConfig, *, validate: bool = True) -> RegimeResult:
    """Indicators → votes → majority label → confidence → weight blend → next refresh (SPEC §6).

    ``validate=False`` skips the check of the indicators (see :func:`compute_indicators`)."""
    indicators, details = _compute(snapshot, ranking, config, validate)
    return regime_result(indicators, snapshot.as_of, len(details["symbols"]), config, details)
