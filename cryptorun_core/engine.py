"""The scan engine: ``run_scan(snapshot, ranking, regime, config, job) -> ScanResult``.

One call computes a whole cycle at T = ``snapshot.as_of`` for the job's segment (SPEC §3–§9):
book metrics and venue choice, factors and score, VADR with its universe-wide p80, gates,
signals, premove (hot) and the explain document. Pure pandas/numpy; no Dagster.

Point in time and determinism:

- Only hourly bars closed at or before T and opened within the last ``market.history_bars``
  hours, and books stamped at or before T, are used; a regime whose ``as_of`` is after T is refused.
- Inputs are put in a canonical order first (bars by venue, symbol, time; duplicates of the same
  bar resolve to the same row whatever the order), so shuffling input rows changes no byte.
- ``explain['hashes']`` hashes exactly the point-in-time inputs the scan uses — bars of the ranked
  universe (hot + warm) on the job's venues, books of the evaluated symbols — (so appending bars
  after T does not change it) as a sorted multiset of per-row hashes (``pandas.util.hash_pandas_object``) over
  the contract columns, i.e. independently of row order; the config hash is the sha256 of the
  canonical JSON of ``config.model_dump(mode="json")``.
- Numbers in ``explain`` are rounded as in the CSVs (:data:`cryptorun_core.artifacts.ROUNDING`);
  other floats to 6 decimals.

Reference venue for the VADR p80: an evaluated symbol uses its chosen venue; any other ranked
symbol (no book in this snapshot) uses the venue with the most closed bars in the window (ties:
fresher bars, then job venue order).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cryptorun_core.artifacts import SIGNALS_COLUMNS, WARM_SIGNALS_COLUMNS, iso_z, round_named
from cryptorun_core.config import FACTORS, TIMEFRAME_KEYS, AppConfig, JobConfig
from cryptorun_core.factors import bar_matrix
from cryptorun_core.factors.momentum import momentum_factor
from cryptorun_core.factors.quality import quality_factor
from cryptorun_core.factors.residualize import residualize
from cryptorun_core.factors.score import blend_score, contributions
from cryptorun_core.factors.technical import technical_factor
from cryptorun_core.factors.volume import volume_factor
from cryptorun_core.gates import GATES, evaluate_gates, tier_thresholds
from cryptorun_core.market.snapshot import MarketSnapshot, SNAPSHOT_BAR_COLUMNS, SNAPSHOT_BOOK_COLUMNS
from cryptorun_core.microstructure import bar_status, book_metrics, choose_venue, refuse_aggregators, utc_series
from cryptorun_core.periods import period_table
from cryptorun_core.premove import premove_frame
from cryptorun_core.quality import empty_issues, issues_from_flags, sanitize_bars
from cryptorun_core.schemas import BookMetricsSchema, EvaluatedSchema, PremoveSchema, SignalsSchema, WarmSignalsSchema
from cryptorun_core.vadr import period_matrices, vadr_table, vadr_threshold

_HOUR = pd.Timedelta(hours=1)
EXTRA_SIGNAL_COLUMNS = ("tier", "technical", "volume", "quality", "vadr_min", "depth_badge")
GATE_ROUNDING = {"history": None, "freshness": 2, "score": 1, "vadr": 2, "spread": 1, "depth": 0, "fatigue": 4}


@dataclass
class ScanResult:
    """One scan cycle: entries, every evaluated symbol, premove (hot only) and explain.json content."""

    signals: pd.DataFrame
    evaluated: pd.DataFrame
    premove: pd.DataFrame | None
    explain: dict


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _utc(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _r(x: Any, digits: int | None = 6) -> Any:
    """JSON-ready rounded number (None for NaN)."""
    if x is None or isinstance(x, (bool, np.bool_)):
        return None if x is None else bool(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    if not math.isfinite(f):
        return None
    if digits is None:
        return int(round(f))
    return round(f, digits) if digits > 0 else int(round(f))


def _rn(name: str, x: Any) -> Any:
    v = round_named(name, x)
    return _r(v) if isinstance(v, float) else v


def prepare_bars(
    bars: pd.DataFrame, as_of: pd.Timestamp, n_hours: int, venues: tuple[str, ...], symbols: list[str] | None = None,
    issues: list[pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Point-in-time, canonical, sanitized bars: closed ≤ T, in the history window, job venues, sorted by
    (venue, symbol, timestamp), one row per bar.

    Garbage is rejected or repaired by :func:`cryptorun_core.quality.sanitize_bars` (bars after T,
    NaN / non-positive prices, high < low, duplicates, …); its issues table is appended to ``issues``
    when a list is given. Conflicting copies of one bar are all dropped, identical copies collapse
    to one, so the result never depends on the input row order."""
    cols = list(SNAPSHOT_BAR_COLUMNS)
    if bars is None or len(bars) == 0:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols}).astype(
            {"venue": object, "symbol": object, "timestamp": "datetime64[ns, UTC]"})
    ts_s = utc_series(bars["timestamp"].reset_index(drop=True))
    ts_all = ts_s.array.asi8  # int64 ns since epoch, UTC (NaT: int64 min)
    age_h = (as_of.value - ts_all) / 3.6e12
    k = np.floor(age_h - 1.0)
    venue_s = bars["venue"].astype(str)
    # bars after T (k < 0) and without a time are kept here so sanitation reports them
    keep = ((k < n_hours) | ts_s.isna().to_numpy()) & venue_s.isin(venues).to_numpy()  # pandas isin: hashed
    if symbols is not None:
        keep &= bars["symbol"].astype(str).isin(symbols).to_numpy()
    pos = np.nonzero(keep)[0]
    sub = pd.DataFrame({"venue": venue_s.to_numpy()[pos], "symbol": bars["symbol"].astype(str).to_numpy()[pos],
                        "timestamp": ts_s.iloc[pos].reset_index(drop=True)})
    for c in cols[3:]:
        sub[c] = pd.to_numeric(bars[c], errors="coerce").to_numpy(float)[pos]
    clean, found = sanitize_bars(sub, as_of, "1h")
    if issues is not None:
        issues.append(found)
    if len(clean) == 0:
        return prepare_bars(None, as_of, n_hours, venues)
    clean["timestamp"] = utc_series(clean["timestamp"])
    return clean[cols].reset_index(drop=True)


