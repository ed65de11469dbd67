"""``cryptorun record [--as-of TIME]``: archive one cycle's bars and books without scanning."""

from __future__ import annotations

import json

from cryptorun_core.market.factory import build_market_source, recorded_if_enabled
from cryptorun_core.market.recording import RecordingSource, record_cycle
from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.errors import EXIT_OK, UsageError
from cryptorun_pipelines.cli.timing import parse_time, utcnow


def run_record(ctx: Context, as_of: str | None) -> int:
    """Record what the hot and warm cycles at ``as_of`` (default: now) read into ``market.record.folder``
    (whether or not ``market.record.enabled``, which only governs the scans)."""
    config = ctx.config
    if config.market.source == "replay":
        raise UsageError("market.source is replay: there is nothing live to record (use ccxt, or simulated to try it)")
    t = parse_time(as_of) if as_of else utcnow()
    source = build_market_source(config)
    if not isinstance(source, RecordingSource):
        source = recorded_if_enabled(source, config, force=True)
    try:
        summary = record_cycle(source, config, t)
        summary.update(folder=config.market.record.folder, source=source.name, bytes_written=source.bytes_written)
    finally:
        source.close()
    if ctx.json:
        ctx.out.write(json.dumps(summary, sort_keys=True) + "\n")
    else:
        ctx.out.write(f"recorded {summary['source']} at {summary['as_of']}: {summary['symbols']} symbols, {summary['bars']} bars read, "
                      f"{summary['books']} books ({summary['book_failures']} failed), {summary['bytes_written']} bytes "
                      f"new in {summary['folder']}\n")
    return EXIT_OK
