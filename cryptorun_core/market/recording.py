"""The recorder: a :class:`MarketSource` wrapper that archives what a cycle read (issue #17, SPEC §3).

``RecordingSource(inner, folder)`` answers every question by asking ``inner`` and appends to the
recording what ``inner`` answered, keyed by the cycle time ``as_of`` it was asked for:

- ``bars/``: the closed bars returned (incremental and deduplicated: a bar already recorded with the
  same values is not written again; a bar the venue revised is written once more, as a new version);
- ``books/``: per (venue, symbol) every level of the book returned (the cycle's ``book_depth_levels``:
  enough for the ±2 % depth band and the premove imbalance), with the venue's timestamp and the
  fetch time;
- ``markets/``: each venue's listing when it changed;
- ``failures/``: requests that failed (reason code and sentence), so a replay fails the same way.

Layout: ``<folder>/recording.json`` (format marker) and ``<folder>/<table>/day=YYYY-MM-DD/part-*.parquet``
(bars by the UTC day of their open time, the rest by the day of the cycle). Append-only: each write is
a new part file committed atomically (hidden temporary file, then rename), never a rewrite; a reader
sees a part whole or not at all. ``retention_days`` (None: keep) drops day folders older than that
many days before the newest recorded day. :mod:`cryptorun_core.market.recorded` reads it back.
"""

from __future__ import annotations

import io
import json
import math
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cryptorun_core.artifacts import as_of_folder, atomic_write
from cryptorun_core.market.base import (
    BAR_COLUMNS,
    FetchResult,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
    Timeframe,
    VenueHealth,
    to_utc,
)
from cryptorun_core.timefmt import utcnow

FORMAT = "cryptorun-recording"
FORMAT_VERSION = 1
MARKER = "recording.json"
TABLES = ("bars", "books", "markets", "failures")
BAR_RECORD_COLUMNS = ("venue", "symbol", "timeframe") + BAR_COLUMNS + ("recorded_for", "fetched_at")
BOOK_RECORD_COLUMNS = ("venue", "symbol", "side", "level", "price", "amount", "book_time", "fetched_at", "recorded_for")
MARKET_RECORD_COLUMNS = ("venue", "symbol", "native_symbol", "base", "quote", "active", "listed_at", "recorded_for")
FAILURE_RECORD_COLUMNS = ("venue", "symbol", "kind", "error", "detail", "recorded_for")
_PRICES = BAR_COLUMNS[1:]


