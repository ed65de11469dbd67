"""A market snapshot: everything one cycle read from a :class:`MarketSource`, as tables.

The engine computes only from snapshots, never from a source directly, so a cycle can be
replayed from its parquet files and the Dagster assets can hand snapshots downstream.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cryptorun_core.artifacts import replace_via
from cryptorun_core.market.base import (
    BAR_COLUMNS, TIMEFRAME_DELTA, FetchResult, MarketDataError, MarketSource, OrderBook, Timeframe, VenueHealth, to_utc,
)

SNAPSHOT_BAR_COLUMNS = ("venue", "symbol") + BAR_COLUMNS
SNAPSHOT_BOOK_COLUMNS = ("venue", "symbol", "side", "price", "amount", "book_time")
SNAPSHOT_FETCH_COLUMNS = (
    "venue", "symbol", "kind", "ok", "error", "detail", "from_cache", "ttl_remaining_s", "stamped_at", "latency_ms", "requests",
)
MARKET_COLUMNS = ("venue", "symbol", "native_symbol", "base", "quote", "active")


@dataclass
class MarketSnapshot:
    """Bars, books and the fetch log of one cycle at ``as_of``.

    - ``bars``: long table ``venue, symbol, timestamp, open, high, low, close, volume`` (closed bars only)
    - ``books``: long table of levels ``venue, symbol, side ('bid'|'ask'), price, amount, book_time``
    - ``fetches``: one row per request answered (``kind`` = ``ohlcv`` | ``book``), with the reason code of failures,
      and one per input the source could not read (``kind`` = ``file``: ``unreadable_file``, ``file_outside_folder``)
    - ``markets``: the markets listed per venue
    - ``health``: per-venue request accounting (``VenueHealth.to_dict``)
    """

    as_of: datetime
    timeframe: Timeframe
    source: str
    bars: pd.DataFrame
    books: pd.DataFrame
    fetches: pd.DataFrame
    markets: pd.DataFrame
    health: dict[str, dict] = field(default_factory=dict)
    #: the magnitude rules of the bar sanitation (``quality.BarRules``); every consumer with a config
    #: sets them (:meth:`use_bar_rules`) before reading the clean bars
    bar_rules: object = None

    def use_bar_rules(self, rules) -> "MarketSnapshot":
        """Sanitize with ``rules`` from now on (the memoised clean bars follow the rules)."""
        if rules != self.bar_rules:
            self.bar_rules = rules
        return self

    # -- per-snapshot memo (snapshots are treated as immutable; a replaced table invalidates) -----

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_memo", None)  # derived tables are never pickled
        return state

    def _memoised(self, name: str, build, table: str = "bars"):
        """``build()`` once per (``table`` object, as_of, timeframe): replacing the table invalidates."""
        memo = self.__dict__.setdefault("_memo", {})
        frame = getattr(self, table)
        key = (name, id(frame), len(frame), str(self.as_of), self.timeframe, self.bar_rules)
        hit = memo.get(name)
        if hit is not None and hit[0] == key and hit[1] is frame:
            return hit[2]
        value = build()
        memo[name] = (key, frame, value)
        return value

    def clean_bars(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(clean, flags)`` of the whole bar table, computed once per snapshot.

        ``clean``: :func:`cryptorun_core.quality.sanitize_flags` of every bar (all venues and
        symbols) at ``as_of``: sound closed bars sorted by (venue, symbol, timestamp), one per open
        time, columns :data:`SNAPSHOT_BAR_COLUMNS` (``venue``/``symbol`` str, ``timestamp``
        ``datetime64[ns, UTC]``, prices and volume float). ``flags``: one row per rejected,
        repaired or reported input bar; the issues of any subset of bars selected by venue, symbol
        and open time are :func:`cryptorun_core.quality.issues_from_flags` of the same subset of
        flags (every sanitation rule is decided per bar or per (venue, symbol, open time)).
        Callers must not modify the returned frames.
        """
        return self._memoised("clean_bars", self._build_clean_bars)

    def _build_clean_bars(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        from cryptorun_core.quality import empty_flags, sanitize_flags

        bars = self.bars
        cols = list(SNAPSHOT_BAR_COLUMNS)
        if bars is None or len(bars) == 0:
            empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols}).astype(
                {"venue": object, "symbol": object, "timestamp": "datetime64[ns, UTC]"})
            return empty, empty_flags()
        if _canonical_bar_dtypes(bars):
            frame = bars  # sanitize_flags returns it as is when every bar is sound and sorted: no copy
        else:
            frame = pd.DataFrame({"venue": _as_str(bars["venue"]), "symbol": _as_str(bars["symbol"])})
            ts = bars["timestamp"]
            frame["timestamp"] = ts.to_numpy() if not isinstance(ts.dtype, pd.DatetimeTZDtype) else ts.array
            for c in cols[3:]:
                frame[c] = pd.to_numeric(bars[c], errors="coerce").to_numpy(float)
        clean, flags = sanitize_flags(frame, self.as_of, self.timeframe, self.bar_rules)
        if len(clean):
            ts = clean["timestamp"]
            if not (isinstance(ts.dtype, pd.DatetimeTZDtype) and str(ts.dtype) == "datetime64[ns, UTC]"):
                clean = clean.copy() if clean is frame else clean
                clean["timestamp"] = (ts.dt.tz_convert("UTC") if isinstance(ts.dtype, pd.DatetimeTZDtype)
                                      else pd.to_datetime(ts, utc=True)).astype("datetime64[ns, UTC]")
        else:
            clean = pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols}).astype(
                {"venue": object, "symbol": object, "timestamp": "datetime64[ns, UTC]"})
        return clean, flags

    def bar_pairs(self) -> pd.DataFrame:
        """One row per (venue, symbol) of :meth:`clean_bars` in its (sorted) order, with the row range
        ``start``/``stop`` of the pair's bars in the clean table (computed once per snapshot)."""
        def build() -> pd.DataFrame:
            clean = self.clean_bars()[0]
            n = len(clean)
            if n == 0:
                return pd.DataFrame({"venue": pd.Series([], dtype=object), "symbol": pd.Series([], dtype=object),
                                     "start": pd.Series([], dtype="int64"), "stop": pd.Series([], dtype="int64")})
            vcode = pd.factorize(clean["venue"].to_numpy())[0]
            scode = pd.factorize(clean["symbol"].to_numpy())[0]
            change = np.empty(n, dtype=bool)
            change[0] = True
            change[1:] = (vcode[1:] != vcode[:-1]) | (scode[1:] != scode[:-1])
            start = np.nonzero(change)[0]
            stop = np.append(start[1:], n)
            return pd.DataFrame({"venue": clean["venue"].to_numpy()[start], "symbol": clean["symbol"].to_numpy()[start],
                                 "start": start.astype(np.int64), "stop": stop.astype(np.int64)})
        return self._memoised("bar_pairs", build)

    def select_bars(self, venues=None, symbols=None, pair_mask: np.ndarray | None = None) -> pd.DataFrame:
        """Clean bars (:meth:`clean_bars`) of the pairs whose venue is in ``venues`` and symbol in
        ``symbols`` (None: any) and, when given, ``pair_mask`` (aligned with :meth:`bar_pairs`); the
        clean table itself (no copy) when every pair is selected."""
        clean = self.clean_bars()[0]
        pairs = self.bar_pairs()
        keep = np.ones(len(pairs), dtype=bool) if pair_mask is None else np.asarray(pair_mask, dtype=bool).copy()
        if venues is not None:
            keep &= pairs["venue"].isin(list(venues)).to_numpy()
        if symbols is not None:
            keep &= pairs["symbol"].isin(list(symbols)).to_numpy()
        if keep.all():
            return clean
        rows = np.repeat(keep, (pairs["stop"] - pairs["start"]).to_numpy())
        return clean[rows].reset_index(drop=True)

    def book_runs(self) -> "BookRuns":
        """The books table as runs of consecutive levels of one (venue, symbol, side), with its
        numbers as numpy arrays (computed once per snapshot; see :class:`BookRuns`)."""
        return self._memoised("book_runs", lambda: BookRuns.of(self.books), table="books")

    def pair_periods(self, n_periods: int) -> dict[str, np.ndarray]:
        """:func:`cryptorun_core.vadr.period_cube` of :meth:`periods` for the pairs of :meth:`bar_pairs`
        (row i = pair i) and periods 0 … ``n_periods`` − 1, computed once per snapshot."""
        from cryptorun_core.vadr import period_cube

        def build() -> dict[str, np.ndarray]:
            pairs = self.bar_pairs()
            return period_cube(self.periods(), pairs["venue"].to_numpy(object), pairs["symbol"].to_numpy(object), n_periods)

        return self._memoised(f"pair_periods_{int(n_periods)}", build)

    def periods(self) -> pd.DataFrame:
        """:func:`cryptorun_core.periods.period_table` of :meth:`clean_bars` (every venue, symbol and
        period), computed once per snapshot. Callers must not modify it."""
        from cryptorun_core.periods import period_table

        return self._memoised("periods", lambda: period_table(self.clean_bars()[0], self.as_of, self.timeframe))

    @property
    def symbols(self) -> list[str]:
        return sorted(self.bars["symbol"].unique().tolist()) if not self.bars.empty else []

    def write_parquet(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write each table as ``<name>.parquet`` plus ``meta.json`` atomically; return the paths."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in ("bars", "books", "fetches", "markets"):
            table = pa.Table.from_pandas(getattr(self, name), preserve_index=False)
            # dictionary encoding pays for the repetitive text columns (venue, symbol, side, error …)
            # only: on float columns of distinct prices it costs time and saves nothing
            text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            path = target / f"{name}.parquet"
            replace_via(path, lambda tmp: pq.write_table(table, tmp, use_dictionary=text))
            paths[name] = path
        meta = {"as_of": to_utc(self.as_of).isoformat(), "timeframe": self.timeframe, "source": self.source, "health": self.health}
        meta_path = target / "meta.json"
        replace_via(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n"))
        paths["meta"] = meta_path
        return paths

    @staticmethod
    def read_parquet(directory: str | os.PathLike[str]) -> "MarketSnapshot":
        src = Path(directory)
        meta = json.loads((src / "meta.json").read_text())
        tables = {name: pq.read_table(src / f"{name}.parquet").to_pandas() for name in ("bars", "books", "fetches", "markets")}
        return MarketSnapshot(
            as_of=to_utc(meta["as_of"]), timeframe=meta["timeframe"], source=meta["source"], health=meta["health"], **tables
        )


@dataclass(frozen=True)
class BookRuns:
    """A long books table as runs: rows ``start[i]:stop[i]`` are consecutive levels of one
    (``venue[i]``, ``symbol[i]``, ``side[i]``) (str, as ``astype(str)`` gives them); ``price``,
    ``amount`` (float64, unparsable → NaN) and ``book_time`` (int64 ns UTC, NaT → ``NAT``) per row."""

    NAT = np.iinfo(np.int64).min

    start: np.ndarray
    stop: np.ndarray
    venue: np.ndarray
    symbol: np.ndarray
    side: np.ndarray
    price: np.ndarray
    amount: np.ndarray
    book_time: np.ndarray

    @staticmethod
    def of(books: pd.DataFrame) -> "BookRuns":
        from cryptorun_core.rows import runs

        n = 0 if books is None else len(books)
        cols = [books[c].to_numpy() if n else np.zeros(0, dtype=object) for c in ("venue", "symbol", "side")]
        start = runs(*cols)
        stop = np.append(start[1:], n).astype(np.int64)
        heads = [np.array([str(x) for x in col[start]], dtype=object) for col in cols]
        if n:
            bt = books["book_time"]
            bt = bt.dt.tz_convert("UTC") if isinstance(bt.dtype, pd.DatetimeTZDtype) else pd.to_datetime(bt, utc=True)
            times = bt.astype("datetime64[ns, UTC]").array.asi8
            price = pd.to_numeric(books["price"], errors="coerce").to_numpy(float)
            amount = pd.to_numeric(books["amount"], errors="coerce").to_numpy(float)
        else:
            times, price, amount = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
        return BookRuns(start, stop, *heads, price, amount, times)


def _canonical_bar_dtypes(bars: pd.DataFrame) -> bool:
    """The bar table already has exactly the clean table's columns and dtypes (str venue/symbol,
    ``datetime64[ns, UTC]`` time, float64 numbers) and a default index."""
    if list(bars.columns) != list(SNAPSHOT_BAR_COLUMNS) or not isinstance(bars.index, pd.RangeIndex) or bars.index.start != 0:
        return False
    if str(bars["timestamp"].dtype) != "datetime64[ns, UTC]" or any(bars[c].dtype != np.float64 for c in BAR_COLUMNS[1:]):
        return False
    return all(bars[c].dtype == object and pd.api.types.infer_dtype(bars[c].to_numpy(), skipna=False) == "string"
               for c in ("venue", "symbol"))


def _as_str(values: pd.Series) -> np.ndarray:
    """Object array of ``str`` (no per-row conversion when the column already holds only str)."""
    arr = values.to_numpy()
    if arr.dtype == object and len(arr) and pd.api.types.infer_dtype(arr, skipna=False) == "string":
        return arr
    return values.astype(str).to_numpy()


def _fetch_rows(results: Sequence[FetchResult], kind: str) -> list[dict]:
    return [
        {
            "venue": r.venue,
            "symbol": r.symbol,
            "kind": kind,
            "ok": r.ok,
            "error": r.error,
            "detail": r.detail,
            "from_cache": r.from_cache,
            "ttl_remaining_s": r.ttl_remaining_s,
            "stamped_at": pd.Timestamp(r.stamped_at) if r.stamped_at is not None else pd.NaT,
            "latency_ms": float(r.latency_ms),
            "requests": int(r.requests),
        }
        for r in results
    ]


def _utc_open_times(ts: pd.Series) -> np.ndarray:
    """An answer's bar open times as ``datetime64[ns]`` UTC (naive numpy; NaT where unparsable).

    The usual column is already tz-aware: its UTC nanoseconds are taken as they are (no conversion)."""
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True, errors="coerce")
    arr = ts.array
    if arr.unit != "ns":
        arr = arr.as_unit("ns")
    return arr.asi8.view("datetime64[ns]")


def _contract_bars(answers: Sequence[FetchResult], as_of: datetime, timeframe: Timeframe) -> tuple[pd.DataFrame, list[list[str]]]:
    """The snapshot's long bar table from the ok OHLCV ``answers`` (each with a non-empty frame), each
    answer's bars held to the MarketSource contract (closed at or before T, time order).

    Returns ``(bars, notes)``: ``bars`` has columns :data:`SNAPSHOT_BAR_COLUMNS` (venue/symbol str,
    timestamp ``datetime64[ns, UTC]``, numbers float64), rows answer by answer in answer order; ``notes[i]``
    lists answer i's breaches. A source that breaks the contract is repaired here and the breach is
    noted in the fetch log (``detail`` of the ok row, ``<reason>: <sentence>`` joined by ``; ``):
    ``bar_after_as_of`` (bars closing after T are dropped — never used, SPEC §1) and
    ``out_of_order`` (sorted).
    """
    if not answers:
        return pd.DataFrame(columns=list(SNAPSHOT_BAR_COLUMNS)), []
    # one concat of every answer, then whole-column numpy: per-answer pandas column access costs more
    raw = pd.concat([r.data for r in answers], ignore_index=True)
    lens = np.array([len(r.data) for r in answers], dtype=np.int64)
    owner = np.repeat(np.arange(len(answers)), lens)
    times = _utc_open_times(raw["timestamp"])
    cutoff = np.datetime64((pd.Timestamp(as_of).tz_convert("UTC") - TIMEFRAME_DELTA[timeframe]).tz_localize(None), "ns")
    late = times > cutoff  # NaT compares False: left to the engine's sanitation (missing_timestamp)
    n_late = np.bincount(owner[late], minlength=len(answers))
    rows = np.flatnonzero(~late)
    kept_owner, kept_times = owner[rows], times[rows]
    # an answer is out of order when a kept bar opens before the kept bar preceding it (NaT compares False)
    back = (kept_times[1:] < kept_times[:-1]) & (kept_owner[1:] == kept_owner[:-1])
    unordered = np.unique(kept_owner[1:][back])
    n_kept = np.bincount(kept_owner, minlength=len(answers))
    if len(unordered):
        starts = np.concatenate([[0], np.cumsum(n_kept)[:-1]])
        for i in unordered:
            seg = slice(starts[i], starts[i] + n_kept[i])
            rows[seg] = rows[seg][np.argsort(times[rows[seg]], kind="stable")]
    notes: list[list[str]] = [[] for _ in answers]
    for i in np.flatnonzero(n_late):
        r = answers[i]
        notes[i].append(f"bar_after_as_of: {r.venue} served {int(n_late[i])} bar(s) of {r.symbol} closing after T (dropped)")
    for i in unordered:
        r = answers[i]
        notes[i].append(f"out_of_order: {r.venue} served {int(n_kept[i])} bars of {r.symbol} out of time order (sorted)")
    table = {
        "venue": np.repeat(np.array([r.venue for r in answers], dtype=object), n_kept),
        "symbol": np.repeat(np.array([r.symbol for r in answers], dtype=object), n_kept),
        "timestamp": pd.DatetimeIndex(times[rows]).tz_localize("UTC"),
        # float64 as the source's numbers convert (missing → NaN); converted before the frame is built
        # because DataFrame.astype would copy every column
        **{c: raw[c].to_numpy(dtype=np.float64, na_value=np.nan)[rows] for c in BAR_COLUMNS[1:]},
    }
    return (pd.DataFrame(table) if len(rows) else pd.DataFrame(columns=list(SNAPSHOT_BAR_COLUMNS))), notes


#: A book taken at most this long after the cycle time T is the live cycle's book at T (see collect_snapshot).
LIVE_BOOK_GRACE_S = 300.0

#: fetch reason codes that say the venue (not the symbol) failed
VENUE_FAULTS = frozenset({"venue_down", "timeout", "rate_limited", "bad_response"})


def _derived_health(venue: str, rows: list[dict]) -> dict:
    """VenueHealth of a venue whose source keeps no accounting: one "request" per answer in the
    fetch log, an error per venue-level failure (``VENUE_FAULTS`` or a failed market listing)."""
    mine = [r for r in rows if r["venue"] == venue]
    errors = [r for r in mine if not r["ok"] and (r["error"] in VENUE_FAULTS or r["kind"] == "markets")]
    health = VenueHealth(venue, requests=len(mine), errors=len(errors))
    if errors:
        health.last_error = f"{errors[-1]['error']}: {errors[-1]['detail']}"[:240]
    return health.to_dict()


def _fetch_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(SNAPSHOT_FETCH_COLUMNS))
    frame["stamped_at"] = pd.to_datetime(frame["stamped_at"], utc=True)
    return frame.astype({"ok": bool, "from_cache": bool, "latency_ms": float, "requests": "int64"})


