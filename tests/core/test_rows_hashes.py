"""Row-range helpers, the numpy table hash and the scan's hashes of its inputs."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _builders as B  # noqa: E402

from cryptorun_core.scan_inputs import bars_hash, books_hash, scan_bars, scan_books  # noqa: E402
from cryptorun_core.market.snapshot import SNAPSHOT_BAR_COLUMNS, SNAPSHOT_BOOK_COLUMNS  # noqa: E402
from cryptorun_core.microstructure import _price_order, book_metrics  # noqa: E402
from cryptorun_core.rows import expand, first_row, group_rows, runs  # noqa: E402
from cryptorun_core.tablehash import row_hashes, table_hash  # noqa: E402

CFG = B.config()


def _pandas_table_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """The reference formulation of explain.json's table hashes (hash_pandas_object per row, sorted)."""
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
        else:
            codes, uniques = pd.factorize(s.astype(str), sort=True)
            canon[c] = codes.astype(np.int64)
            h.update(("\x1f".join(map(str, uniques)) + "\n").encode("utf-8"))
    h.update(np.sort(pd.util.hash_pandas_object(canon, index=False).to_numpy(np.uint64)).tobytes())
    return h.hexdigest()


def test_runs_expand_first_row():
    a = np.array(["x", "x", "y", "y", "y", "x"], dtype=object)
    b = np.array([1, 1, 1, 2, 2, 2])
    assert runs(a, b).tolist() == [0, 2, 3, 5]
    rows, owner = expand(np.array([5, 0, 3]), np.array([7, 0, 4]))
    assert rows.tolist() == [5, 6, 3] and owner.tolist() == [0, 0, 2]
    ts = np.array([1, 3, 5, 7, 2, 4, 6, 8, 9])
    start, stop = np.array([0, 4, 8, 9]), np.array([4, 8, 9, 9])
    assert first_row(ts, start, stop, lambda x: x >= 5).tolist() == [2, 6, 8, 9]
    assert first_row(ts, start, stop, lambda x: x >= 100).tolist() == [4, 8, 9, 9]


def test_group_rows_is_canonical():
    v = np.array(["okx", "kraken", "okx", "kraken"], dtype=object)
    s = np.array(["B", "A", "A", "A"], dtype=object)
    t = np.array([2, 5, 1, 3])
    g = group_rows(v, s, [t])
    assert g.order.tolist() == [3, 1, 2, 0]
    assert list(zip(g.venue, g.symbol, g.start, g.stop)) == [("kraken", "A", 0, 2), ("okx", "A", 2, 3), ("okx", "B", 3, 4)]


def test_row_hashes_equal_hash_pandas_object_and_feed_in_parts():
    rng = np.random.default_rng(3)
    n = 70_000  # more than one chunk
    frame = pd.DataFrame({"a": rng.integers(0, 5, n), "b": rng.standard_normal(n), "c": rng.random(n) > 0.5,
                          "d": rng.integers(-9, 9, n).astype(float)})
    ref = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    cols = [frame["a"].to_numpy(np.int64), frame["b"].to_numpy(), frame["c"].to_numpy(), frame["d"].to_numpy()]
    assert np.array_equal(row_hashes(cols, 4), ref)
    state = row_hashes(cols[:2], 4, finish=False)
    assert np.array_equal(row_hashes(cols[2:], 4, first=2, state=state), ref)
    rows = rng.permutation(n)[:1000]
    assert np.array_equal(row_hashes(cols, 4, rows=rows), ref[rows])


def test_table_hash_matches_the_pandas_formulation():
    rng = np.random.default_rng(0)
    n = 5000
    f = pd.DataFrame({"s": rng.choice(["x", "y", None], n), "r": pd.array(rng.integers(0, 5, n), dtype="Int64"),
                      "b": rng.random(n) > 0.5, "t": pd.date_range("2020", periods=n, freq="min", tz="Europe/Paris"),
                      "f": rng.standard_normal(n), "i": rng.integers(0, 9, n)})
    f.loc[3, "r"] = pd.NA
    f.loc[5, "f"] = np.nan
    cols = list(f.columns)
    assert table_hash(f, cols) == _pandas_table_hash(f, cols)
    assert table_hash(f.iloc[:0], cols) == _pandas_table_hash(f.iloc[:0], cols)
    assert table_hash(f.sample(frac=1.0, random_state=1), cols[::-1]) == _pandas_table_hash(f, cols[::-1])


