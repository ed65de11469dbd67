"""The recorder (RecordingSource) and the replay of a recording (RecordedMarket): layout,
deduplication, versions, the books rule of SPEC §3, failures, retention, config errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cryptorun_core.config import ConfigError, changed, packaged_config
from cryptorun_core.config_files import validate
from cryptorun_core.market.base import (
    FetchResult,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
)
from cryptorun_core.market.factory import build_market_source, source_kind
from cryptorun_core.market.recorded import RecordedMarket
from cryptorun_core.market.recording import (
    MARKER,
    RecordingSource,
    is_recording,
    part_files,
)
from cryptorun_core.market.snapshot import LIVE_BOOK_GRACE_S, collect_snapshot

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
MAX_AGE = 60.0


class Scripted(MarketSource):
    """A source whose answers the test sets: hourly bars (value = hours since T), books by time."""

    name = "ccxt"
    costly_books = True  # as the live ccxt source: each book a venue request

    def __init__(self):
        self.book_time: dict[datetime, datetime] = {}  # cycle T -> the venue time of the book it gets
        self.revise: dict[pd.Timestamp, float] = {}  # bar open -> a revised close
        self.down: set[tuple[str, datetime]] = set()  # (kind, T) answered venue_down

    @property
    def venues(self):
        return ("kraken",)

    def list_markets(self, venue, as_of):
        return [MarketInfo("kraken", "BTC/USD", "XBT/USD", "BTC", "USD")]

    def fetch_ohlcv(self, requests, as_of, timeframe="1h", limit=720):
        if ("ohlcv", as_of) in self.down:
            return [FetchResult(v, s, None, stamped_at=as_of, error="venue_down", detail="kraken is down") for v, s in requests]
        opens = pd.date_range(end=(pd.Timestamp(as_of) - H).floor("h"), periods=min(limit, 48), freq="h", tz="UTC")
        close = np.array([self.revise.get(t, 100.0 + (t - pd.Timestamp(T)) / H) for t in opens])
        frame = pd.DataFrame({"timestamp": opens, "open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 10.0})
        return [FetchResult(v, s, frame.copy(), stamped_at=as_of) for v, s in requests]

    def fetch_tickers(self, requests, as_of):
        return [FetchResult(v, s, Ticker(1, 1, 1), stamped_at=as_of) for v, s in requests]

    def fetch_order_books(self, requests, as_of, depth=100):
        if ("book", as_of) in self.down:
            return [FetchResult(v, s, None, stamped_at=as_of, error="venue_down", detail="kraken is down") for v, s in requests]
        taken = self.book_time.get(as_of, as_of + timedelta(seconds=2))
        mid = 100.0 + (pd.Timestamp(taken) - pd.Timestamp(T)) / H
        book = OrderBook.from_levels([(mid - 0.1 * i, 1.0 + i) for i in range(1, 6)], [(mid + 0.1 * i, 2.0 + i) for i in range(1, 6)], taken)
        return [FetchResult(v, s, book, stamped_at=taken) for v, s in requests]


def _record(inner, folder, times, **kw):
    rec = RecordingSource(inner, folder, now=lambda: times[-1] + timedelta(seconds=3), **kw)
    for t in times:
        collect_snapshot(rec, None, t, limit=48)
    return rec


def _replay(folder):
    return RecordedMarket(folder, ("kraken",), max_book_age_s=MAX_AGE)


def _book(src, t):
    return src.fetch_order_books([("kraken", "BTC/USD")], t)[0]


def test_layout_is_day_partitioned_parquet_with_a_marker(tmp_path):
    _record(Scripted(), tmp_path / "rec", [T])
    assert is_recording(tmp_path / "rec") and (tmp_path / "rec" / MARKER).is_file()
    bar_days = sorted(p.parent.name for p in part_files(tmp_path / "rec", "bars"))
    assert bar_days == ["day=2026-11-18", "day=2026-11-19", "day=2026-11-20"]  # by open day of the 48 bars
    books = pq.read_table(part_files(tmp_path / "rec", "books")[0]).to_pandas()
    assert list(books.columns) == ["venue", "symbol", "side", "level", "price", "amount", "book_time", "fetched_at", "recorded_for"]
    assert len(books) == 10 and books["book_time"].iloc[0] == pd.Timestamp(T + timedelta(seconds=2))
    assert books["fetched_at"].iloc[0] == pd.Timestamp(T + timedelta(seconds=3))
    assert not list((tmp_path / "rec").rglob(".*.tmp"))


def test_bars_are_incremental_and_deduplicated(tmp_path):
    inner = Scripted()
    _record(inner, tmp_path / "rec", [T, T + timedelta(minutes=15), T + H])
    bars = pd.concat([pq.read_table(p).to_pandas() for p in part_files(tmp_path / "rec", "bars")])
    assert len(bars) == 49 and bars["timestamp"].is_unique  # T + 1h added exactly one closed bar
    listings = part_files(tmp_path / "rec", "markets")
    assert len(listings) == 1  # an unchanged listing is not written again
    # a new recorder instance on the same folder knows what is there already
    _record(inner, tmp_path / "rec", [T + H])
    assert len(pd.concat([pq.read_table(p).to_pandas() for p in part_files(tmp_path / "rec", "bars")])) == 49


def test_a_revised_bar_is_a_new_version_served_from_its_cycle_on(tmp_path):
    inner = Scripted()
    last = pd.Timestamp(T) - H
    rec = _record(inner, tmp_path / "rec", [T])
    inner.revise[last] = 123.0
    collect_snapshot(rec, None, T + timedelta(minutes=15), limit=48)
    replay = _replay(tmp_path / "rec")
    before = replay.fetch_ohlcv([("kraken", "BTC/USD")], T, limit=48)[0].data
    after = replay.fetch_ohlcv([("kraken", "BTC/USD")], T + timedelta(minutes=15), limit=48)[0].data
    assert before["close"].iloc[-1] == 100.0 - 1 and after["close"].iloc[-1] == 123.0
    assert len(before) == len(after) == 48 and before["timestamp"].is_unique
    live = inner.fetch_ohlcv([("kraken", "BTC/USD")], T + timedelta(minutes=15), limit=48)[0].data
    pd.testing.assert_frame_equal(after, live)


def test_the_live_cycles_book_is_served_with_its_own_time(tmp_path):
    inner = Scripted()
    inner.book_time[T] = T - timedelta(seconds=30)
    _record(inner, tmp_path / "rec", [T, T + timedelta(minutes=15)])
    replay = _replay(tmp_path / "rec")
    r = _book(replay, T)
    assert r.ok and r.data.timestamp == T - timedelta(seconds=30)
    np.testing.assert_array_equal(r.data.bids, inner.fetch_order_books([("kraken", "BTC/USD")], T)[0].data.bids)
    # the later cycle's book (taken T + 15 min + 2 s) is never used for T
    assert _book(replay, T + timedelta(minutes=15)).data.timestamp == T + timedelta(minutes=15, seconds=2)


@pytest.mark.parametrize(
    "offset_s, used",
    [(-MAX_AGE - 1, False), (-MAX_AGE, True), (0, True), (LIVE_BOOK_GRACE_S, True), (LIVE_BOOK_GRACE_S + 1, False)],
)
def test_without_a_live_cycle_at_t_the_freshness_rule_picks_the_book(tmp_path, offset_s, used):
    """T' = T + 1 min was never a live cycle: the book of the cycle at T (taken at T + 1 min + offset)
    is used for T' exactly when a live cycle at T' could have used it."""
    inner = Scripted()
    t_replayed = T + timedelta(minutes=1)
    inner.book_time[T] = t_replayed + timedelta(seconds=offset_s)
    _record(inner, tmp_path / "rec", [T])
    r = _book(_replay(tmp_path / "rec"), t_replayed)
    assert r.ok is used
    if not used:
        assert r.error == "no_book" and "no recorded kraken book usable" in r.detail


def test_failures_replay_as_they_happened(tmp_path):
    inner = Scripted()
    inner.down |= {("book", T), ("ohlcv", T + H)}
    rec = _record(inner, tmp_path / "rec", [T - H, T])
    assert not rec.fetch_ohlcv([("kraken", "BTC/USD")], T + H)[0].ok  # collect_snapshot would give up: no venue answered
    replay = _replay(tmp_path / "rec")
    r = _book(replay, T)
    assert not r.ok and r.error == "venue_down" and r.detail == "kraken is down"  # not the T - 1h book
    bars = replay.fetch_ohlcv([("kraken", "BTC/USD")], T + H)[0]
    assert bars.error == "venue_down"
    assert replay.fetch_ohlcv([("kraken", "BTC/USD")], T)[0].ok


def test_retention_drops_old_days_and_keep_keeps_everything(tmp_path):
    _record(Scripted(), tmp_path / "keep", [T])
    assert len({p.parent for p in part_files(tmp_path / "keep", "bars")}) == 3
    _record(Scripted(), tmp_path / "short", [T], retention_days=1)
    assert sorted({p.parent.name for p in part_files(tmp_path / "short", "bars")}) == ["day=2026-11-19", "day=2026-11-20"]


def test_a_folder_that_is_not_a_recording_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no recording.json"):
        RecordingSource(Scripted(), tmp_path / "x")
    with pytest.raises(ValueError, match="is not a recording"):
        RecordedMarket(tmp_path / "x", max_book_age_s=60)


def test_factory_reads_a_recording_folder_and_still_reads_plain_ohlcv(tmp_path):
    _record(Scripted(), tmp_path / "rec", [T])
    base = packaged_config()
    cfg = base.model_copy(update={"market": changed(base.market, source="replay", replay={"path": str(tmp_path / "rec")})})
    src = build_market_source(cfg)
    assert isinstance(src, RecordedMarket) and source_kind(cfg) == "recording"
    assert src.fetch_order_books([("kraken", "BTC/USD")], T)[0].ok
    plain = base.model_copy(update={"market": changed(base.market, source="replay")})
    assert build_market_source(plain).name == "replay" and source_kind(plain) == "replay"
    assert source_kind(base) == "simulated"


def _raw_with(**record):
    import yaml

    from cryptorun_core.config import DEFAULT_CONFIG_PATH

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["market"]["record"] = record
    return raw


@pytest.mark.parametrize(
    "record, key, words",
    [
        ({"enabled": True, "folder": "r"}, "market.record.retention_days", "required"),
        ({"enabled": True, "folder": "r", "retention_days": 0}, "market.record.retention_days", "greater than or equal to 1"),
        ({"enabled": True, "folder": " ", "retention_days": None}, "market.record.folder", "must not be empty"),
        ({"enabled": True, "folder": "r", "retention_days": None, "keep": 1}, "market.record.keep", "unknown key"),
    ],
)
def test_record_config_errors_name_the_key(record, key, words):
    with pytest.raises(ConfigError) as err:
        validate(_raw_with(**record), lambda _k: "<test>")
    assert key in str(err.value) and words in str(err.value)


def test_record_defaults_live_in_scheduler_yaml():
    rec = packaged_config().market.record
    assert rec.enabled is False and rec.retention_days is None and rec.folder.endswith("recordings")


def test_a_live_source_is_recorded_when_record_is_enabled(tmp_path, monkeypatch):
    import sys
    import types

    fake = types.ModuleType("cryptorun_core.market.ccxt_live")
    fake.CcxtMarket = type("FakeCcxtMarket", (), {"from_config": classmethod(lambda cls, config, job: Scripted())})
    monkeypatch.setitem(sys.modules, "cryptorun_core.market.ccxt_live", fake)
    base = packaged_config()
    off = base.model_copy(update={"market": changed(base.market, source="ccxt")})
    assert isinstance(build_market_source(off), Scripted)  # enabled: false records nothing
    on = base.model_copy(update={"market": changed(base.market, source="ccxt",
                                                   record={"enabled": True, "folder": str(tmp_path / "rec"), "retention_days": 3})})
    src = build_market_source(on)
    assert isinstance(src, RecordingSource) and src.name == "ccxt" and src.costly_books and src.retention_days == 3
    collect_snapshot(src, None, T, limit=48)
    assert part_files(tmp_path / "rec", "bars") and is_recording(tmp_path / "rec")


def test_an_unfinished_write_is_ignored_and_a_damaged_part_is_named(tmp_path):
    _record(Scripted(), tmp_path / "rec", [T])
    day = tmp_path / "rec" / "books" / "day=2026-11-20"
    (day / ".part-2026-11-20T12-15-00Z-dead.parquet.1a2b.tmp").write_bytes(b"PAR1 half a file")  # a killed writer
    assert _book(_replay(tmp_path / "rec"), T).ok
    bad = day / "part-2026-11-20T12-15-00Z-beef.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=f"recording part file {bad} cannot be read"):
        _book(_replay(tmp_path / "rec"), T)
