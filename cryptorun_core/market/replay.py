"""Replay of recorded OHLCV history (and optionally recorded books) as a :class:`MarketSource`.

Layout (as in ``../shared/data/real/``): one file per symbol, ``<BASE>-USD.csv`` or ``.parquet``
with columns ``timestamp,open,high,low,close,volume`` (timestamp = bar *open* time, ISO UTC,
volume in base units). Everything is served as of T without lookahead (SPEC §1): only bars with
open + one bar ≤ T. A daily replay is meant to be read with T at 00:00 UTC, where its 24h
periods are exactly its daily bars.

Optional recorded books: ``books/<same stem>.csv`` beside the bar files, columns
``timestamp,side,price,amount`` (one row per level, ``side`` = ``bid``/``ask``, all levels of one
book share its timestamp). The latest book taken at or before T is served, stamped with its own
time; without a book file ``fetch_order_books`` answers ``no_book`` -- replay never invents a book.

Rows are served as recorded: replay drops, repairs and de-duplicates nothing, so every garbage row
(NaN or absurd prices, duplicated timestamps, …) reaches the bar sanitation of the cycle
(:mod:`cryptorun_core.quality`), which rejects or repairs it *with a reason code in the cycle's
data-quality report*. A file that cannot be read at all (empty, binary junk, a non-UTF-8 row, corrupt
parquet, missing columns, unparsable timestamps) or a symlink leading out of the folder is skipped:
its symbol has no bars, and :meth:`ReplayMarket.data_problems` names the file and why
(``unreadable_file`` / ``file_outside_folder``), which the snapshot's fetch log and the reports carry.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.market.base import (
    BAR_COLUMNS,
    TIMEFRAME_DELTA,
    UTC,
    FetchResult,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
    Timeframe,
    empty_bars,
    to_utc,
)
from cryptorun_core.market.windows import BarWindows, pack_series

USD_QUOTES = ("USD", "USDT", "USDC")
BOOK_COLUMNS = ("timestamp", "side", "price", "amount")
# Yahoo renames that are not a plain digit suffix.
BASE_ALIASES = {"MIOTA": "IOTA"}
_SUFFIXED = re.compile(r"^([A-Z]{2,}?)(\d+)$")  # LUNA1, COMP1, HOT1, UNI3 (not C98: one letter)
_PRICE_COLUMNS = ("open", "high", "low", "close")
UNREADABLE_FILE = "unreadable_file"
FILE_OUTSIDE_FOLDER = "file_outside_folder"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Series:
    """One symbol's bars as numpy arrays (timestamps as int64 ns of the bar open, ascending)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def strictly_ascending(self) -> bool:
        return len(self.ts) < 2 or bool((np.diff(self.ts) > 0).all())


_NO_SERIES = _Series(*(np.zeros(0, dtype=np.int64 if i == 0 else float) for i in range(6)))


@dataclass(frozen=True)
class _Books:
    times: np.ndarray  # distinct book timestamps (int64 ns, ascending)
    frame: pd.DataFrame  # all levels, sorted by timestamp


def canonical_base(stem_base: str) -> str:
    """Yahoo ticker base -> plain base: LUNA1 -> LUNA, COMP1 -> COMP, MIOTA -> IOTA."""
    base = stem_base.upper()
    if base in BASE_ALIASES:
        return BASE_ALIASES[base]
    m = _SUFFIXED.match(base)
    return m.group(1) if m else base


def _split_stem(path: Path) -> tuple[str, str]:
    """File stem ``BTC-USD`` (or ``BTC_USD``, or bare ``BTC``) -> (base as written, quote)."""
    parts = re.split(r"[-_]", path.stem)
    if len(parts) == 1:
        return parts[0].upper(), "USD"
    if len(parts) != 2 or not parts[0]:
        raise ValueError(f"{path}: cannot read a symbol from the file name (expected e.g. BTC-USD{path.suffix})")
    quote = parts[1].upper()
    if quote not in USD_QUOTES:
        raise ValueError(f"{path}: quote '{quote}' is not a USD quote ({', '.join(USD_QUOTES)})")
    return parts[0].upper(), quote


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    # round_trip: every price is the float the text spells, bit for bit
    return pd.read_csv(path, float_precision="round_trip")


