"""The ``cryptorun/*`` run tags: the few people filter runs by, and the ones the run queue limits.

Every run of a job carries ``cryptorun/job`` (``scan.hot`` …): the filter people use in the UI's
run list, and the key of the "one ``regime.refresh`` at a time" limit of the local profile
(``deploy/local/dagster.yaml``). A job that calls exchanges live (``market.source: ccxt``) also
carries one ``cryptorun/venue.<venue>`` tag per venue it calls, so the queue can cap the runs that
hit one venue at once: each run throttles itself to the venue's rate limit, assuming it is alone.
Simulated and replayed markets call nobody and carry no venue tag. Everything else a job is
configured with is job metadata, not a tag (issue #18: a run row with seven tags is unreadable).

The other tags are set by whoever launches the run: ``cryptorun/trigger`` (``schedule``, ``cli``),
``cryptorun/worker`` (``pid@host`` of a run executed in the CLI process, so ``schedule status``
and the run monitor can tell a dead run from a live one) and ``cryptorun/dry_run`` (dry runs).
The settings a run resolved (config path, artifacts folder, market source) are stamped by the run
itself when it starts (:data:`SETTINGS_TAGS`) under Dagster's hidden prefix ``.dagster/``: every
step process needs them, nobody filters by them, and the UI leaves hidden tags out of a run's row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster._core.storage.tags import HIDDEN_TAG_PREFIX  # ".dagster/": tags the UI does not show

if TYPE_CHECKING:  # pragma: no cover
    from cryptorun_core.config import JobConfig, MarketConfig

JOB_TAG = "cryptorun/job"
TRIGGER_TAG = "cryptorun/trigger"
WORKER_TAG = "cryptorun/worker"
DRY_RUN_TAG = "cryptorun/dry_run"
#: set by Dagster on every run of a backfill (its id)
BACKFILL_TAG = "dagster/backfill"
VENUE_TAG_PREFIX = "cryptorun/venue."
#: the settings a run resolved when it started (field of the cryptorun_config resource → tag),
#: stamped on the run by cryptorun_pipelines.executors so every step process reads the same
SETTINGS_TAGS = {
    "config_path": f"{HIDDEN_TAG_PREFIX}cryptorun/config_path",
    "artifacts_dir": f"{HIDDEN_TAG_PREFIX}cryptorun/artifacts_dir",
    "market_source": f"{HIDDEN_TAG_PREFIX}cryptorun/market_source",
}
#: the value of a venue tag: the run calls that venue's live API
VENUE_LIVE = "live"
#: market sources that call the venues' APIs
LIVE_SOURCES = ("ccxt",)


def venue_tag(venue: str) -> str:
    return f"{VENUE_TAG_PREFIX}{venue}"


def venue_tags(market: MarketConfig, venues) -> dict[str, str]:
    """One tag per venue a run of ``market.source`` calls live (none for offline sources)."""
    return {venue_tag(v): VENUE_LIVE for v in venues} if market.source in LIVE_SOURCES else {}


def job_run_tags(job: "JobConfig", market: "MarketConfig") -> dict[str, str]:
    """The tags every run of ``job`` carries (the job definition's tags)."""
    return {JOB_TAG: job.name, **venue_tags(market, job.config.venues)}