def prepare_books(books: pd.DataFrame, as_of: pd.Timestamp, venues: tuple[str, ...], symbols: list[str] | None = None) -> pd.DataFrame:
    """Books of the job's venues (and ``symbols``) stamped at or before T; aggregators anywhere are refused."""
    cols = list(SNAPSHOT_BOOK_COLUMNS)
    if books is None or len(books) == 0:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols}).astype(
            {"venue": object, "symbol": object, "side": object, "book_time": "datetime64[ns, UTC]"})
    refuse_aggregators(books["venue"].astype(str).unique().tolist())
    mask = books["venue"].astype(str).isin(venues).to_numpy()
    if symbols is not None:
        mask &= books["symbol"].astype(str).isin(symbols).to_numpy()
    b = books.loc[mask, cols].copy()
    for c in ("venue", "symbol", "side"):
        b[c] = b[c].astype(str)
    b["price"] = pd.to_numeric(b["price"], errors="coerce").astype(float)
    b["amount"] = pd.to_numeric(b["amount"], errors="coerce").astype(float)
    b["book_time"] = utc_series(b["book_time"])
    return b[(b["book_time"] <= as_of).to_numpy()].reset_index(drop=True)  # book_metrics orders canonically


def table_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """sha256 of a row-order-independent canonical serialisation of ``frame[columns]``."""
    h = hashlib.sha256()
    h.update(("|".join(columns) + "\n").encode())
    if frame is None or len(frame) == 0:
        return h.hexdigest()
    canon = pd.DataFrame(index=range(len(frame)))
    for c in columns:
        s = frame[c].reset_index(drop=True)
        if pd.api.types.is_datetime64_any_dtype(s):
            canon[c] = s.dt.tz_convert("UTC").astype("int64") if s.dt.tz is not None else s.astype("int64")
        elif pd.api.types.is_bool_dtype(s):
            canon[c] = s.astype(bool)
        elif pd.api.types.is_numeric_dtype(s):
            canon[c] = s.astype(float)
        else:  # strings: codes into the sorted distinct values, which are hashed too
            codes, uniques = pd.factorize(s.astype(str), sort=True)
            canon[c] = codes.astype(np.int64)
            h.update(("\x1f".join(map(str, uniques)) + "\n").encode("utf-8"))
    rows = np.sort(pd.util.hash_pandas_object(canon, index=False).to_numpy(np.uint64))
    h.update(rows.tobytes())
    return h.hexdigest()


