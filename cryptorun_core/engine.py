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
  the contract columns, i.e. independently of row order (computed with numpy by :mod:`cryptorun_core.tablehash`,
  from the row ranges the scan reads, without materialising the tables); the config hash is the sha256 of the
  canonical JSON of ``config.model_dump(mode="json")``.
- Numbers in ``explain`` are rounded as in the CSVs (:data:`cryptorun_core.artifacts.ROUNDING`);
  other floats to 6 decimals.

Reference venue for the VADR p80: an evaluated symbol uses its chosen venue; any other ranked
symbol (no book in this snapshot) uses the venue with the most closed bars in the window (ties:
fresher bars, then job venue order).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cryptorun_core.artifacts import SIGNALS_COLUMNS, WARM_SIGNALS_COLUMNS, iso_z, round_named
from cryptorun_core.config import FACTORS, TIMEFRAME_KEYS, AppConfig, JobConfig
from cryptorun_core.factors import bar_matrix_rows
from cryptorun_core.factors.momentum import momentum_factor
from cryptorun_core.factors.quality import quality_factor
from cryptorun_core.factors.residualize import residualize
from cryptorun_core.factors.score import blend_score, contributions
from cryptorun_core.factors.technical import technical_factor
from cryptorun_core.factors.volume import volume_factor
from cryptorun_core.gates import GATES, gate_columns, tier_thresholds
from cryptorun_core.market.snapshot import BookRuns, MarketSnapshot, SNAPSHOT_BAR_COLUMNS, SNAPSHOT_BOOK_COLUMNS
from cryptorun_core.microstructure import bar_status_arrays, book_metrics_arrays, choose_venue_arrays, refuse_aggregators
from cryptorun_core.periods import period_table
from cryptorun_core.premove import premove_frame
from cryptorun_core.quality import empty_issues, issues_from_flags
from cryptorun_core.rows import expand, first_row
from cryptorun_core.schemas import (
    BookMetricsSchema, EvaluatedSchema, PremoveSchema, SignalsSchema, WarmSignalsSchema, validate_frame,
)
from cryptorun_core.tablehash import digest, row_hashes, table_hash
from cryptorun_core.vadr import period_cube, vadr_from_matrices, vadr_threshold

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