def _check_columns(path: Path, frame: pd.DataFrame, required: Sequence[str]) -> pd.DataFrame:
    cols = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in required if c not in cols]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected {list(required)}, found {[str(c) for c in frame.columns]}"
        )
    return frame.rename(columns={cols[c]: c for c in required})[list(required)]


def _parse_times(path: Path, values: pd.Series) -> np.ndarray:
    try:
        ts = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: column 'timestamp' has values that are not timestamps ({exc})") from None
    if ts.isna().any():
        raise ValueError(f"{path}: column 'timestamp' has {int(ts.isna().sum())} empty value(s)")
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


class ReplayMarket(MarketSource):
    """Recorded bars of one folder served as one venue (SPEC §1; microstructure only from recorded books)."""

    name = "replay"

    def __init__(self, path: str | os.PathLike[str], resolution: Literal["1h", "1d"] = "1d", venue: str = "kraken"):
        if resolution not in TIMEFRAME_DELTA:
            raise ValueError(f"resolution must be '1h' or '1d' (got {resolution!r})")
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"replay folder {self.path} does not exist or is not a folder")
        self.resolution: Timeframe = resolution
        self.venue = venue
        self.problems: dict[str, tuple[str, str, str]] = {}
        """symbol → (file name, reason code, sentence) of every file that could not be read; filled
        when the folder is indexed (symlinks) and as files are loaded (:meth:`load_all` loads all)."""
        self._files = self._index_files()
        if not self._files and not self.problems:
            raise ValueError(f"replay folder {self.path} holds no *.csv or *.parquet bar files")
        self._series: dict[str, _Series] = {}
        self._books: dict[str, _Books | None] = {}
        self._lock = threading.Lock()

    # -- files --------------------------------------------------------------------------------

    def _index_files(self) -> dict[str, tuple[Path, str, str]]:
        """canonical symbol -> (file, native stem, base). An unsuffixed name wins a collision
        (LUNA-USD stays LUNA/USD and LUNA1-USD keeps its digit)."""
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in (".csv", ".parquet") and (p.is_file() or p.is_symlink()))
        index: dict[str, tuple[Path, str, str]] = {}
        inside = self.path.resolve()
        exact = {_split_stem(p)[0] for p in files}
        for p in files:
            written, _quote = _split_stem(p)
            base = canonical_base(written)
            if base != written and base in exact:
                base = written
            symbol = f"{base}/USD"
            target = p.resolve()
            if not target.is_relative_to(inside):
                self._problem(symbol, p, FILE_OUTSIDE_FOLDER,
                              f"{p.name} is a symlink that leads out of the replay folder ({target}); refused")
                continue
            if not target.is_file():
                self._problem(symbol, p, UNREADABLE_FILE, f"{p.name} is a symlink to no file ({target}); {symbol} is skipped")
                continue
            if symbol in index:
                raise ValueError(f"{p}: maps to {symbol}, which {index[symbol][0].name} already provides")
            index[symbol] = (p, p.stem, base)
        return index

    @property
    def symbols(self) -> list[str]:
        """Canonical symbols of the folder (``BASE/USD``), sorted."""
        return sorted(self._files)

    def file_for(self, symbol: str) -> Path:
        return self._files[symbol][0]

    def load_all(self) -> None:
        for symbol in self._files:
            self._load(symbol)

    def _problem(self, symbol: str, path: Path, reason: str, detail: str) -> None:
        if symbol not in self.problems:
            log.warning("replay %s: %s: %s", self.path, reason, detail)
        self.problems[symbol] = (path.name, reason, detail)

    def data_problems(self, venue: str, as_of: datetime) -> list[FetchResult]:
        """One failed result per file of the folder that cannot be read (loads every file once)."""
        if venue != self.venue:
            return []
        self.load_all()
        return [FetchResult(venue, symbol, None, stamped_at=to_utc(as_of), error=reason, detail=detail)
                for symbol, (_name, reason, detail) in sorted(self.problems.items())]

    def _load(self, symbol: str) -> _Series:
        series = self._series.get(symbol)
        if series is not None:
            return series
        with self._lock:
            if symbol not in self._series:
                path = self._files[symbol][0]
                try:
                    self._series[symbol] = self._parse(symbol)
                except Exception as exc:  # noqa: BLE001 - one unreadable file must not end the cycle
                    why = str(exc) if isinstance(exc, ValueError) and str(exc).startswith(str(path)) else f"{type(exc).__name__}: {exc}"
                    why = why.removeprefix(f"{path}: ")
                    self._problem(symbol, path, UNREADABLE_FILE, f"{path.name} cannot be read ({why}); {symbol} is skipped")
                    self._series[symbol] = _NO_SERIES
            return self._series[symbol]

    def _parse(self, symbol: str) -> _Series:
        """Every row of the file, in time order (ties in file order); no value is judged here."""
        path = self._files[symbol][0]
        frame = _check_columns(path, _read_table(path), BAR_COLUMNS)
        ts = _parse_times(path, frame["timestamp"])
        values = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for c in BAR_COLUMNS[1:]}
        order = np.argsort(ts, kind="stable")
        return _Series(ts[order], *(values[c][order] for c in BAR_COLUMNS[1:]))

    def _load_books(self, symbol: str) -> _Books | None:
        if symbol in self._books:
            return self._books[symbol]
        stem = self._files[symbol][1]
        path = self.path / "books" / f"{stem}.csv"
        books = None
        if path.is_symlink() and not path.resolve().is_relative_to(self.path.resolve()):
            raise ValueError(f"books/{path.name} is a symlink that leads out of the replay folder; refused")
        if path.is_file():
            frame = _check_columns(path, _read_table(path), BOOK_COLUMNS)
            frame = frame.assign(
                timestamp=_parse_times(path, frame["timestamp"]),
                side=frame["side"].astype(str).str.strip().str.lower(),
                price=pd.to_numeric(frame["price"], errors="coerce"),
                amount=pd.to_numeric(frame["amount"], errors="coerce"),
            )
            bad_side = ~frame["side"].isin(("bid", "ask"))
            if bad_side.any():
                raise ValueError(f"{path}: column 'side' must be 'bid' or 'ask' ({int(bad_side.sum())} other value(s))")
            frame = frame[(frame["price"] > 0) & (frame["amount"] > 0)].sort_values("timestamp", kind="stable")
            books = _Books(np.unique(frame["timestamp"].to_numpy()), frame.reset_index(drop=True))
        with self._lock:
            self._books[symbol] = books
        return books

    # -- MarketSource -------------------------------------------------------------------------

    @property
    def venues(self) -> tuple[str, ...]:
        return (self.venue,)

    @property
    def native_timeframe(self) -> Timeframe:
        return self.resolution

    def list_markets(self, venue: str, as_of: datetime) -> list[MarketInfo]:
        """Every file whose first bar has closed by ``as_of`` (loads each file once)."""
        if venue != self.venue:
            raise ValueError(f"replay of {self.path} serves only venue '{self.venue}' (asked for '{venue}')")
        cutoff = self._cutoff_ns(as_of, self.resolution)
        out = []
        for symbol, (_path, stem, base) in sorted(self._files.items()):
            series = self._load(symbol)
            if not len(series.ts) or series.ts[0] > cutoff:
                continue
            listed = pd.Timestamp(int(series.ts[0]), tz=UTC).to_pydatetime()
            out.append(MarketInfo(venue, symbol, stem, base, "USD", active=True, listed_at=listed))
        return out

    def ohlcv_request(self, venue: str, symbol: str, as_of: datetime, timeframe: Timeframe, limit: int) -> FetchResult[pd.DataFrame]:
        bad = self._bad_request(venue, symbol, as_of)
        if bad is not None:
            return bad
        if timeframe != self.resolution and not (self.resolution == "1h" and timeframe == "1d"):
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="no_data",
                               detail=f"replay of {self.path.name} has {self.resolution} bars only, not {timeframe}")
        frame = self._bars(symbol, as_of, timeframe, limit)
        if frame.empty:
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="no_data",
                               detail=f"no {timeframe} bar of {symbol} closed by {as_of.isoformat()}")
        return FetchResult(venue, symbol, frame, stamped_at=as_of)

    def ticker_request(self, venue: str, symbol: str, as_of: datetime) -> FetchResult[Ticker]:
        """No recorded quotes: bid = ask = last = the last close at or before T."""
        bad = self._bad_request(venue, symbol, as_of)
        if bad is not None:
            return bad
        series = self._load(symbol)
        end = int(np.searchsorted(series.ts, self._cutoff_ns(as_of, self.resolution), side="right"))
        if end == 0:
            detail = f"no bar of {symbol} closed by {as_of.isoformat()}"
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="no_data", detail=detail)
        last = float(series.close[end - 1])
        # 24h volumes over the bars that closed in (T - 24h, T]
        day_start = int(np.searchsorted(series.ts, self._cutoff_ns(as_of, self.resolution) - 86_400 * 10**9, side="right"))
        base_24h = float(series.volume[day_start:end].sum())
        quote_24h = float((series.volume[day_start:end] * series.close[day_start:end]).sum())
        stamped = pd.Timestamp(int(series.ts[end - 1]), tz=UTC).to_pydatetime() + TIMEFRAME_DELTA[self.resolution]
        return FetchResult(venue, symbol, Ticker(last, last, last, base_24h, quote_24h), stamped_at=stamped)

    def book_request(self, venue: str, symbol: str, as_of: datetime, depth: int) -> FetchResult[OrderBook]:
        bad = self._bad_request(venue, symbol, as_of)
        if bad is not None:
            return bad
        try:
            books = self._load_books(symbol)
        except Exception as exc:  # noqa: BLE001 - an unreadable book file is no book, named
            detail = f"{symbol}: recorded book file books/{self._files[symbol][1]}.csv cannot be read ({type(exc).__name__}: {exc})"
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="no_book", detail=detail)
        t_ns = pd.Timestamp(as_of).value
        idx = -1 if books is None else int(np.searchsorted(books.times, t_ns, side="right")) - 1
        if books is None or idx < 0:
            why = "no recorded book file" if books is None else "no recorded book at or before T"
            detail = f"{symbol}: {why} (replay synthesises no order book)"
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="no_book", detail=detail)
        book = self._book_at(books, int(books.times[idx]), depth)
        return FetchResult(venue, symbol, book, stamped_at=book.timestamp)

    def bar_windows(
        self, requests: Sequence[tuple[str, str]], as_ofs: Sequence[datetime], timeframe: Timeframe = "1h", limit: int = 720
    ) -> BarWindows:
        """Each (venue, symbol)'s recorded bars over the range of ``as_ofs`` once, and for each T the rows
        :meth:`fetch_ohlcv` at T serves (the newest ``limit`` bars closed by T). Bars of the folder's own
        resolution only; raises NotImplementedError otherwise (read those once per T)."""
        if timeframe != self.resolution or limit is None or limit <= 0:
            raise NotImplementedError("bar_windows serves the replay's own resolution with a positive limit")
        as_ofs = [to_utc(a) for a in as_ofs]
        t_ns = np.array([pd.Timestamp(a).value for a in as_ofs], dtype=np.int64)
        cutoff = t_ns - pd.Timedelta(TIMEFRAME_DELTA[timeframe]).value
        pairs = list(dict.fromkeys((str(v), str(s)) for v, s in requests))
        series, windows = [], []
        for venue, symbol in pairs:
            if venue != self.venue or symbol not in self._files:
                raise NotImplementedError(f"replay has no {symbol} on {venue}")
            sr = self._load(symbol)
            if not sr.strictly_ascending:  # duplicated open times: sanitized (and reported) cycle by cycle
                raise NotImplementedError(f"replay: {self.file_for(symbol).name} repeats open times")
            end = np.searchsorted(sr.ts, cutoff, side="right")
            start = np.maximum(0, end - limit)
            lo, hi = int(start.min()), int(end.max())  # only the rows some T reads
            series.append((sr.ts[lo:hi], sr.open[lo:hi], sr.high[lo:hi], sr.low[lo:hi], sr.close[lo:hi], sr.volume[lo:hi]))
            windows.append((start - lo, end - lo))

        def no_data(venue: str, symbol: str, as_of) -> str:
            return f"no {timeframe} bar of {symbol} closed by {to_utc(as_of).isoformat()}"

        return pack_series(pairs, t_ns, series, windows, no_data)

    # -- helpers ------------------------------------------------------------------------------

    def _bad_request(self, venue: str, symbol: str, as_of: datetime) -> FetchResult | None:
        if venue != self.venue:
            detail = f"replay serves only venue '{self.venue}'"
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="bad_symbol", detail=detail)
        if symbol not in self._files:
            detail = f"no file for {symbol} in {self.path}"
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="bad_symbol", detail=detail)
        return None

    @staticmethod
    def _cutoff_ns(as_of: datetime, timeframe: Timeframe) -> int:
        """Latest bar open time whose bar has closed by T (open + one bar ≤ T)."""
        return (pd.Timestamp(to_utc(as_of)) - TIMEFRAME_DELTA[timeframe]).value

    def _bars(self, symbol: str, as_of: datetime, timeframe: Timeframe, limit: int) -> pd.DataFrame:
        series = self._load(symbol)
        if timeframe != self.resolution:  # hourly replay asked for daily bars
            return _daily_from_hourly(series, as_of, limit)
        end = int(np.searchsorted(series.ts, self._cutoff_ns(as_of, timeframe), side="right"))
        start = max(0, end - limit)
        if end <= start:
            return empty_bars()
        return _frame(series, slice(start, end))

    def _book_at(self, books: _Books, t_ns: int, depth: int) -> OrderBook:
        levels = books.frame[books.frame["timestamp"] == t_ns]
        bids = levels[levels["side"] == "bid"].sort_values("price", ascending=False)
        asks = levels[levels["side"] == "ask"].sort_values("price", ascending=True)
        return OrderBook(
            bids=bids[["price", "amount"]].to_numpy(float)[:depth],
            asks=asks[["price", "amount"]].to_numpy(float)[:depth],
            timestamp=pd.Timestamp(t_ns, tz=UTC).to_pydatetime(),
        )


def _frame(series: _Series, sl: slice) -> pd.DataFrame:
    ts = pd.DatetimeIndex(series.ts[sl].astype("datetime64[ns]")).tz_localize(UTC)
    return pd.DataFrame(
        {"timestamp": ts, "open": series.open[sl], "high": series.high[sl], "low": series.low[sl],
         "close": series.close[sl], "volume": series.volume[sl]}
    )


def _daily_from_hourly(series: _Series, as_of: datetime, limit: int) -> pd.DataFrame:
    """UTC-day bars of days that have fully closed by T, built from hourly bars."""
    day_ns = 86_400 * 10**9
    t_ns = pd.Timestamp(to_utc(as_of)).value
    last_day = (t_ns // day_ns) * day_ns - day_ns  # newest day whose close (next midnight) ≤ T
    end = int(np.searchsorted(series.ts, last_day + day_ns - 1, side="right"))
    start = int(np.searchsorted(series.ts, last_day - (limit - 1) * day_ns, side="left"))
    if end <= start:
        return empty_bars()
    hourly = _frame(series, slice(start, end))
    out = hourly.groupby(hourly["timestamp"].dt.floor("1D"), sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"), volume=("volume", "sum")
    )
    out.index.name = "timestamp"
    return out.reset_index()
