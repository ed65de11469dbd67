"""Disk per day of the recorder (issue #17) for a 130-symbol hot + warm universe.

    python -m benchmarks.recording_disk [--cycles 4] [--n-symbols 170]

Method: the simulated market (3 venues, 100-level books, as the live config asks) is recorded through
:class:`RecordingSource` with :func:`record_cycle` (every listing and closed bar of the ranked universe,
books of every hot + warm symbol on every venue listing it) — first a cold cycle at T (the 720-bar
history of every pair), then ``--cycles`` cycles 15 minutes apart. The bytes of the part files each
cycle added are summed per table (zstd Parquet as written). Per day, steady state:

- ``cryptorun record`` every 15 min: 96 × (books of one cycle) + 24 × (bars of one new hour);
- the scans with ``market.record.enabled``: 96 hot cycles × books of 30 symbols + 12 warm cycles ×
  books of 100 symbols (book bytes scale with the symbols whose book is read) + the same bars.

Prints one table (markdown). Not part of ``benchmarks.run``: disk, not time, and no ratio.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptorun_core.config import packaged_config
from cryptorun_core.market.recording import (
    TABLES,
    RecordingSource,
    part_files,
    record_cycle,
)
from cryptorun_core.market.simulated import SimulatedMarket

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _sizes(folder: Path) -> dict[str, dict[Path, int]]:
    return {t: {p: p.stat().st_size for p in part_files(folder, t)} for t in TABLES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=4, help="incremental cycles after the cold one (15 min apart)")
    ap.add_argument("--n-symbols", type=int, default=150, help="simulated symbols (the default market's 150)")
    ap.add_argument("--universe", type=int, default=130, help="hot + warm symbols the per-day figures are scaled to")
    args = ap.parse_args(argv)
    config = packaged_config()
    sim = SimulatedMarket(seed=config.market.simulated.seed, n_symbols=args.n_symbols, venues=config.market.venues)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rec"
        rec = RecordingSource(sim, folder)
        rows = []
        before = _sizes(folder)
        for i in range(args.cycles + 1):
            t = T0 + timedelta(minutes=15 * i)
            summary = record_cycle(rec, config, t)
            after = _sizes(folder)
            added = {tb: sum(s for p, s in after[tb].items() if p not in before[tb]) for tb in TABLES}
            rows.append((t, summary, added))
            before = after
    cold = rows[0]
    inc = rows[1:]
    symbols = cold[1]["symbols"]
    book_pairs = cold[1]["books"]
    book_bytes = sum(r[2]["books"] for r in inc) / len(inc)
    # bars: a new closed bar per pair once an hour (the cycles at :15, :30, :45 add none)
    new_bar_cycles = [r for r in inc if r[0].minute == 0]
    bar_bytes_hour = (sum(r[2]["bars"] for r in new_bar_cycles) / len(new_bar_cycles)) if new_bar_cycles else float("nan")
    other = sum(r[2]["markets"] + r[2]["failures"] for r in inc) / len(inc)
    per_symbol_book = book_bytes / symbols
    # scaled linearly to the 130-symbol hot + warm universe (books and bars are per symbol)
    scale = args.universe / symbols
    record_day = 96 * (book_bytes * scale + other) + 24 * bar_bytes_hour * scale
    scans_day = 96 * 30 * per_symbol_book + 12 * 100 * per_symbol_book + 24 * bar_bytes_hour * scale + 96 * other
    print("| measure | value |\n|---|---|")
    print(f"| ranked hot + warm symbols | {symbols} ({book_pairs} books per cycle on 3 venues, 100 levels) |")
    print(f"| cold cycle (720-bar history + books) | {sum(cold[2].values()) / 1e6:.2f} MB |")
    print(f"| books per cycle | {book_bytes / 1e3:.1f} kB ({per_symbol_book / 1e3:.2f} kB per symbol) |")
    print(f"| bars per new hour | {bar_bytes_hour / 1e3:.1f} kB |")
    print(f"| listings + failures per cycle | {other / 1e3:.2f} kB |")
    print(f"| per day, `cryptorun record` every 15 min, {args.universe} symbols | {record_day / 1e6:.1f} MB |")
    print(f"| per day, scans recording (96 hot × 30 + 12 warm × 100 symbols' books) | {scans_day / 1e6:.1f} MB |")
    print(f"| per 30 days (scans / record every 15 min) | {30 * scans_day / 1e9:.2f} GB / {30 * record_day / 1e9:.2f} GB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
