"""The factor stage a scan and its score bound share (SPEC §4–§5): per evaluated symbol the venue (book
metrics, else the bar fallback), momentum and technical on that venue's hourly matrix, the period
matrices (volume factor; the VADR of the whole ranked universe), quality and the residualization.

Reference venue for the VADR p80: an evaluated symbol uses its chosen venue; any other ranked
symbol (no book in this snapshot) uses the venue with the most closed bars in the window (ties:
fresher bars, then job venue order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cryptorun_core.config import FACTORS, AppConfig
from cryptorun_core.factors import bar_matrix_rows
from cryptorun_core.factors.momentum import momentum_factor
from cryptorun_core.factors.quality import quality_factor
from cryptorun_core.factors.residualize import residualize
from cryptorun_core.factors.technical import technical_factor
from cryptorun_core.factors.volume import volume_factor
from cryptorun_core.market.snapshot import MarketSnapshot, SNAPSHOT_BAR_COLUMNS
from cryptorun_core.microstructure import bar_status_arrays, choose_venue_arrays
from cryptorun_core.periods import period_table
from cryptorun_core.rows import expand
from cryptorun_core.scan_inputs import ScanBars, ScanInputs
from cryptorun_core.vadr import period_cube


@dataclass(frozen=True)
class FactorStage:
    """Factors of the evaluated symbols (``inputs.symbols`` order) on their chosen venues.

    ``choice``: :func:`choose_venue_arrays` columns; ``pairs``: symbol → chosen venue (None: no bars);
    ``ref_pairs``: symbol → the venue its VADR is read on, for the ranked universe's symbols with bars
    (``uni_syms``) and the evaluated ones; ``raw``: the four factors before residualization, ``final``
    after (:func:`residualize` output in ``residualized``)."""

    choice: Mapping[str, Any]
    pairs: dict[str, str | None]
    tiers: dict[str, str | None]
    depth_min: np.ndarray
    n_bars: np.ndarray
    mom: Mapping[str, np.ndarray]
    tech: Mapping[str, np.ndarray]
    vol: Mapping[str, np.ndarray]
    qual: Mapping[str, np.ndarray]
    pm: dict[str, np.ndarray]
    uni_syms: list[str]
    ref_pairs: dict[str, str | None]
    cube: dict[str, np.ndarray]
    where: dict[tuple[str, str], int]
    raw: dict[str, np.ndarray]
    residualized: Mapping[str, np.ndarray]
    final: dict[str, np.ndarray]

    def period_rows(self, items) -> dict[str, np.ndarray]:
        """The period matrices' rows of (symbol, venue) ``items`` (no venue or no periods: NaN rows)."""
        return cube_rows(self.cube, np.array([self.where.get((v, s), -1) if v is not None else -1 for s, v in items], dtype=np.int64))


