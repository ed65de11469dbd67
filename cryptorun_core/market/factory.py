"""Choose the configured :class:`MarketSource` (``market.source``: simulated | replay | ccxt)."""

from __future__ import annotations

from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_core.market.base import MarketSource


def build_market_source(config: AppConfig, job: JobConfig | None = None) -> MarketSource:
    """The market source of ``config.market.source``, for ``job``'s venues (else ``market.venues``).

    ``ccxt`` is imported lazily so offline runs never load the exchange client. A replay source
    serves its one recorded venue (``market.replay.venue``) whatever the job's venues are.
    """
    market = config.market
    venues = tuple(job.config.venues) if job is not None else tuple(market.venues)
    if market.source == "simulated":
        from cryptorun_core.market.simulated import SimulatedMarket

        return SimulatedMarket(seed=market.simulated.seed, n_symbols=market.simulated.n_symbols, venues=venues)
    if market.source == "replay":
        from cryptorun_core.market.recording import is_recording

        if is_recording(market.replay.path):
            from cryptorun_core.market.recorded import RecordedMarket

            return RecordedMarket(market.replay.path, venues, max_book_age_s=config.gates.fresh_max_book_age_s)
        from cryptorun_core.market.replay import ReplayMarket

        return ReplayMarket(market.replay.path, resolution=market.replay.resolution, venue=market.replay.venue)
    if market.source == "ccxt":
        from cryptorun_core.market.ccxt_live import CcxtMarket

        return recorded_if_enabled(CcxtMarket.from_config(config, job), config)
    raise ValueError(f"unknown market.source '{market.source}' (expected simulated, replay or ccxt)")


def recorded_if_enabled(source: MarketSource, config: AppConfig, *, force: bool = False) -> MarketSource:
    """``source`` wrapped in the recorder when ``market.record.enabled`` (or ``force``)."""
    record = config.market.record
    if not (record.enabled or force):
        return source
    from cryptorun_core.market.recording import RecordingSource

    return RecordingSource(source, record.folder, retention_days=record.retention_days)


def source_kind(config: AppConfig) -> str:
    """``market.source``, or ``recording`` when it replays a recording folder (read like a live run)."""
    if config.market.source == "replay":
        from cryptorun_core.market.recording import is_recording

        if is_recording(config.market.replay.path):
            return "recording"
    return config.market.source