def is_recording(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a recording folder (it holds the format marker)."""
    return (Path(path) / MARKER).is_file()


def day_of(ts: Any) -> str:
    return pd.Timestamp(to_utc(ts)).strftime("%Y-%m-%d")


def read_part(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One committed part file; ValueError naming the file when it cannot be read (a damaged disk,
    a file copied in by hand): a recording is never read around a hole silently."""
    try:
        return pq.read_table(path, columns=list(columns) if columns else None).to_pandas()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ValueError(f"recording part file {path} cannot be read ({type(exc).__name__}: {exc})") from None


def part_files(folder: str | os.PathLike[str], table: str) -> list[Path]:
    """Committed part files of ``table`` (temporary files of an unfinished write are hidden dot-files)."""
    return sorted((Path(folder) / table).glob("day=*/part-*.parquet"))


class RecordingSource(MarketSource):
    """``inner`` as it is, plus an append-only Parquet archive of its answers under ``folder``."""

    def __init__(self, inner: MarketSource, folder: str | os.PathLike[str], retention_days: int | None = None,
                 now: Callable[[], datetime] | None = None):
        self.inner = inner
        self.folder = Path(folder)
        self.retention_days = retention_days
        self._now = now or (utcnow)
        self._lock = threading.Lock()
        self._bar_keys: dict[tuple[str, str, str], dict[int, tuple[float, ...]]] = {}
        self._loaded_bar_days: set[str] = set()
        self._listings: dict[str, list[tuple] | None] = {}
        self.bytes_written = 0
        self._mark()

    # -- delegation ---------------------------------------------------------------------------

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def costly_books(self) -> bool:  # type: ignore[override]
        return self.inner.costly_books

    @property
    def venues(self) -> tuple[str, ...]:
        return self.inner.venues

    @property
    def native_timeframe(self) -> Timeframe:
        return self.inner.native_timeframe

    def health(self) -> dict[str, VenueHealth]:
        return self.inner.health()

    def reset_health(self) -> None:
        self.inner.reset_health()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, item: str) -> Any:  # exchange(), cache_stats() … of the wrapped source
        if item in ("inner", "bar_windows"):  # range reads would bypass the recorder: they go through fetch_ohlcv
            raise AttributeError(item)
        return getattr(self.inner, item)

    # -- MarketSource, recorded ---------------------------------------------------------------

    def list_markets(self, venue: str, as_of: datetime) -> list[MarketInfo]:
        as_of = to_utc(as_of)
        try:
            listed = self.inner.list_markets(venue, as_of)
        except Exception as exc:
            reason = str(getattr(exc, "reason", None) or "venue_down")
            self._record_failures([{"venue": venue, "symbol": "*", "kind": "markets", "error": reason,
                                    "detail": f"{type(exc).__name__}: {exc}"}], as_of)
            raise
        rows = sorted((m.symbol, m.native_symbol, m.base, m.quote, bool(m.active),
                       None if m.listed_at is None else pd.Timestamp(to_utc(m.listed_at))) for m in listed)
        with self._lock:
            if venue not in self._listings:
                self._listings[venue] = self._latest_listing(venue)
            if self._listings[venue] != rows:
                frame = pd.DataFrame(rows, columns=list(MARKET_RECORD_COLUMNS[1:-1]))
                frame.insert(0, "venue", venue)
                frame["listed_at"] = pd.to_datetime(frame["listed_at"], utc=True)
                frame["recorded_for"] = pd.Timestamp(as_of)
                self._write("markets", day_of(as_of), as_of, frame)
                self._listings[venue] = rows
        return listed

    def fetch_ohlcv(self, requests: Sequence[tuple[str, str]], as_of: datetime, timeframe: Timeframe = "1h",
                    limit: int = 720) -> list[FetchResult[pd.DataFrame]]:
        as_of = to_utc(as_of)
        results = self.inner.fetch_ohlcv(requests, as_of, timeframe=timeframe, limit=limit)
        fetched = pd.Timestamp(to_utc(self._now()))
        frames, failures = [], []
        for r in results:
            if r.ok and r.data is not None and len(r.data):
                frame = r.data[list(BAR_COLUMNS)].copy()
                frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ns, UTC]")
                for c in _PRICES:
                    frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
                frame.insert(0, "timeframe", timeframe)
                frame.insert(0, "symbol", r.symbol)
                frame.insert(0, "venue", r.venue)
                frames.append(frame)
            elif not r.ok:
                failures.append({"venue": r.venue, "symbol": r.symbol, "kind": "ohlcv", "error": r.error, "detail": r.detail})
        if frames:
            bars = pd.concat(frames, ignore_index=True)
            bars = bars[bars["timestamp"].notna() & (bars["timestamp"] <= pd.Timestamp(as_of))]
            with self._lock:
                new = self._new_bars(bars)
                if len(new):
                    new = new.assign(recorded_for=pd.Timestamp(as_of), fetched_at=fetched)
                    days = new["timestamp"].dt.strftime("%Y-%m-%d")
                    for day, part in new.groupby(days, sort=True):
                        self._write("bars", str(day), as_of, part.reset_index(drop=True))
        self._record_failures(failures, as_of)
        return results

    def fetch_tickers(self, requests: Sequence[tuple[str, str]], as_of: datetime) -> list[FetchResult[Ticker]]:
        return self.inner.fetch_tickers(requests, as_of)  # the scan derives nothing from tickers

    def fetch_order_books(self, requests: Sequence[tuple[str, str]], as_of: datetime,
                          depth: int = 100) -> list[FetchResult[OrderBook]]:
        as_of = to_utc(as_of)
        results = self.inner.fetch_order_books(requests, as_of, depth=depth)
        fetched = pd.Timestamp(to_utc(self._now()))
        frames, failures = [], []
        for r in results:
            if r.ok and r.data is not None:
                book = r.data
                for side, levels in (("bid", book.bids), ("ask", book.asks)):
                    levels = np.asarray(levels, dtype=float).reshape(-1, 2)
                    frames.append(pd.DataFrame({
                        "venue": r.venue, "symbol": r.symbol, "side": side, "level": np.arange(len(levels), dtype=np.int32),
                        "price": levels[:, 0], "amount": levels[:, 1],
                        "book_time": pd.Timestamp(to_utc(book.timestamp)), "fetched_at": fetched,
                    }))
                if not len(book.bids) and not len(book.asks):  # keep the fact that the venue answered an empty book
                    failures.append({"venue": r.venue, "symbol": r.symbol, "kind": "empty_book", "error": "",
                                     "detail": pd.Timestamp(to_utc(book.timestamp)).isoformat()})
            elif not r.ok:
                failures.append({"venue": r.venue, "symbol": r.symbol, "kind": "book", "error": r.error, "detail": r.detail})
        frames = [f for f in frames if len(f)]
        if frames:
            books = pd.concat(frames, ignore_index=True).assign(recorded_for=pd.Timestamp(as_of))
            books["book_time"] = books["book_time"].astype("datetime64[ns, UTC]")
            books["fetched_at"] = books["fetched_at"].astype("datetime64[ns, UTC]")
            with self._lock:
                self._write("books", day_of(as_of), as_of, books)
        self._record_failures(failures, as_of)
        return results

    # -- storage ------------------------------------------------------------------------------

    def _mark(self) -> None:
        marker = self.folder / MARKER
        if marker.is_file():
            meta = json.loads(marker.read_text())
            if meta.get("format") != FORMAT or int(meta.get("version", 0)) > FORMAT_VERSION:
                raise ValueError(f"{marker}: not a CryptoRun recording of format version ≤ {FORMAT_VERSION}")
            return
        if self.folder.exists() and any(p for p in self.folder.iterdir() if not p.name.startswith(".")):
            raise ValueError(f"recording folder {self.folder} is not empty and holds no {MARKER}: refusing to write into it")
        body = {"format": FORMAT, "version": FORMAT_VERSION, "tables": list(TABLES),
                "layout": "<table>/day=YYYY-MM-DD/part-<cycle>-<random>.parquet"}
        atomic_write(marker, (json.dumps(body, sort_keys=True, indent=2) + "\n").encode())

    def _write(self, table: str, day: str, as_of: datetime, frame: pd.DataFrame) -> Path:
        data = pa.Table.from_pandas(frame, preserve_index=False)
        text = [f.name for f in data.schema if pa.types.is_string(f.type)]
        sink = io.BytesIO()
        pq.write_table(data, sink, use_dictionary=text, compression="zstd")
        path = self.folder / table / f"day={day}" / f"part-{as_of_folder(as_of)}-{secrets.token_hex(4)}.parquet"
        payload = sink.getvalue()
        atomic_write(path, payload)
        self.bytes_written += len(payload)
        self._prune()
        return path

    def _record_failures(self, rows: list[dict], as_of: datetime) -> None:
        if not rows:
            return
        frame = pd.DataFrame(rows, columns=list(FAILURE_RECORD_COLUMNS[:-1])).astype(str)
        frame["recorded_for"] = pd.Timestamp(as_of)
        with self._lock:
            self._write("failures", day_of(as_of), as_of, frame)

    def _prune(self) -> None:
        if self.retention_days is None:
            return
        days = sorted({p.name[4:] for t in TABLES for p in (self.folder / t).glob("day=*") if p.is_dir()})
        if not days:
            return
        cutoff = (pd.Timestamp(days[-1]) - timedelta(days=int(self.retention_days))).strftime("%Y-%m-%d")
        for table in TABLES:
            for p in (self.folder / table).glob("day=*"):
                if p.is_dir() and p.name[4:] < cutoff:
                    shutil.rmtree(p, ignore_errors=True)
                    self._loaded_bar_days.discard(p.name[4:])

    def _new_bars(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Rows of ``bars`` not yet recorded with the same values (reads the recorded days it touches once)."""
        for day in sorted(set(bars["timestamp"].dt.strftime("%Y-%m-%d")) - self._loaded_bar_days):
            for path in sorted((self.folder / "bars" / f"day={day}").glob("part-*.parquet")):
                old = read_part(path, ["venue", "symbol", "timeframe", *BAR_COLUMNS])
                self._remember(old)
            self._loaded_bar_days.add(day)
        ts = bars["timestamp"].array.asi8
        values = bars[list(_PRICES)].to_numpy(float)
        keep = np.zeros(len(bars), dtype=bool)
        seen_here: set[tuple] = set()
        for i, (v, s, tf) in enumerate(zip(bars["venue"], bars["symbol"], bars["timeframe"])):
            known = self._bar_keys.get((v, s, tf), {}).get(int(ts[i]))
            row = tuple(values[i])
            key = (v, s, tf, int(ts[i]))
            if key in seen_here or (known is not None and _same(known, row)):
                continue
            seen_here.add(key)
            keep[i] = True
        new = bars[keep].reset_index(drop=True)
        self._remember(new)
        return new

    def _remember(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        ts = pd.to_datetime(frame["timestamp"], utc=True).array.asi8
        values = frame[list(_PRICES)].to_numpy(float)
        for i, (v, s, tf) in enumerate(zip(frame["venue"], frame["symbol"], frame["timeframe"])):
            self._bar_keys.setdefault((str(v), str(s), str(tf)), {})[int(ts[i])] = tuple(values[i])

    def _latest_listing(self, venue: str) -> list[tuple] | None:
        files = part_files(self.folder, "markets")
        if not files:
            return None
        frame = pd.concat([read_part(p) for p in files], ignore_index=True)
        frame = frame[frame["venue"] == venue]
        if frame.empty:
            return None
        last = frame[frame["recorded_for"] == frame["recorded_for"].max()]
        return sorted((r.symbol, r.native_symbol, r.base, r.quote, bool(r.active),
                       None if pd.isna(r.listed_at) else pd.Timestamp(r.listed_at)) for r in last.itertuples(index=False))


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def record_cycle(source: MarketSource, config: Any, as_of: datetime) -> dict[str, Any]:
    """Read (and so, through a :class:`RecordingSource`, record) what the hot and warm cycles at ``as_of``
    read, without scanning: every listing and closed bar of the configured venues, then the books of the
    ranked hot + warm symbols. Returns counts for the caller to report."""
    from cryptorun_core.market.snapshot import collect_snapshot
    from cryptorun_core.universe import rank_universe, segment_symbols

    market = config.market
    sizes = {j.config.universe: j.config.max_sample for j in config.jobs if j.type != "regime"}
    universe = collect_snapshot(source, None, as_of, venues=market.venues, limit=market.history_bars, with_books=False)
    ranking = rank_universe(universe, config, hot_size=sizes.get("hot", 0), warm_size=sizes.get("warm", 0), validate=False)
    symbols = set(segment_symbols(ranking, "hot")) | set(segment_symbols(ranking, "warm"))
    pairs = sorted({(v, s) for v, s in universe.bars[["venue", "symbol"]].drop_duplicates().itertuples(index=False, name=None)
                    if s in symbols})
    books = source.fetch_order_books(pairs, as_of, depth=market.book_depth_levels) if pairs else []
    return {
        "as_of": to_utc(as_of).isoformat(),
        "symbols": len(symbols),
        "bars": len(universe.bars),
        "books": sum(1 for b in books if b.ok),
        "book_failures": sum(1 for b in books if not b.ok),
    }
