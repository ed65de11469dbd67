"""``distinct_pairs`` of the segment reader: the (venue, symbol) pairs of a long table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptorun_core.book_pruning import distinct_pairs


def test_distinct_pairs_are_drop_duplicates_in_first_appearance_order():
    rng = np.random.default_rng(0)
    venue = rng.choice(["okx", "kraken", "coinbase"], 400)
    symbol = rng.choice(["A/USD", "B/USD", "C/USD", "D/USD"], 400)
    frames = [
        pd.DataFrame({"venue": np.repeat(["okx", "kraken"], 5), "symbol": np.repeat(["A/USD", "A/USD"], 5), "x": 1.0}),
        pd.DataFrame({"venue": venue, "symbol": symbol, "x": 1.0}),  # not grouped: pairs come back
        pd.DataFrame({"venue": ["okx", "okx", "okx"], "symbol": ["A/USD", None, None], "x": 1.0}),
    ]
    for f in frames:
        assert distinct_pairs(f) == list(f[["venue", "symbol"]].drop_duplicates().itertuples(index=False, name=None))
    assert distinct_pairs(pd.DataFrame(columns=["venue", "symbol"])) == []