@pytest.mark.parametrize("job", ["scan.hot", "scan.warm"])
def test_scan_input_hashes_are_the_table_hashes_of_the_inputs(job):
    snap, rk = B.universe(12, seed=4)
    settings = CFG.job(job).config
    venues = tuple(settings.venues)
    symbols = rk.loc[rk["segment"] == "hot", "symbol"].tolist()
    ranked = sorted(rk.loc[rk["segment"].isin(("hot", "warm")), "symbol"])
    t = pd.Timestamp(snap.as_of)
    sb = scan_bars(snap, t, 200, venues, ranked, [])  # a window shorter than the history
    rows, owner = expand(sb.start, sb.stop)
    bars = pd.DataFrame({"venue": sb.venue[owner], "symbol": sb.symbol[owner], "timestamp": pd.to_datetime(sb.ts[rows], utc=True),
                         **{c: sb.cols[c][rows] for c in SNAPSHOT_BAR_COLUMNS[3:]}})
    assert len(bars) and (pd.Timestamp(t) - bars["timestamp"]).max() <= pd.Timedelta(hours=201)
    assert bars_hash(sb) == _pandas_table_hash(bars, list(SNAPSHOT_BAR_COLUMNS))
    kb = scan_books(snap, t, venues, symbols[:5], CFG)
    books = snap.books[snap.books["venue"].isin(venues) & snap.books["symbol"].isin(symbols[:5])]
    books = books.assign(book_time=books["book_time"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]"))  # as the scan reads them
    assert len(books) == len(kb.rows)
    assert books_hash(kb) == _pandas_table_hash(books, list(SNAPSHOT_BOOK_COLUMNS))


def test_price_order_breaks_price_ties_by_amount():
    group = np.array([1, 0, 1, 1, 0, 1])
    price = np.array([2.0, 5.0, 1.0, 2.0, 4.0, 2.0])
    amount = np.array([3.0, 1.0, 9.0, 1.0, 1.0, 2.0])
    order = _price_order(group, price, amount)
    assert list(zip(group[order], price[order], amount[order])) == [
        (0, 4.0, 1.0), (0, 5.0, 1.0), (1, 1.0, 9.0), (1, 2.0, 1.0), (1, 2.0, 2.0), (1, 2.0, 3.0)]


def test_book_depth_sums_do_not_depend_on_level_order_with_repeated_prices():
    rng = np.random.default_rng(5)
    px = np.round(100 * (1 - rng.integers(0, 30, 60) * 1e-3), 3)  # many equal prices
    rows = [("okx", "A/USD", "bid", p, a) for p, a in zip(px, rng.random(60))]
    rows += [("okx", "A/USD", "ask", 100.5 + i * 0.01, 1.0 / (i + 1)) for i in range(30)]
    books = pd.DataFrame(rows, columns=["venue", "symbol", "side", "price", "amount"]).assign(book_time=pd.Timestamp(B.T0))
    a = book_metrics(books, B.T0, CFG)
    for seed in range(3):
        b = book_metrics(books.sample(frac=1.0, random_state=seed), B.T0, CFG)
        pd.testing.assert_frame_equal(a, b)


def test_bars_hash_in_blocks_of_pairs_is_the_same(monkeypatch):
    import cryptorun_core.scan_inputs as E

    snap, rk = B.universe(8, seed=2)
    t = pd.Timestamp(snap.as_of)
    sb = scan_bars(snap, t, 300, ("kraken", "okx", "coinbase"), sorted(rk["symbol"]), [])
    whole = bars_hash(sb)
    monkeypatch.setattr(E, "_HASH_BLOCK_ROWS", 97)  # many blocks, some splitting inside a pair's rows
    assert bars_hash(sb) == whole
