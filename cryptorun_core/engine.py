"""The scan engine: ``run_scan(snapshot, ranking, regime, config, job) -> ScanResult``.

One call computes a whole cycle at T = ``snapshot.as_of`` for the job's segment (SPEC §3–§9):
book metrics and venue choice, factors and score, VADR with its universe-wide p80, gates,
signals, premove (hot) and the explain document. Pure pandas/numpy; no Dagster.

Point in time and determinism:

- Only hourly bars closed at or before T and opened within the last ``market.history_bars``
  hours, and books stamped at or before T, are used; a regime whose ``as_of`` is after T is refused
  (:mod:`cryptorun_core.scan_inputs`).
- Inputs are put in a canonical order first (bars by venue, symbol, time; duplicates of the same
  bar resolve to the same row whatever the order), so shuffling input rows changes no byte.
- ``explain['hashes']`` hashes exactly the point-in-time inputs the scan uses — bars of the ranked
  universe (hot + warm) on the job's venues, books of the evaluated symbols — (so appending bars
  after T does not change it) as a sorted multiset of per-row hashes (``pandas.util.hash_pandas_object``) over
  the contract columns, i.e. independently of row order (computed with numpy by :mod:`cryptorun_core.tablehash`,
  from the row ranges the scan reads, without materialising the tables); the config hash is the sha256 of the
  canonical JSON of ``config.model_dump(mode="json")``.
- Numbers in ``explain`` are rounded as in the CSVs (:data:`cryptorun_core.artifacts.ROUNDING`);
  other floats to 6 decimals (:mod:`cryptorun_core.explain`).

The factor stage (venue choice, factors, periods, residualization) is shared with
:func:`score_upper_bound` (:mod:`cryptorun_core.scan_factors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cryptorun_core.artifacts import SIGNALS_COLUMNS, WARM_SIGNALS_COLUMNS
from cryptorun_core.config import FACTORS, TIMEFRAME_KEYS, AppConfig, JobConfig
from cryptorun_core.explain import data_quality, explain_document
from cryptorun_core.factors.residualize import residualize
from cryptorun_core.factors.score import blend_score, contributions
from cryptorun_core.gates import gate_columns
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.premove import premove_frame
from cryptorun_core.scan_factors import factor_stage
from cryptorun_core.scan_inputs import bars_hash, books_hash, fetch_cache, scan_inputs, segment_ranking, with_bars_of
from cryptorun_core.schemas import (
    BookMetricsSchema, EvaluatedSchema, PremoveSchema, SignalsSchema, WarmSignalsSchema, validate_frame,
)
from cryptorun_core.timefmt import iso_z
from cryptorun_core.vadr import vadr_from_matrices, vadr_threshold

EXTRA_SIGNAL_COLUMNS = ("tier", "technical", "volume", "quality", "vadr_min", "depth_badge")


@dataclass
class ScanResult:
    """One scan cycle: entries, every evaluated symbol, premove (hot only) and explain.json content."""

    signals: pd.DataFrame
    evaluated: pd.DataFrame
    premove: pd.DataFrame | None
    explain: dict


def run_scan(
    snapshot: MarketSnapshot, ranking: pd.DataFrame, regime: Mapping[str, Any], config: AppConfig, job: JobConfig,
    *, validate: bool = True,
) -> ScanResult:
    """Evaluate the job's segment of ``ranking`` at T = ``snapshot.as_of`` (see module docstring).

    ``validate=False`` skips the pandera checks of the book metrics, signals, evaluated and premove
    tables (for callers whose output types validate the same frames, e.g. the Dagster assets).
    """
    settings = job.config
    inputs = scan_inputs(snapshot, ranking, regime, config, job)
    metrics = inputs.books.metrics
    if len(metrics["venue"]) and validate:
        validate_frame(BookMetricsSchema, pd.DataFrame(metrics))
    stage = factor_stage(snapshot, ranking, inputs, config)
    t, symbols, venues, rk, label, weight_blend = inputs.t, inputs.symbols, inputs.venues, inputs.ranked_rows, inputs.label, inputs.weight_blend
    ts_iso = iso_z(t)
    choice, tiers, depth_min, n_bars = stage.choice, stage.tiers, stage.depth_min, stage.n_bars
    mom, tech, vol, qual, pm = stage.mom, stage.tech, stage.vol, stage.qual, stage.pm
    raw_factors, res, final = stage.raw, stage.residualized, stage.final

    # ---- VADR over the whole ranked universe; its p80 is the gate's threshold
    k_prior = config.vadr.min_prior_periods
    ref_row = {s: i for i, s in enumerate(stage.ref_pairs)}
    vm = stage.period_rows(stage.ref_pairs.items())
    vres = vadr_from_matrices(vm["range"][:, : k_prior + 1], vm["usd"][:, : k_prior + 1], vm["n_bars"][:, : k_prior + 1], k_prior, 24)
    uni_rows = np.array([ref_row[s] for s in stage.uni_syms], dtype=np.int64)
    uni_vadr = vres["vadr"][uni_rows]
    vthr = vadr_threshold(uni_vadr[~vres["vadr_frozen"][uni_rows]], config)

    score = blend_score(final, weight_blend)
    contrib = contributions(final, weight_blend)

    ev_rows = np.array([ref_row[s] for s in symbols], dtype=np.int64)
    ev_columns = {
            "timestamp": np.full(len(symbols), ts_iso, dtype=object),
            "rank": rk["_rank"].astype("Int64").to_numpy(),
            "symbol": np.array(symbols, dtype=object),
            "tier": np.array([tiers[s] for s in symbols], dtype=object),
            "venue": np.asarray(choice["venue"], dtype=object),
            "sources": np.asarray(choice["sources"], dtype=np.int64),
            "fresh": np.asarray(choice["fresh"], dtype=object),
            "fresh_ok": np.asarray(choice["fresh_ok"], dtype=bool),
            "depth_badge": np.asarray(choice["depth_badge"], dtype=object),
            "has_book": np.asarray(choice["has_book"], dtype=bool),
            "book_invalid_reason": np.asarray(choice["book_invalid_reason"], dtype=object),
            "spread_bps": np.asarray(choice["spread_bps"], dtype=float),
            "depth_usd": np.asarray(choice["depth_usd"], dtype=float),
            "bid_depth_usd": np.asarray(choice["bid_depth_usd"], dtype=float),
            "ask_depth_usd": np.asarray(choice["ask_depth_usd"], dtype=float),
            "depth_min_usd": depth_min,
            "book_age_s": np.asarray(choice["book_age_s"], dtype=float),
            "bar_lag_bars": np.asarray(choice["bar_lag_bars"], dtype=float),
            "n_bars": n_bars.astype("int64"),
            "score": score,
            "momentum_core": final["momentum"],
            "technical": final["technical"],
            "volume": final["volume"],
            "quality": final["quality"],
            "technical_raw": raw_factors["technical"],
            "volume_raw": raw_factors["volume"],
            "quality_raw": raw_factors["quality"],
            "residualized": res["residualized"].astype(bool),
            "momentum_raw": mom["raw"],
            "accel": mom["accel"],
            "sigma_1h": mom["sigma"],
            "r_24h": mom["r_24h"],
            **{f"z_{k}": mom["z"][:, i] for i, k in enumerate(TIMEFRAME_KEYS)},
            "rsi_4h": tech["rsi_4h"],
            "adx_1h": tech["adx_1h"],
            "range_position": tech["range_position"],
            "volume_surge": vol["volume_surge"],
            **{k: qual[k] for k in ("q_tier", "q_spread", "q_depth", "q_completeness", "q_sources")},
            "vadr": vres["vadr"][ev_rows],
            "vadr_frozen": vres["vadr_frozen"][ev_rows].astype(bool),
            "complete_prior_periods": vres["complete_prior_periods"][ev_rows].astype("int64"),
    }
    gate_cols, gate_results = gate_columns(ev_columns, len(symbols), config, settings, vthr)
    ev_all = {**ev_columns, **gate_cols}
    ev = pd.DataFrame(ev_all)

    # ---- signals: the entries by score descending, ties by symbol
    entry = np.flatnonzero(gate_cols["decision"] == "entry")
    sym_arr = np.asarray(symbols, dtype=object)
    if len(entry):
        entry = entry[np.lexsort((pd.factorize(sym_arr[entry], sort=True)[0], -np.asarray(score)[entry]))]
    sig = {c: np.asarray(v)[entry] for c, v in ev_all.items()}
    sig["regime"] = np.full(len(entry), label, dtype=object)
    spec_cols = list(SIGNALS_COLUMNS)
    if settings.universe == "warm":
        cached, ttl = fetch_cache(snapshot.fetches, list(zip(sig["symbol"], sig["venue"])))
        sig.update(cached=np.array(cached, dtype=bool), ttl_remaining_s=np.array(ttl, dtype=float))
        spec_cols = list(WARM_SIGNALS_COLUMNS)
    signals = pd.DataFrame({c: sig[c] for c in spec_cols + list(EXTRA_SIGNAL_COLUMNS)})
    signals["sources"] = signals["sources"].astype("int64")
    if validate:
        validate_frame(WarmSignalsSchema if settings.universe == "warm" else SignalsSchema, signals)
        validate_frame(EvaluatedSchema, ev)

    # ---- premove (hot scan)
    premove = None
    if settings.premove:
        premove = premove_frame(ev, pm["range"], pm["usd"], config.premove, ts_iso)
        if validate:
            validate_frame(PremoveSchema, premove)

    explain = explain_document(
        t, job, inputs.regime_used, weight_blend, inputs.tf_weights, config, settings, vthr, ev_all, gate_results, contrib,
        snapshot, {"bars": bars_hash(inputs.bars), "books": books_hash(inputs.books)}, ranking, regime,
    )
    explain["data_quality"] = data_quality(inputs.bar_issues, metrics, snapshot, symbols, venues, choice)
    return ScanResult(signals=signals, evaluated=ev, premove=premove, explain=explain)


def score_upper_bound(
    snapshot: MarketSnapshot, ranking: pd.DataFrame, regime: Mapping[str, Any], config: AppConfig, job: JobConfig,
) -> pd.Series:
    """The best score each symbol of the job's segment could reach with a perfect book (quality = 100).

    Momentum, technical and volume need bars only, and their residualization (technical on momentum,
    volume on momentum and technical') does not involve quality; quality' = clip(50 + residual, 0, 100)
    is at most 100 and the score is monotone in it, so ``blend(momentum, technical', volume', 100)`` is
    at least the score :func:`run_scan` computes — given the same venue per symbol and the same
    residualization cross-section (rows with all four factors finite). Both are taken as the scan
    would: the venue from the snapshot's books when it has them, otherwise the bar fallback (most
    bars, fresher, venue order); the cross-section as if every symbol had a book (quality 100
    everywhere) *and* as with the snapshot's actual books, keeping the larger of the two bounds.
    The live path requests books only for symbols whose bound reaches ``job.config.score_min``.

    Returns a float Series indexed by symbol in rank order (NaN when the symbol has no bars).

    Only the evaluated symbols' bars enter the bound (their venue choice, factors, periods and
    cross-section; the rest of the ranked universe only feeds the VADR p80, a gate), so the scan
    runs on a snapshot holding just those bars: sanitizing and aggregating the whole universe's
    bars would be most of its cost.
    """
    evaluated = segment_ranking(ranking, job)["symbol"].astype(str).tolist()
    return upper_bound_of(with_bars_of(snapshot, evaluated), ranking, regime, config, job)


def upper_bound_of(
    snapshot: MarketSnapshot, ranking: pd.DataFrame, regime: Mapping[str, Any], config: AppConfig, job: JobConfig,
) -> pd.Series:
    """:func:`score_upper_bound` computed on every bar of ``snapshot`` (the same numbers, at the cost of
    sanitizing the whole universe's bars)."""
    inputs = scan_inputs(snapshot, ranking, regime, config, job)
    stage = factor_stage(snapshot, ranking, inputs, config)
    fc = config.factors
    best = np.full(len(inputs.symbols), 100.0)
    with_books = blend_score({**stage.final, "quality": best}, inputs.weight_blend)
    every_book = residualize({**stage.raw, "quality": best}, fc.orthogonalize, fc.min_cross_section)
    bound = np.fmax(with_books, blend_score({**{f: every_book[f] for f in FACTORS}, "quality": best}, inputs.weight_blend))
    return pd.Series(bound, index=pd.Index(inputs.symbols, name="symbol"), name="score_upper_bound")
