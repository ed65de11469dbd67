"""The incremental OHLCV store of the ccxt source: closed bars per (venue, symbol, timeframe), kept in
memory and, with a cache directory, as parquet files (written atomically; a damaged file is a miss),
so a later cycle asks the venue only for bars newer than the newest stored one."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cryptorun_core.artifacts import safe_join
from cryptorun_core.market.base import BAR_COLUMNS

log = logging.getLogger("cryptorun_core.market.ccxt_live")

#: Bars kept per (venue, symbol, timeframe) in the incremental store (older ones are dropped).
MAX_STORED_BARS = 5000


@dataclass
class BarStore:
    bars: pd.DataFrame  # sorted by timestamp, one bar per timestamp, no NaT
    covered_from: pd.Timestamp  # bars are complete (as the venue serves them) from here on
    stamps: np.ndarray = dataclasses.field(init=False)  # bars' open times, int64 ns UTC (windows are cut on them)

    def __post_init__(self) -> None:
        self.stamps = self.bars["timestamp"].array.as_unit("ns").asi8


class BarStores:
    """Every :class:`BarStore` of one source; ``directory`` (optional) keeps them across processes."""

    def __init__(self, directory: str | os.PathLike[str] | None):
        self.directory = Path(directory) if directory else None
        self.stores: dict[tuple[str, str, str], BarStore] = {}

    def values(self):
        return self.stores.values()

    def path(self, venue: str, symbol: str, timeframe: str) -> Path | None:
        if self.directory is None:
            return None
        # symbols come from the venue's market list: never let one name a path outside the cache dir
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", symbol.replace("/", "-")).lstrip(".") or "_"
        return safe_join(self.directory, venue, f"{safe}_{timeframe}.parquet")

    def load(self, venue: str, symbol: str, timeframe: str) -> BarStore | None:
        key = (venue, symbol, timeframe)
        if key in self.stores:
            return self.stores[key]
        path = self.path(venue, symbol, timeframe)
        if path is None or not path.exists():
            return None
        try:
            table = pq.read_table(path)
            covered = (table.schema.metadata or {}).get(b"covered_from")
            bars = table.to_pandas()
            bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
            bars = bars[list(BAR_COLUMNS)].astype({c: float for c in BAR_COLUMNS[1:]})
            # the store's invariant (what the window is sliced by): time order, one bar per time, no NaT
            bars = bars.dropna(subset=["timestamp"]).drop_duplicates("timestamp", keep="last").sort_values("timestamp")
            store = BarStore(bars=bars.reset_index(drop=True),
                             covered_from=pd.Timestamp(covered.decode()) if covered else bars["timestamp"].min())
        except Exception as exc:  # noqa: BLE001 - a damaged cache file is just a cache miss
            log.warning("ignoring unreadable OHLCV cache file %s: %s", path, type(exc).__name__)
            return None
        self.stores[key] = store
        return store

    def save(self, venue: str, symbol: str, timeframe: str, store: BarStore) -> None:
        self.stores[(venue, symbol, timeframe)] = store
        path = self.path(venue, symbol, timeframe)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(store.bars, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"covered_from": store.covered_from.isoformat().encode()})
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                pq.write_table(table, tmp)
                os.replace(tmp, path)  # readers never see half a file
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:  # the disk cache is an optimisation; the cycle goes on without it
            log.warning("cannot write OHLCV cache file %s: %s", path, exc.strerror)