def config_hash(config: AppConfig) -> str:
    """sha256 of the settings that shape the numbers; machine-local paths are left out so the same
    cycle computed in two checkouts (or artifact folders) carries the same hash."""
    settings = config.model_dump(mode="json")
    settings["global"] = {k: v for k, v in settings.get("global", settings.get("global_", {})).items() if k != "artifacts_dir"}
    settings.pop("global_", None)
    settings["market"]["replay"].pop("path", None)
    settings["market"]["ccxt"].pop("ohlcv_cache_dir", None)
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _regime_parts(regime: Mapping[str, Any], config: AppConfig, t: pd.Timestamp) -> tuple[str, float, dict[str, float], dict]:
    if not isinstance(regime, Mapping):
        raise ValueError("regime must be a mapping (RegimeResult.to_dict() plus partition_key)")
    label = regime.get("regime", regime.get("label"))
    if label not in config.factors.momentum.weights:
        raise ValueError(f"regime label {label!r} has no momentum timeframe weights (known: {sorted(config.factors.momentum.weights)})")
    blend = regime.get("weight_blend") or {}
    missing = [f for f in FACTORS if f not in blend]
    if missing:
        raise ValueError(f"regime weight_blend lacks {missing}")
    weight_blend = {f: float(blend[f]) for f in FACTORS}
    r_as_of = regime.get("as_of") or regime.get("timestamp")
    if r_as_of is not None and _utc(r_as_of) > t:
        raise ValueError(f"regime as_of {iso_z(r_as_of)} is after the scan's T {iso_z(t)} (point-in-time violation)")
    used = {
        "label": str(label),
        "confidence": _r(regime.get("confidence")),
        "as_of": iso_z(r_as_of) if r_as_of is not None else None,
        "partition_key": regime.get("partition_key"),
    }
    return str(label), float(regime.get("confidence") or 0.0), weight_blend, used


def _segments(universe: str) -> tuple[str, ...]:
    return ("hot", "warm") if universe == "all" else (universe,)


def _fetch_cache(fetches: pd.DataFrame, pairs: list[tuple[str, str | None]]) -> tuple[list[bool], list[float]]:
    cached, ttl = [False] * len(pairs), [np.nan] * len(pairs)
    if fetches is None or len(fetches) == 0 or not {"venue", "symbol", "kind"}.issubset(fetches.columns):
        return cached, ttl
    f = fetches[fetches["kind"] == "ohlcv"]
    if "ok" in f.columns:
        f = f[f["ok"].astype(bool)]
    f = f.assign(_fc=f["from_cache"].astype(bool) if "from_cache" in f.columns else False,
                 _ttl=pd.to_numeric(f["ttl_remaining_s"], errors="coerce") if "ttl_remaining_s" in f.columns else np.nan)
    f = f.sort_values(["venue", "symbol", "_fc", "_ttl"], kind="mergesort", na_position="first")
    last = f.drop_duplicates(["venue", "symbol"], keep="last").set_index(["venue", "symbol"])
    for i, (sym, venue) in enumerate(pairs):
        if venue is not None and (venue, sym) in last.index:
            row = last.loc[(venue, sym)]
            cached[i] = bool(row["_fc"])
            ttl[i] = float(row["_ttl"]) if pd.notna(row["_ttl"]) else np.nan
    return cached, ttl


# --------------------------------------------------------------------------------------------
# run_scan
# --------------------------------------------------------------------------------------------


def run_scan(
    snapshot: MarketSnapshot, ranking: pd.DataFrame, regime: Mapping[str, Any], config: AppConfig, job: JobConfig,
    *, validate: bool = True,
) -> ScanResult:
    """Evaluate the job's segment of ``ranking`` at T = ``snapshot.as_of`` (see module docstring).

    ``validate=False`` skips the pandera checks of the book metrics, signals, evaluated and premove
    tables (for callers whose output types validate the same frames, e.g. the Dagster assets).
    """
    return _run_scan(snapshot, ranking, regime, config, job, validate=validate)