def factor_stage(snapshot: MarketSnapshot, ranking: pd.DataFrame, inputs: ScanInputs, config: AppConfig) -> FactorStage:
    """The shared factor stage of :func:`cryptorun_core.engine.run_scan` and
    :func:`cryptorun_core.engine.score_upper_bound` (see :class:`FactorStage`)."""
    t, H, venues, symbols = inputs.t, inputs.history_bars, inputs.venues, inputs.symbols
    sbars, rk = inputs.bars, inputs.ranked_rows
    bstat = bar_status_arrays(sbars.venue, sbars.symbol, sbars.ts, sbars.start, sbars.stop, t, config, H)
    tiers = {s: (t_ if isinstance(t_, str) else None) for s, t_ in zip(symbols, rk["tier"])}
    tier_cfg = {tc.name: tc for tc in config.universe.tiers}
    choice = choose_venue_arrays(inputs.books.metrics, bstat, symbols, venues, config, tiers)
    pairs = dict(zip(choice["symbol"], choice["venue"]))

    # ---- factors on the hourly matrix of each symbol's venue
    bar_index = sbars.index()
    at = [bar_index.get((v, s), -1) if v is not None else -1 for s, v in pairs.items()]
    found = np.array(at, dtype=np.int64)
    start = np.where(found >= 0, sbars.start[np.maximum(found, 0)] if len(sbars.start) else 0, 0)
    stop = np.where(found >= 0, sbars.stop[np.maximum(found, 0)] if len(sbars.stop) else 0, 0)
    # only the matrices the factors read (open and volume are not), dropped once the factors are known
    mat = bar_matrix_rows(sbars.ts, sbars.cols, start, stop, list(pairs.items()), t, H, values=("high", "low", "close"))
    fc = config.factors
    mom = momentum_factor(mat.close, mat.observed, inputs.tf_weights, fc.momentum.k, fc.momentum.vol_window_bars)
    tech = technical_factor(mat.high, mat.low, mat.close, fc.rsi_period, fc.adx_period, fc.range_periods * 24)
    n_bars = mat.n_bars
    del mat

    # ---- periods: VADR over the whole ranked universe, volume/premove for the evaluated
    uni = ranking[ranking["segment"].isin(("hot", "warm"))]
    uni_syms = sorted(set(uni["symbol"].astype(str)) & set(sbars.symbol.tolist()))
    ref = reference_venues(bstat, venues)
    ref_pairs = {s: (pairs[s] if s in pairs and pairs[s] is not None else ref.get(s)) for s in uni_syms}
    for s in symbols:
        ref_pairs.setdefault(s, pairs.get(s))
    n_periods = max(config.vadr.min_prior_periods + 1, config.premove.compression_periods, config.premove.volume_build_periods + 1, 8)
    cube, where = pair_periods(snapshot, sbars, t, H, n_periods, ref_pairs)
    pm = cube_rows(cube, np.array([where.get((v, s), -1) if v is not None else -1 for s, v in pairs.items()], dtype=np.int64))
    vol = volume_factor(pm["usd"], 7)

    # ---- quality, residualization
    tier_score = np.array([tier_cfg[tiers[s]].score if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    spread_cap = np.array([tier_cfg[tiers[s]].spread_max_bps if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    depth_min = np.array([tier_cfg[tiers[s]].depth_min_usd if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    qual = quality_factor(tier_score, np.asarray(choice["spread_bps"], dtype=float), spread_cap, np.asarray(choice["depth_usd"], dtype=float),
                          depth_min, n_bars, H, np.asarray(choice["sources"], dtype=float), len(venues))
    raw_factors = {"momentum": mom["momentum_core"], "technical": tech["technical"], "volume": vol["volume"], "quality": qual["quality"]}
    res = residualize(raw_factors, fc.orthogonalize, fc.min_cross_section)
    return FactorStage(choice, pairs, tiers, depth_min, n_bars, mom, tech, vol, qual, pm, uni_syms, ref_pairs, cube, where,
                       raw_factors, res, {f: res[f] for f in FACTORS})


def cube_rows(cube: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``idx`` of a period cube (−1: a pair without periods → NaN, n_bars 0)."""
    idx = np.asarray(idx, dtype=np.int64)
    missing = (idx < 0)[:, None]
    return {k: np.where(missing, 0.0 if k == "n_bars" else np.nan, v[np.maximum(idx, 0)]) if len(v) else
            np.full((len(idx), v.shape[1]), 0.0 if k == "n_bars" else np.nan) for k, v in cube.items()}


def pair_periods(snapshot: MarketSnapshot, sb: ScanBars, t: pd.Timestamp, n_hours: int, n_periods: int,
                  ref_pairs: Mapping[str, str | None]) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], int]]:
    """Period matrices (:func:`cryptorun_core.vadr.period_cube`) of the scan's pairs and the row of each
    (venue, symbol) in them. When the periods lie inside the history window they are the snapshot's
    memoised period table; otherwise they are aggregated from the window's bars of ``ref_pairs``."""
    if n_periods * 24 <= n_hours:
        pairs = snapshot.bar_pairs() if len(snapshot.clean_bars()[0]) else None
        if pairs is None or len(pairs) == 0:
            return period_cube(pd.DataFrame(columns=["venue", "symbol", "period"]), np.zeros(0, dtype=object),
                               np.zeros(0, dtype=object), n_periods), {}
        where = {(v, s): i for i, (v, s) in enumerate(zip(pairs["venue"], pairs["symbol"]))}
        return snapshot.pair_periods(n_periods), where
    index = sb.index()
    wanted = sorted({index[(v, s)] for s, v in ref_pairs.items() if (v, s) in index})
    rows, owner = expand(sb.start[wanted], sb.stop[wanted])
    bars = pd.DataFrame({"venue": sb.venue[wanted][owner], "symbol": sb.symbol[wanted][owner],
                         "timestamp": pd.to_datetime(sb.ts[rows], utc=True),
                         **{c: sb.cols[c][rows] for c in SNAPSHOT_BAR_COLUMNS[3:]}})
    ptab = period_table(bars, t, "1h", max_periods=n_periods)
    return period_cube(ptab, sb.venue[wanted], sb.symbol[wanted], n_periods), {(sb.venue[i], sb.symbol[i]): j for j, i in enumerate(wanted)}


def reference_venues(bstat: Mapping[str, np.ndarray], venues: tuple[str, ...]) -> dict[str, str]:
    """Per symbol with bars (``bstat``: :func:`bar_status_arrays` columns), the venue with the most closed
    bars in the window (ties: fresher, then job venue order)."""
    venue = np.asarray(bstat["venue"], dtype=object)
    symbol = np.asarray(bstat["symbol"], dtype=object)
    if len(symbol) == 0:
        return {}
    scode = pd.factorize(symbol, sort=True)[0]
    vorder = {v: i for i, v in enumerate(venues)}
    order = np.lexsort((np.array([vorder.get(v, len(venues)) for v in venue]),
                        np.nan_to_num(np.asarray(bstat["bar_lag_bars"], dtype=float), nan=np.inf),
                        -np.asarray(bstat["n_bars"], dtype=np.int64), scode))
    sc = scode[order]
    first = order[np.concatenate([[True], sc[1:] != sc[:-1]])]
    return dict(zip(symbol[first].tolist(), venue[first].tolist()))
