"""What a scan reads (SPEC §3–§5), before any factor: the evaluated symbols in rank order, the regime's
weights, and the point-in-time bars and book levels of the job's venues — as row ranges of the
snapshot's memoised tables, with their order-independent input hashes (:mod:`cryptorun_core.tablehash`).

Only hourly bars closed at or before T and opened within the last ``market.history_bars`` hours,
and books stamped at or before T, are used; a regime whose ``as_of`` is after T is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cryptorun_core.config import FACTORS, AppConfig, JobConfig
from cryptorun_core.explain import json_number
from cryptorun_core.market.snapshot import BookRuns, MarketSnapshot, SNAPSHOT_BAR_COLUMNS, SNAPSHOT_BOOK_COLUMNS
from cryptorun_core.microstructure import book_metrics_arrays, refuse_aggregators
from cryptorun_core.quality import BarRules, empty_issues, issues_from_flags
from cryptorun_core.rows import expand, first_row
from cryptorun_core.tablehash import digest, row_hashes
from cryptorun_core.timefmt import iso_z, utc_timestamp


@dataclass(frozen=True)
class ScanInputs:
    """One cycle's inputs at T for a job: the regime's label and weights (``regime_used`` as explain.json
    shows it), the evaluated symbols (``ranked_rows``: their ranking rows in rank order), the ranked
    universe (hot + warm, for the VADR p80), and the bars and books the scan reads."""

    t: pd.Timestamp
    label: str
    weight_blend: dict[str, float]
    tf_weights: dict[str, float]
    regime_used: dict
    venues: tuple[str, ...]
    history_bars: int
    ranked_rows: pd.DataFrame
    symbols: list[str]
    bars: "ScanBars"
    books: "ScanBooks"
    bar_issues: pd.DataFrame


def scan_inputs(snapshot: MarketSnapshot, ranking: pd.DataFrame, regime: Mapping[str, Any], config: AppConfig,
                job: JobConfig) -> ScanInputs:
    """The inputs of ``job``'s scan of ``snapshot`` at T = ``snapshot.as_of`` (refusing non-hourly
    snapshots, a regime after T and aggregator venues)."""
    settings = job.config
    if snapshot.timeframe != "1h":
        raise ValueError(
            f"run_scan needs hourly bars; snapshot timeframe is {snapshot.timeframe!r} (daily-only snapshots "
            "support universe ranking and regime, not scans: momentum, RSI/ADX and freshness are hourly)"
        )
    t = utc_timestamp(snapshot.as_of)
    label, _, weight_blend, regime_used = regime_parts(regime, config, t)
    tf_weights = dict(config.factors.momentum.weights[label])
    venues = tuple(settings.venues)
    refuse_aggregators(venues, what="job venues")
    history_bars = int(config.market.history_bars)
    rk = segment_ranking(ranking, job)
    symbols = rk["symbol"].astype(str).tolist()
    ranked = sorted(set(ranking.loc[ranking["segment"].isin(("hot", "warm")), "symbol"].astype(str)) | set(symbols))
    # inputs used: bars of the ranked universe (VADR p80), books of the evaluated symbols
    snapshot.use_bar_rules(BarRules.of(config))
    bar_issues: list[pd.DataFrame] = []
    sbars = scan_bars(snapshot, t, history_bars, venues, ranked, bar_issues)
    sbooks = scan_books(snapshot, t, venues, symbols, config)
    return ScanInputs(t, label, weight_blend, tf_weights, regime_used, venues, history_bars, rk, symbols, sbars, sbooks,
                      bar_issues[0] if bar_issues else empty_issues())


def regime_parts(regime: Mapping[str, Any], config: AppConfig, t: pd.Timestamp) -> tuple[str, float, dict[str, float], dict]:
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
    if r_as_of is not None and utc_timestamp(r_as_of) > t:
        raise ValueError(f"regime as_of {iso_z(r_as_of)} is after the scan's T {iso_z(t)} (point-in-time violation)")
    used = {
        "label": str(label),
        "confidence": json_number(regime.get("confidence")),
        "as_of": iso_z(r_as_of) if r_as_of is not None else None,
        "partition_key": regime.get("partition_key"),
    }
    return str(label), float(regime.get("confidence") or 0.0), weight_blend, used



def _segments(universe: str) -> tuple[str, ...]:
    return ("hot", "warm") if universe == "all" else (universe,)



def segment_ranking(ranking: pd.DataFrame, job: JobConfig) -> pd.DataFrame:
    """The rows of ``ranking`` the job evaluates, in rank order (ties and missing ranks: by symbol,
    missing last), with the numeric rank in ``_rank``."""
    rk = ranking[ranking["segment"].isin(_segments(job.config.universe))].copy()
    rk["_rank"] = pd.to_numeric(rk["rank"], errors="coerce")
    return rk.sort_values(["_rank", "symbol"], kind="mergesort", na_position="last").reset_index(drop=True)



def with_bars_of(snapshot: MarketSnapshot, symbols: list[str]) -> MarketSnapshot:
    """``snapshot`` with only the bars of ``symbols`` (the snapshot itself when it has no other bars)."""
    bars = snapshot.bars
    if bars is None or len(bars) == 0:
        return snapshot
    keep = bars["symbol"].isin(symbols).to_numpy()
    if keep.all():
        return snapshot
    return dataclasses.replace(snapshot, bars=bars[keep].reset_index(drop=True))



def fetch_cache(fetches: pd.DataFrame, pairs: list[tuple[str, str | None]]) -> tuple[list[bool], list[float]]:
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


def scan_bars(snapshot: MarketSnapshot, t: pd.Timestamp, n_hours: int, venues: tuple[str, ...], symbols: list[str],
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


def bars_hash(sb: ScanBars) -> str:
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


def scan_books(snapshot: MarketSnapshot, t: pd.Timestamp, venues: tuple[str, ...], symbols: list[str], config: AppConfig) -> ScanBooks:
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


def books_hash(sb: ScanBooks) -> str:
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