def bar_factor_upper_bound(
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
    """
    return _run_scan(snapshot, ranking, regime, config, job, validate=False, upper_bound=True)


def _scan_bars(snapshot: MarketSnapshot, t: pd.Timestamp, n_hours: int, venues: tuple[str, ...], symbols: list[str],
               issues: list[pd.DataFrame]) -> pd.DataFrame:
    """:func:`prepare_bars` of the snapshot from its memoised sanitized bars: the same rows and the same
    issues (the flags of the bars it selects), without sanitizing the snapshot again."""
    if snapshot.bars is None or len(snapshot.bars) == 0:
        return prepare_bars(None, t, n_hours, venues)
    _, flags = snapshot.clean_bars()
    sel = snapshot.select_bars(venues, symbols)
    if len(flags):
        fts = flags["ts"].to_numpy(np.int64)
        fk = np.floor((t.value - fts) / 3.6e12 - 1.0)
        fkeep = (flags["venue"].isin(venues) & flags["symbol"].isin(symbols)).to_numpy() & (
            (fk < n_hours) | (fts == np.iinfo(np.int64).min))
        issues.append(issues_from_flags(flags[fkeep]))
    else:
        issues.append(empty_issues())
    if len(sel) == 0:
        return prepare_bars(None, t, n_hours, venues)
    k = np.floor((t.value - sel["timestamp"].array.asi8) / 3.6e12 - 1.0)
    inside = k < n_hours
    if not inside.all():
        sel = sel[inside].reset_index(drop=True)
        if len(sel) == 0:
            return prepare_bars(None, t, n_hours, venues)
    return sel


def _run_scan(
    snapshot: MarketSnapshot, ranking: pd.DataFrame, regime: Mapping[str, Any], config: AppConfig, job: JobConfig,
    *, validate: bool = True, upper_bound: bool = False,
):
    settings = job.config
    if snapshot.timeframe != "1h":
        raise ValueError(
            f"run_scan needs hourly bars; snapshot timeframe is {snapshot.timeframe!r} (daily-only snapshots "
            "support universe ranking and regime, not scans: momentum, RSI/ADX and freshness are hourly)"
        )
    t = _utc(snapshot.as_of)
    ts_iso = iso_z(t)
    label, conf, weight_blend, regime_used = _regime_parts(regime, config, t)
    tf_weights = dict(config.factors.momentum.weights[label])
    venues = tuple(settings.venues)
    refuse_aggregators(venues, what="job venues")
    H = int(config.market.history_bars)

    # ---- evaluated symbols, in rank order
    rk = ranking[ranking["segment"].isin(_segments(settings.universe))].copy()
    rk["_rank"] = pd.to_numeric(rk["rank"], errors="coerce")
    rk = rk.sort_values(["_rank", "symbol"], kind="mergesort", na_position="last").reset_index(drop=True)
    symbols = rk["symbol"].astype(str).tolist()
    ranked = sorted(set(ranking.loc[ranking["segment"].isin(("hot", "warm")), "symbol"].astype(str)) | set(symbols))

    # inputs used: bars of the ranked universe (VADR p80), books of the evaluated symbols
    bar_issues: list[pd.DataFrame] = []
    bars = _scan_bars(snapshot, t, H, venues, ranked, bar_issues)
    books = prepare_books(snapshot.books, t, venues, symbols)
    metrics = book_metrics(books, t, config)
    if len(metrics) and validate:
        BookMetricsSchema.validate(metrics)
    bstat = bar_status(bars, t, config, H)
    tiers = {s: (t_ if isinstance(t_, str) else None) for s, t_ in zip(symbols, rk["tier"])}
    tier_cfg = {tc.name: tc for tc in config.universe.tiers}
    choice = choose_venue(metrics, bstat, symbols, venues, config, tiers)
    pairs = dict(zip(choice["symbol"], choice["venue"]))

    # ---- factors on the hourly matrix of each symbol's venue
    pair_rows = bars.groupby(["venue", "symbol"], sort=False).indices if len(bars) else {}

    def rows_of(wanted) -> pd.DataFrame:
        parts = [pair_rows[(v, s)] for s, v in wanted if (v, s) in pair_rows]
        return bars.iloc[np.sort(np.concatenate(parts))] if parts else bars.iloc[0:0]

    mat = bar_matrix(rows_of(pairs.items()), pairs, t, H)
    fc = config.factors
    mom = momentum_factor(mat.close, mat.observed, tf_weights, fc.momentum.k, fc.momentum.vol_window_bars)
    tech = technical_factor(mat.high, mat.low, mat.close, fc.rsi_period, fc.adx_period, fc.range_periods * 24)

    # ---- periods: VADR over the whole ranked universe, volume/premove for the evaluated
    uni = ranking[ranking["segment"].isin(("hot", "warm"))]
    uni_syms = sorted(set(uni["symbol"].astype(str)) & set(bars["symbol"].unique()))
    fb = bstat.assign(_lag=bstat["bar_lag_bars"].fillna(np.inf), _vo=bstat["venue"].map({v: i for i, v in enumerate(venues)}))
    fb = fb.sort_values(["symbol", "n_bars", "_lag", "_vo"], ascending=[True, False, True, True], kind="mergesort")
    ref = fb.drop_duplicates("symbol").set_index("symbol")["venue"].to_dict()
    ref_pairs = {s: (pairs[s] if s in pairs and pairs[s] is not None else ref.get(s)) for s in uni_syms}
    for s in symbols:
        ref_pairs.setdefault(s, pairs.get(s))
    n_periods = max(config.vadr.min_prior_periods + 1, config.premove.compression_periods, config.premove.volume_build_periods + 1, 8)
    if n_periods * 24 <= H:  # periods inside the history window: the snapshot's memoised table, filtered
        keys = pd.DataFrame([(v, s) for s, v in ref_pairs.items() if v is not None], columns=["venue", "symbol"]).drop_duplicates()
        allp = snapshot.periods()
        ptab = allp[(allp["period"] < n_periods).to_numpy()].merge(keys, on=["venue", "symbol"], how="inner")
    else:
        ptab = period_table(rows_of(ref_pairs.items()), t, "1h", max_periods=n_periods)
    vtab = vadr_table(ptab, ref_pairs, config).set_index("symbol")
    uni_v = vtab.loc[[s for s in uni_syms if s in vtab.index]]
    vthr = vadr_threshold(uni_v.loc[~uni_v["vadr_frozen"], "vadr"].to_numpy(float), config)
    pm = period_matrices(ptab, pairs, n_periods)
    vol = volume_factor(pm["usd"], 7)

    # ---- quality, residualization, score
    tier_score = np.array([tier_cfg[tiers[s]].score if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    spread_cap = np.array([tier_cfg[tiers[s]].spread_max_bps if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    depth_min = np.array([tier_cfg[tiers[s]].depth_min_usd if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    qual = quality_factor(tier_score, choice["spread_bps"].to_numpy(float), spread_cap, choice["depth_usd"].to_numpy(float),
                          depth_min, mat.n_bars, H, choice["sources"].to_numpy(float), len(venues))
    raw_factors = {"momentum": mom["momentum_core"], "technical": tech["technical"], "volume": vol["volume"], "quality": qual["quality"]}
    res = residualize(raw_factors, fc.orthogonalize, fc.min_cross_section)
    final = {f: res[f] for f in FACTORS}
    if upper_bound:
        best = np.full(len(symbols), 100.0)
        bounds = [blend_score({**final, "quality": best}, weight_blend)]
        every_book = residualize({**raw_factors, "quality": best}, fc.orthogonalize, fc.min_cross_section)
        bounds.append(blend_score({**{f: every_book[f] for f in FACTORS}, "quality": best}, weight_blend))
        return pd.Series(np.fmax(bounds[0], bounds[1]), index=pd.Index(symbols, name="symbol"), name="score_upper_bound")
    score = blend_score(final, weight_blend)
    contrib = contributions(final, weight_blend)

    vrow = vtab.reindex(symbols)
    ev = pd.DataFrame(
        {
            "timestamp": ts_iso,
            "rank": rk["_rank"].astype("Int64").to_numpy(),
            "symbol": symbols,
            "tier": [tiers[s] for s in symbols],
            "venue": choice["venue"].to_numpy(object),
            "sources": choice["sources"].astype("int64").to_numpy(),
            "fresh": choice["fresh"].to_numpy(object),
            "fresh_ok": choice["fresh_ok"].to_numpy(bool),
            "depth_badge": choice["depth_badge"].to_numpy(object),
            "has_book": choice["has_book"].to_numpy(bool),
            "book_invalid_reason": choice["book_invalid_reason"].to_numpy(object),
            "spread_bps": choice["spread_bps"].to_numpy(float),
            "depth_usd": choice["depth_usd"].to_numpy(float),
            "bid_depth_usd": choice["bid_depth_usd"].to_numpy(float),
            "ask_depth_usd": choice["ask_depth_usd"].to_numpy(float),
            "depth_min_usd": depth_min,
            "book_age_s": choice["book_age_s"].to_numpy(float),
            "bar_lag_bars": choice["bar_lag_bars"].to_numpy(float),
            "n_bars": mat.n_bars.astype("int64"),
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
            "vadr": vrow["vadr"].to_numpy(float),
            "vadr_frozen": vrow["vadr_frozen"].fillna(True).astype(bool).to_numpy(),
            "complete_prior_periods": vrow["complete_prior_periods"].fillna(0).astype("int64").to_numpy(),
        }
    )
    ev, gate_results = evaluate_gates(ev, config, settings, vthr)
    ev = ev.reset_index(drop=True)

    # ---- signals
    entries = ev[ev["decision"] == "entry"].sort_values(["score", "symbol"], ascending=[False, True], kind="mergesort")
    sig = entries.assign(regime=label)
    spec_cols = list(SIGNALS_COLUMNS)
    if settings.universe == "warm":
        cached, ttl = _fetch_cache(snapshot.fetches, list(zip(sig["symbol"], sig["venue"])))
        sig = sig.assign(cached=np.array(cached, dtype=bool), ttl_remaining_s=np.array(ttl, dtype=float))
        spec_cols = list(WARM_SIGNALS_COLUMNS)
    signals = sig[spec_cols + list(EXTRA_SIGNAL_COLUMNS)].reset_index(drop=True)
    signals["sources"] = signals["sources"].astype("int64")
    if validate:
        (WarmSignalsSchema if settings.universe == "warm" else SignalsSchema).validate(signals)
        EvaluatedSchema.validate(ev)

    # ---- premove (hot scan)
    premove = None
    if settings.premove:
        premove = premove_frame(ev, pm["range"], pm["usd"], config.premove, ts_iso)
        if validate:
            PremoveSchema.validate(premove)

    explain = _explain(
        t, job, regime_used, weight_blend, tf_weights, config, settings, vthr, ev, gate_results, contrib, snapshot,
        bars, books, ranking, regime,
    )
    explain["data_quality"] = data_quality(
        bar_issues[0] if bar_issues else empty_issues(), metrics, snapshot, symbols, venues, choice
    )
    return ScanResult(signals=signals, evaluated=ev, premove=premove, explain=explain)


#: notes collect_snapshot writes in the fetch log of an ok OHLCV answer → action
SOURCE_NOTES = {"bar_after_as_of": "rejected", "out_of_order": "repaired"}


def data_quality(bar_issues: pd.DataFrame, metrics: pd.DataFrame, snapshot: MarketSnapshot, symbols: list[str],
                 venues: tuple[str, ...], choice: pd.DataFrame) -> dict:
    """explain.json ``data_quality``: what was rejected or repaired before scoring, with reason codes.

    - ``bars``: per (venue, symbol) of the ranked universe, the bar issues of
      :func:`cryptorun_core.quality.sanitize_bars` (``nan_price``, ``bar_after_as_of``, …);
    - ``books``: per (venue, symbol) evaluated, invalid books (``crossed_book``, ``empty_book``,
      ``one_sided_book``, ``bad_levels``, ``absurd_spread``: action ``rejected``) and book requests
      that failed (the fetch reason code: ``venue_down``, ``empty_book``, …: action ``missing``);
    - ``unavailable``: evaluated symbols with no bars on any job venue (``not_listed`` when no job
      venue lists them any more, else ``no_bars``);
    - ``fetch_errors``: failed requests per venue, kind and reason code;
    - ``counts``: entries per reason code.
    """
    # bars after T in the snapshot itself are dropped silently: reporting them would make explain
    # depend on data after T (SPEC §1); a source serving them is caught (and noted) by collect_snapshot
    bar_rows = [
        {k: (int(v) if k == "n_bars" else v) for k, v in r.items()}
        for r in bar_issues.to_dict("records") if r["reason"] != "bar_after_as_of"
    ] if len(bar_issues) else []
    book_rows: list[dict] = []
    wanted = set(symbols)
    if len(metrics):
        bad = metrics[~metrics["valid"].astype(bool) & metrics["symbol"].isin(wanted)]
        book_rows += [{"venue": r.venue, "symbol": r.symbol, "reason": r.invalid_reason, "action": "rejected"}
                      for r in bad.itertuples(index=False)]
    f = snapshot.fetches
    fetch_errors: dict[str, dict[str, dict[str, int]]] = {}
    if f is not None and len(f) and {"venue", "symbol", "kind", "ok", "error"}.issubset(f.columns):
        failed = f[~f["ok"].astype(bool) & f["venue"].astype(str).isin(venues)]
        books_failed = failed[(failed["kind"] == "book") & failed["symbol"].isin(wanted)]
        book_rows += [{"venue": str(r.venue), "symbol": str(r.symbol), "reason": str(r.error), "action": "missing"}
                      for r in books_failed.itertuples(index=False)]
        ok_rows = f[f["ok"].astype(bool) & (f["kind"] == "ohlcv") & f["venue"].astype(str).isin(venues)]
        if "detail" in f.columns:  # contract breaches collect_snapshot repaired and noted per answer
            for r in ok_rows[ok_rows["detail"].astype(str) != ""].itertuples(index=False):
                for note in str(r.detail).split("; "):
                    reason = note.split(":", 1)[0]
                    if reason in SOURCE_NOTES:
                        bar_rows.append({"venue": str(r.venue), "symbol": str(r.symbol), "reason": reason,
                                         "action": SOURCE_NOTES[reason], "n_bars": None, "first_timestamp": None})
        bar_rows.sort(key=lambda r: (r["venue"], r["symbol"], r["reason"], r["action"]))
        for (v, kind, err), n in failed.groupby(["venue", "kind", "error"], sort=True).size().items():
            fetch_errors.setdefault(str(v), {}).setdefault(str(kind), {})[str(err)] = int(n)
    book_rows.sort(key=lambda r: (r["venue"], r["symbol"], r["reason"]))
    listed: set[str] = set()
    m = snapshot.markets
    if m is not None and len(m):
        listed = set(m.loc[m["venue"].astype(str).isin(venues), "symbol"].astype(str))
    unavailable = [
        {"symbol": s, "reason": "no_bars" if s in listed else "not_listed"}
        for s, n in zip(choice["symbol"], choice["n_bars"]) if int(n) == 0
    ]
    counts: dict[str, int] = {}
    for r in bar_rows + book_rows + unavailable:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    return {"bars": bar_rows, "books": book_rows, "unavailable": unavailable, "fetch_errors": fetch_errors,
            "counts": dict(sorted(counts.items()))}


def _explain(t, job, regime_used, weight_blend, tf_weights, config, settings, vthr, ev, gate_results, contrib, snapshot,
             bars, books, ranking, regime) -> dict:
    thresholds = tier_thresholds(config, settings, vthr)
    first = {g: 0 for g in GATES}
    every = {g: 0 for g in GATES}
    reasons: dict[str, int] = {}
    for res in gate_results:
        failed = [r for r in res if not r["passed"]]
        if failed:
            first[failed[0]["gate"]] += 1
            reasons[failed[0]["reason"]] = reasons.get(failed[0]["reason"], 0) + 1
        for r in failed:
            every[r["gate"]] += 1

    symbols = []
    for i, row in enumerate(ev.to_dict("records")):
        gates = [
            {**g, "value": _r(g["value"], GATE_ROUNDING[g["gate"]]), "threshold": _r(g["threshold"], GATE_ROUNDING[g["gate"]])}
            for g in gate_results[i]
        ]
        factors = {}
        for f in FACTORS:
            col = "momentum_core" if f == "momentum" else f
            entry = {"value": _rn(col, row[col]), "weight": _r(weight_blend[f]), "contribution": _r(contrib[f][i], 3)}
            if f != "momentum":
                entry["raw"] = _rn(col, row[f"{f}_raw"])
            factors[f] = entry
        symbols.append(
            {
                "rank": None if pd.isna(row["rank"]) else int(row["rank"]),
                "symbol": row["symbol"],
                "tier": row["tier"],
                "venue": row["venue"],
                "sources": int(row["sources"]),
                "fresh": row["fresh"],
                "depth_badge": row["depth_badge"],
                "score": _rn("score", row["score"]),
                "factors": factors,
                "residualized": bool(row["residualized"]),
                "momentum": {
                    "z": {k: _r(row[f"z_{k}"], 4) for k in TIMEFRAME_KEYS},
                    "raw": _r(row["momentum_raw"], 4),
                    "accel": _r(row["accel"], 4),
                    "sigma_1h": _r(row["sigma_1h"], 6),
                    "r_24h": _r(row["r_24h"], 4),
                },
                "technical_parts": {"rsi_4h": _r(row["rsi_4h"], 1), "adx_1h": _r(row["adx_1h"], 1),
                                    "range_position": _r(row["range_position"], 1)},
                "volume_surge": _r(row["volume_surge"], 3),
                "quality_parts": {k[2:]: _r(row[k], 1) for k in ("q_tier", "q_spread", "q_depth", "q_completeness", "q_sources")},
                "vadr": {"value": _rn("vadr", row["vadr"]), "frozen": bool(row["vadr_frozen"]), "min": _rn("vadr_min", row["vadr_min"]),
                         "complete_prior_periods": int(row["complete_prior_periods"])},
                "book": {"has_book": bool(row["has_book"]), "invalid_reason": row["book_invalid_reason"] if not row["has_book"] else None,
                         "spread_bps": _rn("spread_bps", row["spread_bps"]), "depth_usd": _rn("depth_usd", row["depth_usd"]),
                         "bid_depth_usd": _rn("bid_depth_usd", row["bid_depth_usd"]),
                         "ask_depth_usd": _rn("ask_depth_usd", row["ask_depth_usd"]),
                         "book_age_s": _rn("book_age_s", row["book_age_s"])},
                "bars": {"n_bars": int(row["n_bars"]), "bar_lag_bars": _rn("bar_lag_bars", row["bar_lag_bars"])},
                "gates": gates,
                "decision": row["decision"],
                "primary_reason": row["primary_reason"],
            }
        )

    rank_cols = [c for c in ("rank", "symbol", "adv_usd", "tier", "venues", "n_periods", "eligible", "exclusion_reason", "segment")
                 if c in ranking.columns]
    regime_json = json.dumps({k: regime[k] for k in regime}, sort_keys=True, default=str)
    return {
        "as_of": iso_z(t),
        "job": job.name,
        "universe": job.config.universe,
        "source": snapshot.source,
        "regime": regime_used,
        "weights": {"factors": {f: _r(weight_blend[f]) for f in FACTORS},
                    "momentum_timeframes": {k: _r(tf_weights[k]) for k in TIMEFRAME_KEYS}},
        "thresholds": {
            "score_min": _r(settings.score_min),
            "vadr": {**{k: (_r(v, 4) if isinstance(v, float) else v) for k, v in vthr.to_dict().items()},
                     "use_percentile": bool(settings.vadr_use_percentile),
                     "tier_min": {n: _r(th.vadr_tier_min) for n, th in thresholds.items()},
                     "vadr_min": {n: _r(th.vadr_min, 4) for n, th in thresholds.items()}},
            "spread_max_bps": {n: _r(th.spread_max_bps) for n, th in thresholds.items()},
            "depth_min_usd": {n: _r(th.depth_min_usd) for n, th in thresholds.items()},
            "spread_multiplier": _r(settings.spread_multiplier),
            "depth_multiplier": _r(settings.depth_multiplier),
            "history_min_bars": int(config.gates.history_min_bars),
            "fresh_max_bar_lag": int(config.gates.fresh_max_bar_lag),
            "fresh_max_book_age_s": _r(config.gates.fresh_max_book_age_s),
            "depth_band_pct": _r(config.gates.depth_band_pct),
            "fatigue": {"r24h_above": _r(config.gates.fatigue.r24h_above), "rsi4h_above": _r(config.gates.fatigue.rsi4h_above)},
        },
        "hashes": {
            "config": config_hash(config),
            "bars": table_hash(bars, list(SNAPSHOT_BAR_COLUMNS)),
            "books": table_hash(books, list(SNAPSHOT_BOOK_COLUMNS)),
            "ranking": table_hash(ranking, rank_cols),
            "regime": hashlib.sha256(regime_json.encode("utf-8")).hexdigest(),
        },
        "counts": {
            "evaluated": int(len(ev)),
            "entries": int((ev["decision"] == "entry").sum()),
            "rejected": int((ev["decision"] != "entry").sum()),
            "rejections_first_failure": first,
            "rejections_all_failures": every,
            "primary_reasons": dict(sorted(reasons.items())),
        },
        "venue_health": snapshot.health or {},
        "symbols": symbols,
    }