def config_hash(config: AppConfig) -> str:
    """sha256 of the settings that shape the numbers; machine-local paths are left out so the same
    cycle computed in two checkouts (or artifact folders) carries the same hash."""
    settings = config.model_dump(mode="json")
    settings["global"] = {k: v for k, v in settings.get("global", settings.get("global_", {})).items() if k != "artifacts_dir"}
    settings.pop("global_", None)
    settings["market"]["replay"].pop("path", None)
    settings["market"]["ccxt"].pop("ohlcv_cache_dir", None)
    settings["market"].pop("record", None)  # where a cycle is archived shapes no number
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

    Only the evaluated symbols' bars enter the bound (their venue choice, factors, periods and
    cross-section; the rest of the ranked universe only feeds the VADR p80, a gate), so the scan
    runs on a snapshot holding just those bars: sanitizing and aggregating the whole universe's
    bars would be most of its cost.
    """
    evaluated = _segment_ranking(ranking, job)["symbol"].astype(str).tolist()
    return _run_scan(_with_bars_of(snapshot, evaluated), ranking, regime, config, job, validate=False, upper_bound=True)


def _segment_ranking(ranking: pd.DataFrame, job: JobConfig) -> pd.DataFrame:
    """The rows of ``ranking`` the job evaluates, in rank order (ties and missing ranks: by symbol,
    missing last), with the numeric rank in ``_rank``."""
    rk = ranking[ranking["segment"].isin(_segments(job.config.universe))].copy()
    rk["_rank"] = pd.to_numeric(rk["rank"], errors="coerce")
    return rk.sort_values(["_rank", "symbol"], kind="mergesort", na_position="last").reset_index(drop=True)


def _with_bars_of(snapshot: MarketSnapshot, symbols: list[str]) -> MarketSnapshot:
    """``snapshot`` with only the bars of ``symbols`` (the snapshot itself when it has no other bars)."""
    bars = snapshot.bars
    if bars is None or len(bars) == 0:
        return snapshot
    keep = bars["symbol"].isin(symbols).to_numpy()
    if keep.all():
        return snapshot
    return dataclasses.replace(snapshot, bars=bars[keep].reset_index(drop=True))


@dataclass(frozen=True)
class ScanBars:
    """The bars a scan uses, without copying the snapshot's bar table: pair i (``venue[i]``,
    ``symbol[i]``) owns rows ``start[i]:stop[i]`` of the snapshot's clean bar arrays ``ts`` (int64 ns
    open times, increasing within a pair) and ``cols`` (open … volume) — its closed, sanitized bars
    opened within the history window. Pairs without such a bar are left out."""

    venue: np.ndarray
    symbol: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    ts: np.ndarray
    cols: dict[str, np.ndarray]
    pair_index: np.ndarray  # row of each pair in ``snapshot.bar_pairs()``

    def index(self) -> dict[tuple[str, str], int]:
        return {(v, s): i for i, (v, s) in enumerate(zip(self.venue, self.symbol))}


def _scan_bars(snapshot: MarketSnapshot, t: pd.Timestamp, n_hours: int, venues: tuple[str, ...], symbols: list[str],
               issues: list[pd.DataFrame]) -> ScanBars:
    """The snapshot's memoised sanitized bars of the job's venues and ``symbols`` opened within the last
    ``n_hours`` hours (bar k = ⌊(T − open)/1h − 1⌋ < n_hours), as row ranges; their sanitation issues
    (the flags of the bars selected the same way) are appended to ``issues``."""
    clean, flags = snapshot.clean_bars()
    if len(flags):
        fts = flags["ts"].to_numpy(np.int64)
        fk = np.floor((t.value - fts) / 3.6e12 - 1.0)
        fkeep = (flags["venue"].isin(venues) & flags["symbol"].isin(symbols)).to_numpy() & (
            (fk < n_hours) | (fts == np.iinfo(np.int64).min))
        issues.append(issues_from_flags(flags[fkeep]))
    else:
        issues.append(empty_issues())
    pairs = snapshot.bar_pairs() if len(clean) else None
    if pairs is None or len(pairs) == 0:
        none = np.zeros(0, dtype=np.int64)
        return ScanBars(np.zeros(0, dtype=object), np.zeros(0, dtype=object), none, none, none,
                        {c: np.zeros(0) for c in SNAPSHOT_BAR_COLUMNS[3:]}, none)
    ts = clean["timestamp"].array.asi8
    chosen = np.flatnonzero((pairs["venue"].isin(venues) & pairs["symbol"].isin(symbols)).to_numpy())
    stop = pairs["stop"].to_numpy(np.int64)[chosen]
    first = first_row(ts, pairs["start"].to_numpy(np.int64)[chosen], stop, lambda x: np.floor((t.value - x) / 3.6e12 - 1.0) < n_hours)
    has = first < stop
    chosen = chosen[has]
    return ScanBars(pairs["venue"].to_numpy(object)[chosen], pairs["symbol"].to_numpy(object)[chosen], first[has], stop[has],
                    ts, {c: clean[c].to_numpy(np.float64) for c in SNAPSHOT_BAR_COLUMNS[3:]}, chosen)


def _bars_hash(sb: ScanBars) -> str:
    """``table_hash`` of the scan's bars (columns :data:`SNAPSHOT_BAR_COLUMNS`) from the row ranges: venue and
    symbol are fed once per pair, the other columns row by row."""
    columns = list(SNAPSHOT_BAR_COLUMNS)
    if len(sb.venue) == 0:
        return digest(columns, [], None)
    vcode, vuniq = pd.factorize(sb.venue, sort=True)
    scode, suniq = pd.factorize(sb.symbol, sort=True)
    pair_state = row_hashes([vcode.astype(np.int64), scode.astype(np.int64)], len(columns), finish=False)
    lens = sb.stop - sb.start
    hashes = np.empty(int(lens.sum()), dtype=np.uint64)
    # blocks of pairs of about _HASH_BLOCK_ROWS rows: the row numbers and states of one block at a time
    block = np.searchsorted(np.cumsum(lens), np.arange(1, int(lens.sum()) // _HASH_BLOCK_ROWS + 2) * _HASH_BLOCK_ROWS)
    edges = np.unique(np.concatenate([[0], np.minimum(block, len(lens) - 1) + 1, [len(lens)]]))
    pos = 0
    for a, b in zip(edges[:-1], edges[1:]):
        rows, owner = expand(sb.start[a:b], sb.stop[a:b])
        hashes[pos:pos + len(rows)] = row_hashes([sb.ts, *(sb.cols[c] for c in columns[3:])], len(columns), first=2,
                                                 state=pair_state[a:b][owner], rows=rows)
        pos += len(rows)
    return digest(columns, [list(vuniq), list(suniq)], hashes)


_HASH_BLOCK_ROWS = 1 << 18


@dataclass(frozen=True)
class ScanBooks:
    """The book levels a scan uses — levels of the job's venues and evaluated symbols stamped at or
    before T — given by runs of the snapshot's :class:`BookRuns` (input order) instead of row arrays:
    ``runs`` are the runs holding at least one such level, ``pair[i]`` the (venue, symbol) of run i as a
    row of ``metrics`` (sorted by venue, symbol), ``n_levels[i]`` its levels at or before T; ``at_t``
    flags the BookRuns rows stamped at or before T. ``metrics``: :func:`book_metrics` columns."""

    book_runs: BookRuns
    runs: np.ndarray
    pair: np.ndarray
    n_levels: np.ndarray
    at_t: np.ndarray
    metrics: dict[str, np.ndarray]

    def blocks(self):
        """``(pa, pb, rows, owner)`` per block of pairs ``pa:pb`` of about :data:`_BOOK_BLOCK_LEVELS` levels:
        the BookRuns rows of those pairs' levels at or before T and, per row, its run as an index into
        ``runs``. Levels are materialised a block at a time (a pair's metrics need all its levels)."""
        n_pairs = len(self.metrics["venue"])
        if len(self.runs) == 0:
            return
        order = np.argsort(self.pair, kind="stable")
        pair_sorted = self.pair[order]
        cum = np.cumsum(np.bincount(self.pair, weights=self.n_levels, minlength=n_pairs))
        cuts = np.searchsorted(cum, np.arange(_BOOK_BLOCK_LEVELS, cum[-1], _BOOK_BLOCK_LEVELS), side="right")
        edges = np.unique(np.concatenate([[0], cuts, [n_pairs]]).astype(np.int64))
        br = self.book_runs
        for pa, pb in zip(edges[:-1], edges[1:]):
            idx = order[np.searchsorted(pair_sorted, pa):np.searchsorted(pair_sorted, pb)]
            rows, owner = expand(br.start[self.runs[idx]], br.stop[self.runs[idx]])
            keep = self.at_t[rows]
            yield int(pa), int(pb), rows[keep], idx[owner[keep]]

    @property
    def rows(self) -> np.ndarray:
        """Every level's BookRuns row (block order)."""
        return np.concatenate([np.zeros(0, dtype=np.int64), *(rows for _, _, rows, _ in self.blocks())])


#: book levels per block of :meth:`ScanBooks.blocks`
_BOOK_BLOCK_LEVELS = 1 << 17


def _scan_books(snapshot: MarketSnapshot, t: pd.Timestamp, venues: tuple[str, ...], symbols: list[str], config: AppConfig) -> ScanBooks:
    br = snapshot.book_runs()
    refuse_aggregators(list(dict.fromkeys(br.venue.tolist())))  # aggregators anywhere in the books are refused
    at_t = (br.book_time != BookRuns.NAT) & (br.book_time <= t.value)
    # levels at or before T per run (runs tile the rows in order)
    n_at_t = np.add.reduceat(at_t, br.start, dtype=np.int64) if len(br.start) else np.zeros(0, dtype=np.int64)
    runs = np.flatnonzero(pd.Series(br.venue).isin(venues).to_numpy() & pd.Series(br.symbol).isin(symbols).to_numpy()
                          & (n_at_t > 0))
    keys = sorted(set(zip(br.venue[runs], br.symbol[runs])))
    code = {k: i for i, k in enumerate(keys)}
    pair = np.array([code[(br.venue[r], br.symbol[r])] for r in runs], dtype=np.int64)
    key_venue = np.array([k[0] for k in keys], dtype=object)
    key_symbol = np.array([k[1] for k in keys], dtype=object)
    side = br.side[runs]
    side_of_run = np.where(side == "bid", 0, np.where(side == "ask", 1, 2)).astype(np.int8)
    sb = ScanBooks(br, runs, pair, n_at_t[runs], at_t, {"venue": key_venue})
    parts = [book_metrics_arrays(key_venue[pa:pb], key_symbol[pa:pb], pair[owner] - pa, side_of_run[owner], br.price[rows],
                                 br.amount[rows], br.book_time[rows], t, config)
             for pa, pb, rows, owner in sb.blocks()]
    if not parts:  # no level: the empty metrics
        none = np.zeros(0, dtype=np.int64)
        parts = [book_metrics_arrays(key_venue, key_symbol, none, none.astype(np.int8), np.zeros(0), np.zeros(0), none, t, config)]
    return dataclasses.replace(sb, metrics=_concat_columns(parts))


def _concat_columns(parts: list[dict]) -> dict:
    """The columns of several tables given as columns (arrays, or pandas Index/Series), one after the other."""
    if len(parts) == 1:
        return parts[0]
    return {c: (parts[0][c].append([p[c] for p in parts[1:]]) if isinstance(parts[0][c], pd.Index)
                else np.concatenate([np.asarray(p[c]) for p in parts])) for c in parts[0]}


def _books_hash(sb: ScanBooks) -> str:
    """``table_hash`` of the scan's book levels (columns :data:`SNAPSHOT_BOOK_COLUMNS`): venue, symbol and
    side are fed once per run, price, amount and book time row by row (a block of levels at a time)."""
    columns = list(SNAPSHOT_BOOK_COLUMNS)
    if len(sb.runs) == 0:
        return digest(columns, [], None)
    codes, uniques = [], []
    for heads in (sb.book_runs.venue, sb.book_runs.symbol, sb.book_runs.side):
        values = heads[sb.runs]
        u = sorted(set(values))  # distinct values of the used levels
        codes.append(pd.Index(u).get_indexer(values).astype(np.int64))
        uniques.append(u)
    run_state = row_hashes(codes, len(columns), finish=False)
    br = sb.book_runs
    hashes = np.empty(int(sb.n_levels.sum()), dtype=np.uint64)
    pos = 0
    for _, _, rows, owner in sb.blocks():
        hashes[pos:pos + len(rows)] = row_hashes([br.price, br.amount, br.book_time], len(columns), first=3,
                                                 state=run_state[owner], rows=rows)
        pos += len(rows)
    return digest(columns, uniques, hashes)


def _cube_rows(cube: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``idx`` of a period cube (−1: a pair without periods → NaN, n_bars 0)."""
    idx = np.asarray(idx, dtype=np.int64)
    missing = (idx < 0)[:, None]
    return {k: np.where(missing, 0.0 if k == "n_bars" else np.nan, v[np.maximum(idx, 0)]) if len(v) else
            np.full((len(idx), v.shape[1]), 0.0 if k == "n_bars" else np.nan) for k, v in cube.items()}


def _pair_periods(snapshot: MarketSnapshot, sb: ScanBars, t: pd.Timestamp, n_hours: int, n_periods: int,
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


def _reference_venues(bstat: Mapping[str, np.ndarray], venues: tuple[str, ...]) -> dict[str, str]:
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
    rk = _segment_ranking(ranking, job)
    symbols = rk["symbol"].astype(str).tolist()
    ranked = sorted(set(ranking.loc[ranking["segment"].isin(("hot", "warm")), "symbol"].astype(str)) | set(symbols))

    # inputs used: bars of the ranked universe (VADR p80), books of the evaluated symbols
    bar_issues: list[pd.DataFrame] = []
    sbars = _scan_bars(snapshot, t, H, venues, ranked, bar_issues)
    sbooks = _scan_books(snapshot, t, venues, symbols, config)
    metrics = sbooks.metrics
    if len(metrics["venue"]) and validate:
        validate_frame(BookMetricsSchema, pd.DataFrame(metrics))
    bstat = bar_status_arrays(sbars.venue, sbars.symbol, sbars.ts, sbars.start, sbars.stop, t, config, H)
    tiers = {s: (t_ if isinstance(t_, str) else None) for s, t_ in zip(symbols, rk["tier"])}
    tier_cfg = {tc.name: tc for tc in config.universe.tiers}
    choice = choose_venue_arrays(metrics, bstat, symbols, venues, config, tiers)
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
    mom = momentum_factor(mat.close, mat.observed, tf_weights, fc.momentum.k, fc.momentum.vol_window_bars)
    tech = technical_factor(mat.high, mat.low, mat.close, fc.rsi_period, fc.adx_period, fc.range_periods * 24)
    n_bars = mat.n_bars
    del mat

    # ---- periods: VADR over the whole ranked universe, volume/premove for the evaluated
    uni = ranking[ranking["segment"].isin(("hot", "warm"))]
    uni_syms = sorted(set(uni["symbol"].astype(str)) & set(sbars.symbol.tolist()))
    ref = _reference_venues(bstat, venues)
    ref_pairs = {s: (pairs[s] if s in pairs and pairs[s] is not None else ref.get(s)) for s in uni_syms}
    for s in symbols:
        ref_pairs.setdefault(s, pairs.get(s))
    n_periods = max(config.vadr.min_prior_periods + 1, config.premove.compression_periods, config.premove.volume_build_periods + 1, 8)
    cube, where = _pair_periods(snapshot, sbars, t, H, n_periods, ref_pairs)

    def period_rows(items) -> dict[str, np.ndarray]:
        return _cube_rows(cube, np.array([where.get((v, s), -1) if v is not None else -1 for s, v in items], dtype=np.int64))

    k_prior = config.vadr.min_prior_periods
    ref_syms = list(ref_pairs)
    vm = period_rows(ref_pairs.items())
    vres = vadr_from_matrices(vm["range"][:, : k_prior + 1], vm["usd"][:, : k_prior + 1], vm["n_bars"][:, : k_prior + 1], k_prior, 24)
    ref_row = {s: i for i, s in enumerate(ref_syms)}
    uni_rows = np.array([ref_row[s] for s in uni_syms], dtype=np.int64)
    uni_vadr = vres["vadr"][uni_rows]
    vthr = vadr_threshold(uni_vadr[~vres["vadr_frozen"][uni_rows]], config)
    pm = period_rows(pairs.items())
    vol = volume_factor(pm["usd"], 7)

    # ---- quality, residualization, score
    tier_score = np.array([tier_cfg[tiers[s]].score if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    spread_cap = np.array([tier_cfg[tiers[s]].spread_max_bps if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    depth_min = np.array([tier_cfg[tiers[s]].depth_min_usd if tiers[s] in tier_cfg else np.nan for s in symbols], dtype=float)
    qual = quality_factor(tier_score, np.asarray(choice["spread_bps"], dtype=float), spread_cap, np.asarray(choice["depth_usd"], dtype=float),
                          depth_min, n_bars, H, np.asarray(choice["sources"], dtype=float), len(venues))
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
        cached, ttl = _fetch_cache(snapshot.fetches, list(zip(sig["symbol"], sig["venue"])))
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

    explain = _explain(
        t, job, regime_used, weight_blend, tf_weights, config, settings, vthr, ev_all, gate_results, contrib, snapshot,
        {"bars": _bars_hash(sbars), "books": _books_hash(sbooks)}, ranking, regime,
    )
    explain["data_quality"] = data_quality(
        bar_issues[0] if bar_issues else empty_issues(), metrics, snapshot, symbols, venues, choice
    )
    return ScanResult(signals=signals, evaluated=ev, premove=premove, explain=explain)


#: notes collect_snapshot writes in the fetch log of an ok OHLCV answer → action
SOURCE_NOTES = {"bar_after_as_of": "rejected", "out_of_order": "repaired"}


def data_quality(bar_issues: pd.DataFrame, metrics: Mapping[str, Any], snapshot: MarketSnapshot, symbols: list[str],
                 venues: tuple[str, ...], choice: Mapping[str, Any]) -> dict:
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
    m_valid = np.asarray(metrics["valid"], dtype=bool)
    if len(m_valid):
        m_symbol = np.asarray(metrics["symbol"], dtype=object)
        bad = np.flatnonzero(~m_valid & np.array([x in wanted for x in m_symbol], dtype=bool))
        book_rows += [{"venue": v, "symbol": sym, "reason": r, "action": "rejected"} for v, sym, r in zip(
            np.asarray(metrics["venue"], dtype=object)[bad], m_symbol[bad], np.asarray(metrics["invalid_reason"], dtype=object)[bad])]
    f = snapshot.fetches
    fetch_errors: dict[str, dict[str, dict[str, int]]] = {}
    if f is not None and len(f) and {"venue", "symbol", "kind", "ok", "error"}.issubset(f.columns):
        ok = f["ok"].astype(bool).to_numpy()
        on_venue = f["venue"].astype(str).isin(venues).to_numpy()
        kind = f["kind"].to_numpy(object)
        failed = f[~ok & on_venue]
        books_failed = failed[(failed["kind"] == "book").to_numpy() & failed["symbol"].isin(wanted).to_numpy()]
        book_rows += [{"venue": str(v), "symbol": str(s), "reason": str(e), "action": "missing"}
                      for v, s, e in zip(books_failed["venue"], books_failed["symbol"], books_failed["error"])]
        if "detail" in f.columns:  # contract breaches collect_snapshot repaired and noted per answer
            ok_rows = np.flatnonzero(ok & (kind == "ohlcv") & on_venue)
            details = f["detail"].to_numpy(object)[ok_rows]
            # only answers whose detail names a note (the others cannot carry one)
            noted = [i for i, d in zip(ok_rows, details) if isinstance(d, str) and any(k in d for k in SOURCE_NOTES)]
            for v, sym, d in zip(f["venue"].to_numpy(object)[noted], f["symbol"].to_numpy(object)[noted], f["detail"].to_numpy(object)[noted]):
                for note in str(d).split("; "):
                    reason = note.split(":", 1)[0]
                    if reason in SOURCE_NOTES:
                        bar_rows.append({"venue": str(v), "symbol": str(sym), "reason": reason,
                                         "action": SOURCE_NOTES[reason], "n_bars": None, "first_timestamp": None})
        bar_rows.sort(key=lambda r: (r["venue"], r["symbol"], r["reason"], r["action"]))
        if len(failed):
            for (v, kind_, err), n in failed.groupby(["venue", "kind", "error"], sort=True).size().items():
                fetch_errors.setdefault(str(v), {}).setdefault(str(kind_), {})[str(err)] = int(n)
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
             input_hashes, ranking, regime) -> dict:
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
    # ev: the evaluated table's columns (name → array); rows as Python scalars, as DataFrame.to_dict("records") gives them
    names = list(ev)
    records = (dict(zip(names, vals)) for vals in zip(*(np.asarray(ev[c]).tolist() for c in names)))
    for i, row in enumerate(records):
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
            "bars": input_hashes["bars"],
            "books": input_hashes["books"],
            "ranking": table_hash(ranking, rank_cols),
            "regime": hashlib.sha256(regime_json.encode("utf-8")).hexdigest(),
        },
        "counts": {
            "evaluated": int(len(ev["decision"])),
            "entries": int((ev["decision"] == "entry").sum()),
            "rejected": int((ev["decision"] != "entry").sum()),
            "rejections_first_failure": first,
            "rejections_all_failures": every,
            "primary_reasons": dict(sorted(reasons.items())),
        },
        "venue_health": snapshot.health or {},
        "symbols": symbols,
    }