def collect_snapshot(
    source: MarketSource,
    symbols: Sequence[str] | None,
    as_of: datetime,
    venues: Sequence[str] | None = None,
    *,
    limit: int = 720,
    with_books: bool = True,
    book_depth: int = 100,
    book_filter=None,
    book_grace_s: float | None = None,
) -> MarketSnapshot:
    """Read bars (and books) for ``symbols`` on every venue that lists them, as of ``as_of``.

    ``symbols=None`` means every market the venues list. ``book_filter``, when given, is called
    with the bars table and returns the (venue, symbol) pairs that still need a book — the live
    path uses it to skip books of symbols that cannot reach the entry threshold.
    Raises :class:`MarketDataError` when no venue answered anything (no market listed, or no bars
    from any venue because every venue failed).

    A live cycle reads its books just *after* its tick T (the run starts at T, bars are read
    first): a book the venue took within ``book_grace_s`` (default :data:`LIVE_BOOK_GRACE_S`)
    after T is this cycle's book at T and is stamped T (the fetch log keeps the venue's own time
    in ``stamped_at`` and notes ``book_after_as_of``); a book taken later than that (e.g. a
    backfill of an old T against a live venue) keeps its time and is never used for T.
    """
    grace = pd.Timedelta(seconds=LIVE_BOOK_GRACE_S if book_grace_s is None else float(book_grace_s))
    as_of = to_utc(as_of)
    venues = tuple(venues or source.venues)
    source.reset_health()
    market_rows: list[dict] = []
    listing_errors: dict[str, str] = {}
    listing_reasons: dict[str, str] = {}
    for venue in venues:
        try:
            listed = source.list_markets(venue, as_of)
        except Exception as exc:  # a venue that cannot even list markets is down for this cycle
            listing_errors[venue] = f"{type(exc).__name__}: {exc}"
            listing_reasons[venue] = str(getattr(exc, "reason", None) or "venue_down")  # VenueUnavailable knows why
            continue
        market_rows.extend(
            {"venue": m.venue, "symbol": m.symbol, "native_symbol": m.native_symbol, "base": m.base, "quote": m.quote, "active": m.active}
            for m in listed
        )
    markets = pd.DataFrame(market_rows, columns=list(MARKET_COLUMNS))
    if markets.empty:
        detail = "; ".join(f"{v}: {e}" for v, e in listing_errors.items()) or "no markets listed"
        raise MarketDataError(f"no venue answered at {as_of.isoformat()}: {detail}")
    active = markets[markets["active"]]
    if symbols is not None:
        active = active[active["symbol"].isin(set(symbols))]
    requests = list(active[["venue", "symbol"]].itertuples(index=False, name=None))
    timeframe = source.native_timeframe
    bar_results = source.fetch_ohlcv(requests, as_of, timeframe=timeframe, limit=limit)
    answered = [i for i, r in enumerate(bar_results) if r.ok and r.data is not None and len(r.data)]
    bars, notes = _contract_bars([bar_results[i] for i in answered], as_of, timeframe)
    repaired = {i: "; ".join(n) for i, n in zip(answered, notes) if n}
    fetch_rows = _fetch_rows(bar_results, "ohlcv")
    for i, note in repaired.items():
        fetch_rows[i]["detail"] = note
    if requests and not any(r.ok for r in bar_results):
        faults = sorted({f"{r.venue}: {r.error}" for r in bar_results if r.error in VENUE_FAULTS})
        if faults:  # every venue failed: no cycle can be computed from nothing (and nothing is written)
            detail = "; ".join(
                [f"{v}: {e}" for v, e in listing_errors.items()] + faults
            )
            raise MarketDataError(f"no venue answered at {as_of.isoformat()}: no bars from any venue ({detail})")
    for venue in venues:  # files or records the source could not read: reported, never silently skipped
        if venue not in listing_errors:
            fetch_rows.extend(_fetch_rows(source.data_problems(venue, as_of), "file"))
    for venue, err in listing_errors.items():
        fetch_rows.append({"venue": venue, "symbol": "*", "kind": "markets", "ok": False, "error": listing_reasons[venue], "detail": err,
                           "from_cache": False, "ttl_remaining_s": None, "stamped_at": pd.NaT, "latency_ms": 0.0, "requests": 0})

    book_rows: list[pd.DataFrame] = []
    if with_books:
        ok_pairs = [(r.venue, r.symbol) for r in bar_results if r.ok]
        if book_filter is not None:
            wanted = set(book_filter(bars))
            ok_pairs = [p for p in ok_pairs if p in wanted]
        book_results = source.fetch_order_books(ok_pairs, as_of, depth=book_depth)
        book_fetch_rows = _fetch_rows(book_results, "book")
        for row, r in zip(book_fetch_rows, book_results):
            if r.ok and (r.data is None or (len(r.data.bids) == 0 and len(r.data.asks) == 0)):
                row.update(ok=False, error="empty_book", detail=f"{r.venue} answered an empty book for {r.symbol}")
        fetch_rows.extend(book_fetch_rows)
        for row, r in zip(book_fetch_rows, book_results):
            if not r.ok or r.data is None:
                continue
            book = r.data
            taken = pd.Timestamp(to_utc(book.timestamp))
            if pd.Timestamp(as_of) < taken <= pd.Timestamp(as_of) + grace:
                row["detail"] = f"book_after_as_of: taken {(taken - pd.Timestamp(as_of)).total_seconds():.1f}s after T, used as the book at T"
                book = OrderBook(bids=book.bids, asks=book.asks, timestamp=as_of)
            for side, levels in (("bid", book.bids), ("ask", book.asks)):
                if len(levels):
                    book_rows.append(
                        pd.DataFrame(
                            {
                                "venue": r.venue,
                                "symbol": r.symbol,
                                "side": side,
                                "price": levels[:, 0].astype(float),
                                "amount": levels[:, 1].astype(float),
                                "book_time": pd.Timestamp(to_utc(book.timestamp)),
                            }
                        )
                    )
    books = pd.concat(book_rows, ignore_index=True) if book_rows else pd.DataFrame(columns=list(SNAPSHOT_BOOK_COLUMNS))
    books = books.astype({"price": float, "amount": float}) if not books.empty else books
    health = {v: h.to_dict() for v, h in source.health().items()}
    for venue in venues:  # sources without request accounting (offline ones): derive it from the fetch log
        if venue not in health and venue in tuple(source.venues):
            health[venue] = _derived_health(venue, fetch_rows)
    return MarketSnapshot(
        as_of=as_of,
        timeframe=timeframe,
        source=source.name,
        bars=bars,
        books=books,
        fetches=_fetch_frame(fetch_rows),
        markets=markets,
        health=health,
    )


def book_levels(snapshot_books: pd.DataFrame, venue: str, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """(bids, asks) arrays of one venue/symbol from a snapshot's long book table."""
    sel = snapshot_books[(snapshot_books["venue"] == venue) & (snapshot_books["symbol"] == symbol)]
    bids = sel[sel["side"] == "bid"][["price", "amount"]].to_numpy(float)
    asks = sel[sel["side"] == "ask"][["price", "amount"]].to_numpy(float)
    return bids, asks
