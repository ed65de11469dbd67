"""Typed, validated configuration: ``config/scheduler.yaml`` and the overlays that extend it.

Rules for every section (follow them when you add one):

- **Every value lives once, in config/scheduler.yaml.** The models here declare types and bounds
  (``Field(ge=0)``), never defaults: every field is required and the packaged scheduler.yaml sets
  each one, with a comment where the meaning is not obvious. A new setting is a field here plus
  its value in config/scheduler.yaml; tests/core/test_config.py fails on a field with a default.
- **Other configs are overlays**: ``extends: scheduler.yaml`` plus only the keys that differ
  (merge rules in cryptorun_core.config_files). A file without ``extends`` sets every key.
- **Code that needs settings without a file** takes them from :func:`packaged_config` and changes
  what it needs with :func:`changed` (validated) or ``model_copy(update=...)``; it never builds a
  model from literals.
- **Models derive from** ``_Strict``: unknown keys and non-finite numbers (NaN, ±inf) are refused
  in every section. A check across fields is a validator raising ``ValueError``, or
  :class:`InvalidAt` to name a key below the one validated.

Loading (:func:`load_config`) fails with :class:`ConfigError` naming the key path
(``jobs[scan.hot].schedule``, ``regime.weights.calm``) of the first problem and the file (or
environment variable) it came from; it writes nothing.
"""

from __future__ import annotations

import functools
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar, Mapping

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cryptorun_core.cron import check_cron

UTC = timezone.utc

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "scheduler.yaml"
CONFIG_PATH_ENV = "CRYPTORUN_CONFIG"
ARTIFACTS_DIR_ENV = "CRYPTORUN_ARTIFACTS_DIR"
MARKET_SOURCE_ENV = "CRYPTORUN_MARKET_SOURCE"

KNOWN_VENUES = ("kraken", "okx", "coinbase")
AGGREGATOR_IDS = (
    "coingecko",
    "coinmarketcap",
    "cmc",
    "cryptocompare",
    "messari",
    "nomics",
    "coinapi",
    "coinpaprika",
    "dexscreener",
)
AGGREGATOR_FRAGMENTS = ("aggregat", "composite", "blended")
FACTORS = ("momentum", "technical", "volume", "quality")
REGIMES = ("calm", "normal", "volatile")
JOB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class ConfigError(ValueError):
    """A configuration problem; ``key`` is the dotted path of the offending setting."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"invalid config at '{key}': {message}")


def is_aggregator(source_id: str) -> bool:
    """True when ``source_id`` names a data aggregator rather than a venue (SPEC §3)."""
    ident = source_id.strip().lower()
    return ident in AGGREGATOR_IDS or any(frag in ident for frag in AGGREGATOR_FRAGMENTS)


class InvalidAt(ValueError):
    """Raised by a validator to name a key below the one pydantic reports:
    ``InvalidAt("venue", ...)`` in a validator of ``market.replay`` reports ``market.replay.venue``."""

    def __init__(self, subkey: str, message: str):
        self.subkey = subkey
        super().__init__(message)


class _Strict(BaseModel):
    # allow_inf_nan=False: a NaN or infinite threshold would silently disable the gate it sets
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_sums_to_one(weights: dict[str, float], what: str) -> None:
    total = sum(weights.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"{what} must sum to 1 (got {total:.6f})")


def _check_weight_table(table: dict[str, dict[str, float]], keys: tuple[str, ...], what: str) -> dict[str, dict[str, float]]:
    """A regime → {key: weight} table: every regime, exactly ``keys``, non-negative, each row summing to 1."""
    if set(table) != set(REGIMES):
        raise ValueError(f"needs exactly the regimes {list(REGIMES)} (got {sorted(table)})")
    for regime, row in table.items():
        if set(row) != set(keys):
            raise ValueError(f"{regime}: needs exactly the {what}s {list(keys)}")
        if any(w < 0 for w in row.values()):
            raise ValueError(f"{regime}: weights must be non-negative")
        _check_sums_to_one(row, f"{regime} {what} weights")
    return table


class GlobalConfig(_Strict):
    artifacts_dir: str
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    timezone: Literal["UTC"]
    partitions_start: datetime
    # market snapshots (pipeline-internal parquet, ~8 MB per hot cycle) older than this many hours
    # before the newest one are pruned; 0 keeps them all. SPEC §9 artifacts are never pruned.
    snapshot_retention_hours: int = Field(ge=0)

    @field_validator("artifacts_dir")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("partitions_start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v.astimezone(UTC)


class SimulatedMarketConfig(_Strict):
    seed: int
    n_symbols: int = Field(ge=10, le=10000)


class ReplayMarketConfig(_Strict):
    path: str
    resolution: Literal["1h", "1d"]
    venue: str  # the venue the recorded bars are served as

    @field_validator("venue")
    @classmethod
    def _venue(cls, v: str) -> str:
        return MarketConfig._known_venues((v,))[0]


class CcxtMarketConfig(_Strict):
    timeout_ms: int = Field(gt=0)
    max_retries: int = Field(ge=0, le=10)
    backoff_base_s: float = Field(ge=0)
    backoff_max_s: float = Field(ge=0)
    ohlcv_cache_dir: str
    api_key_env: dict[str, str]


class RecordMarketConfig(_Strict):
    """The recorder (issue #17): every live cycle's closed bars and books archived as day-partitioned
    Parquet under ``folder`` (apart from the pruned pipeline snapshots); replay it with
    ``market.source: replay`` and ``market.replay.path`` = the folder."""

    enabled: bool
    folder: str
    retention_days: int | None = Field(ge=1)  # null keeps every day

    @field_validator("folder")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class CacheConfig(_Strict):
    ttl_s: float = Field(ge=0)
    max_entries: int = Field(gt=0)


class MarketConfig(_Strict):
    source: Literal["simulated", "ccxt", "replay"]
    venues: tuple[str, ...]
    microstructure_sources: tuple[str, ...]
    usd_quotes: tuple[str, ...]
    excluded_bases: tuple[str, ...]
    history_bars: int = Field(ge=24, le=5000)
    book_depth_levels: int = Field(gt=0)
    simulated: SimulatedMarketConfig
    replay: ReplayMarketConfig
    ccxt: CcxtMarketConfig
    cache: CacheConfig
    record: RecordMarketConfig

    @field_validator("venues")
    @classmethod
    def _known_venues(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one venue is required")
        for venue in v:
            if is_aggregator(venue):
                raise ValueError(f"'{venue}' is an aggregator, not a venue-native exchange")
            if venue not in KNOWN_VENUES:
                raise ValueError(f"unknown venue '{venue}' (known: {', '.join(KNOWN_VENUES)})")
        if len(set(v)) != len(v):
            raise ValueError("venues must not repeat")
        return v

    @field_validator("microstructure_sources")
    @classmethod
    def _no_aggregators(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for source in v:
            if is_aggregator(source):
                raise ValueError(
                    f"'{source}' is an aggregator; spread, depth and order books come only from "
                    "venue-native exchanges (SPEC §3)"
                )
            if source not in KNOWN_VENUES:
                raise ValueError(f"unknown microstructure source '{source}'")
        return v

    @field_validator("usd_quotes")
    @classmethod
    def _usd_quotes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {"USD", "USDT", "USDC"}
        bad = [q for q in v if q not in allowed]
        if bad or "USD" not in v:
            raise ValueError(f"must include USD and only USD/USDT/USDC (got {list(v)})")
        return v

    @field_validator("replay")
    @classmethod
    def _replayed_venue_is_configured(cls, v: ReplayMarketConfig, info: ValidationInfo) -> ReplayMarketConfig:
        venues = info.data.get("venues")
        if info.data.get("source") == "replay" and venues is not None and v.venue not in venues:
            raise InvalidAt("venue", f"'{v.venue}' is not one of market.venues {list(venues)} (market.source is replay)")
        return v


class SanitationConfig(_Strict):
    """Magnitude rules of the bar sanitation (cryptorun_core.quality): a bar outside these bounds is
    garbage, never a number. Ratios compare a bar with its neighbours in time (one-bar spikes)."""

    min_price_usd: float = Field(gt=0)
    max_price_usd: float = Field(gt=0)
    max_bar_usd_volume: float = Field(gt=0)  # close·volume of one bar
    price_spike_ratio: float = Field(gt=1)
    volume_spike_ratio: float = Field(gt=1)

    @model_validator(mode="after")
    def _ordered(self) -> "SanitationConfig":
        if not self.min_price_usd < self.max_price_usd:
            raise InvalidAt("max_price_usd", f"must be above min_price_usd ({self.min_price_usd:g})")
        return self


class TierConfig(_Strict):
    name: str
    min_adv_usd: float = Field(ge=0)
    depth_min_usd: float = Field(gt=0)
    spread_max_bps: float = Field(gt=0)
    vadr_min: float = Field(gt=0)
    score: float = Field(ge=0, le=100)


class UniverseConfig(_Strict):
    min_adv_usd: float = Field(ge=0)
    adv_periods: int = Field(ge=1)
    min_periods: int = Field(ge=1)
    regime_universe_size: int = Field(ge=1)
    tiers: tuple[TierConfig, ...]

    @field_validator("tiers")
    @classmethod
    def _tiers_descending(cls, v: tuple[TierConfig, ...]) -> tuple[TierConfig, ...]:
        if not v:
            raise ValueError("at least one tier is required")
        advs = [t.min_adv_usd for t in v]
        if advs != sorted(advs, reverse=True) or len(set(advs)) != len(advs):
            raise ValueError("tiers must be ordered by strictly decreasing min_adv_usd")
        return v


TIMEFRAME_KEYS = ("1h", "4h", "12h", "24h", "7d")
TIMEFRAME_HOURS = {"1h": 1, "4h": 4, "12h": 12, "24h": 24, "7d": 168}


class MomentumConfig(_Strict):
    k: float = Field(gt=0)
    vol_window_bars: int = Field(ge=2)
    weights: dict[str, dict[str, float]]

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return _check_weight_table(v, TIMEFRAME_KEYS, "timeframe")


class FactorsConfig(_Strict):
    momentum: MomentumConfig
    orthogonalize: bool
    min_cross_section: int = Field(ge=3)
    rsi_period: int = Field(ge=2)
    adx_period: int = Field(ge=2)
    range_periods: int = Field(ge=2)


class VadrConfig(_Strict):
    min_prior_periods: int = Field(ge=1)
    percentile: float = Field(gt=0, lt=100)
    min_symbols_for_percentile: int = Field(ge=1)


class BandConfig(_Strict):
    """Vote band of one indicator: calm on one side, volatile on the other, normal between."""

    calm: float
    volatile: float


class RegimeThresholds(_Strict):
    # realized vol: calm below, volatile above; the two others: calm above, volatile below
    realized_vol_7d: BandConfig
    pct_above_20ma: BandConfig
    breadth_thrust: BandConfig

    @model_validator(mode="after")
    def _ordered(self) -> "RegimeThresholds":
        if not self.realized_vol_7d.calm < self.realized_vol_7d.volatile:
            raise ValueError("realized_vol_7d: calm must be below volatile")
        if not self.pct_above_20ma.calm > self.pct_above_20ma.volatile:
            raise ValueError("pct_above_20ma: calm must be above volatile")
        if not self.breadth_thrust.calm > self.breadth_thrust.volatile:
            raise ValueError("breadth_thrust: calm must be above volatile")
        return self


class RegimeConfig(_Strict):
    benchmark: str
    ma_periods: int = Field(ge=2)
    thrust_periods: int = Field(ge=2)
    thrust_ema_span: int = Field(ge=1)  # alpha = 2 / (span + 1)
    refresh_hours: int = Field(ge=1)
    thresholds: RegimeThresholds
    weights: dict[str, dict[str, float]]

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return _check_weight_table(v, FACTORS, "factor")


class FatigueConfig(_Strict):
    r24h_above: float
    rsi4h_above: float


class GatesConfig(_Strict):
    history_min_bars: int = Field(ge=1)
    fresh_max_bar_lag: int = Field(ge=0)
    fresh_max_book_age_s: float = Field(ge=0)
    depth_band_pct: float = Field(gt=0, lt=100)
    absurd_spread_bps: float = Field(gt=0)  # a book wider than this is invalid (absurd_spread)
    fatigue: FatigueConfig


class PremoveConfig(_Strict):
    compression_min: float = Field(ge=0, le=100)
    volume_build_min: float = Field(ge=0)
    imbalance_min: float = Field(ge=-1, le=1)
    compression_periods: int = Field(ge=2)
    volume_build_periods: int = Field(ge=1)
    weight_compression: float = Field(ge=0)
    weight_volume: float = Field(ge=0)
    weight_imbalance: float = Field(ge=0)
    volume_build_span: float = Field(gt=0)
    imbalance_cap: float = Field(gt=0)
    watch_min: float
    prepare_min: float
    prime_min: float
    execute_min_gates: int = Field(ge=0, le=3)
    low_risk_spread_bps: float = Field(ge=0)
    low_risk_depth_multiple: float = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> "PremoveConfig":
        _check_sums_to_one(
            {"c": self.weight_compression, "v": self.weight_volume, "i": self.weight_imbalance},
            "premove component weights",
        )
        if not self.watch_min < self.prepare_min < self.prime_min:
            raise ValueError("state thresholds must satisfy watch_min < prepare_min < prime_min")
        return self


class JobSettings(_Strict):
    """Per-job knobs (the seed's ``config`` block)."""

    universe: Literal["hot", "warm", "all"]
    venues: tuple[str, ...]
    max_sample: int = Field(ge=1, le=10000)
    premove: bool
    score_min: float = Field(ge=0, le=100)
    vadr_use_percentile: bool
    spread_multiplier: float = Field(gt=0)
    depth_multiplier: float = Field(gt=0)
    cache_ttl_s: float = Field(ge=0)
    request_rate_per_s: float = Field(ge=0)  # 0 = the venue's own ccxt rate limit

    @field_validator("venues")
    @classmethod
    def _venues(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return MarketConfig._known_venues(v)


class JobConfig(_Strict):
    name: str
    schedule: str
    type: Literal["scan", "regime"]
    enabled: bool
    description: str
    config: JobSettings

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not JOB_NAME_RE.match(v):
            raise ValueError(f"'{v}' is not a valid job name (lowercase words joined by dots)")
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            check_cron(v)
        except ValueError as exc:
            raise ValueError(f"'{v}' is not a valid 5-field cron expression: {exc}") from None
        if not croniter.is_valid(v):  # what Dagster's scheduler will read it with
            raise ValueError(f"'{v}' is not a valid 5-field cron expression")
        return v

    @property
    def dagster_name(self) -> str:
        """Dagster names cannot contain dots: ``scan.hot`` becomes ``scan_hot``."""
        return self.name.replace(".", "_")


ENV_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_var_name(v: str) -> str:
    """The name of an environment variable (Celery URLs, notification secrets); never echoes the
    value (it may be a pasted secret such as a URL with a password)."""
    if not ENV_VAR_NAME_RE.match(v):
        raise ValueError("not an environment variable name: must be the NAME of an environment variable "
                         "(letters, digits, _) that holds the value, e.g. CRYPTORUN_SLACK_WEBHOOK_URL; "
                         "secrets never go in config files")
    return v


class MultiprocessExecutorConfig(_Strict):
    # steps of one run executing at once, each in its own process (0 = one per CPU)
    max_concurrent: int = Field(ge=0)


class CeleryExecutorConfig(_Strict):
    # the NAMES of the environment variables holding the URLs (they may carry passwords): read by
    # the run's launcher when the run starts, never stored in the run's config
    broker_url_env: str
    backend_url_env: str
    # seconds a run waits at its start for a worker consuming its queue (one starting, or scaled up
    # on demand) before it fails; without a worker dagster-celery would wait forever
    worker_wait_s: float = Field(ge=0)
    # seconds a step's task may go unseen on any answering worker, with no result, before its step
    # fails (its worker was killed or restarted); 0: never. A worker with the solo pool does not
    # answer while it runs a step: set this above its longest step, or 0
    worker_lost_s: float = Field(ge=0)

    @field_validator("broker_url_env", "backend_url_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        return _env_var_name(v)


class ExecutorConfig(_Strict):
    """How a run's steps execute (cryptorun_pipelines.executors): all in the run's process, one
    process per step, or one Celery task per step on workers that share the instance and files."""

    type: Literal["in_process", "multiprocess", "celery"]
    multiprocess: MultiprocessExecutorConfig
    celery: CeleryExecutorConfig


class WebhookTargetConfig(_Strict):
    """A target whose whole address is one secret URL (generic webhook, Slack, Discord)."""

    enabled: bool
    url_env: str  # the environment variable holding the URL

    @field_validator("url_env")
    @classmethod
    def _name(cls, v: str) -> str:
        return _env_var_name(v)


class TelegramTargetConfig(_Strict):
    enabled: bool
    token_env: str  # the environment variable holding the bot token
    chat_id_env: str  # the environment variable holding the chat id
    api_url: str  # Bot API base URL (a local Bot API server may replace the public one)

    @field_validator("token_env", "chat_id_env")
    @classmethod
    def _names(cls, v: str) -> str:
        return _env_var_name(v)

    @field_validator("api_url")
    @classmethod
    def _api(cls, v: str) -> str:
        return _http_url(v)


def _http_url(v: str) -> str:
    if not re.match(r"^https?://[^\s/]+", v):
        raise ValueError("must be an http:// or https:// URL")
    return v.rstrip("/")


class NotificationTargetsConfig(_Strict):
    webhook: WebhookTargetConfig
    slack: WebhookTargetConfig
    discord: WebhookTargetConfig
    telegram: TelegramTargetConfig


class NotificationRetryConfig(_Strict):
    max_attempts: int = Field(ge=1, le=50)
    backoff_base_s: float = Field(ge=0)
    backoff_max_s: float = Field(ge=0)
    retry_after_max_s: float = Field(ge=0)  # a longer Retry-After is capped to this

    @model_validator(mode="after")
    def _ordered(self) -> "NotificationRetryConfig":
        if self.backoff_max_s < self.backoff_base_s:
            raise InvalidAt("backoff_max_s", "must be at least backoff_base_s")
        return self


class NotificationsConfig(_Strict):
    """Chat/webhook messages for new scan entries (docs/notifications.md)."""

    ui_base_url: str
    backfills: bool
    sensor_interval_s: int = Field(ge=5)
    tick_budget_s: float = Field(gt=0)
    timeout_s: float = Field(gt=0)
    retry: NotificationRetryConfig
    targets: NotificationTargetsConfig

    @field_validator("ui_base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        return _http_url(v)

    @model_validator(mode="after")
    def _timeout_fits_tick(self) -> "NotificationsConfig":
        if self.timeout_s > self.tick_budget_s:
            raise InvalidAt("timeout_s", "must not exceed tick_budget_s (one attempt must fit in a sensor tick)")
        return self


class AppConfig(_Strict):
    global_: GlobalConfig = Field(alias="global")
    market: MarketConfig
    sanitation: SanitationConfig
    universe: UniverseConfig
    factors: FactorsConfig
    vadr: VadrConfig
    regime: RegimeConfig
    gates: GatesConfig
    premove: PremoveConfig
    executor: ExecutorConfig
    jobs: tuple[JobConfig, ...]
    notifications: NotificationsConfig

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("jobs")
    @classmethod
    def _jobs(cls, jobs: tuple[JobConfig, ...], info: ValidationInfo) -> tuple[JobConfig, ...]:
        # a field validator (not a model validator) so the error names the key: ``jobs``
        names = [j.name for j in jobs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate job names: {dupes}")
        market = info.data.get("market")
        if market is not None:
            for job in jobs:
                extra = [v for v in job.config.venues if v not in market.venues]
                if extra:
                    raise ValueError(f"job '{job.name}' uses venues not in market.venues: {extra}")
                if market.source == "replay" and market.replay.venue not in job.config.venues:
                    raise InvalidAt(f"[{job.name}].config.venues", f"must include '{market.replay.venue}', the venue "
                                    "market.replay serves (market.source is replay)")
        return jobs

    def job(self, name: str) -> JobConfig:
        """The job named ``name`` (dotted or Dagster spelling)."""
        for job in self.jobs:
            if name in (job.name, job.dagster_name):
                return job
        raise KeyError(f"no job named '{name}' (known: {', '.join(j.name for j in self.jobs)})")

    def tier_for_adv(self, adv_usd: float) -> TierConfig | None:
        for tier in self.universe.tiers:
            if adv_usd >= tier.min_adv_usd:
                return tier
        return None


def parse_config(raw: Any, *, source: str = "<config>") -> AppConfig:
    """Validate a complete mapping (already parsed YAML, no ``extends``) into an :class:`AppConfig`."""
    from cryptorun_core.config_files import validate  # the loader imports this module

    return validate(raw, lambda _key: source)


def resolve_config_path(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to read: ``path``, else ``$CRYPTORUN_CONFIG``, else the packaged config/scheduler.yaml."""
    env = os.environ if environ is None else environ
    return Path(path or env.get(CONFIG_PATH_ENV) or DEFAULT_CONFIG_PATH).expanduser().resolve()


def load_config(
    path: str | os.PathLike[str] | None = None, *, check_artifacts_dir: bool = True, environ: Mapping[str, str] | None = None
) -> AppConfig:
    """Load and validate the scheduler config and the files it extends; writes nothing.

    ``path`` defaults to ``$CRYPTORUN_CONFIG`` or the packaged ``config/scheduler.yaml``.
    ``$CRYPTORUN_ARTIFACTS_DIR`` and ``$CRYPTORUN_MARKET_SOURCE`` override the files (read from
    ``environ``, default the process environment: a run reads the overrides its launcher resolved).
    With the replay source its folder must exist; ``check_artifacts_dir`` also proves that
    ``artifacts_dir`` can be created and written (it is created when something is written into it).
    """
    from cryptorun_core.config_files import load

    env = os.environ if environ is None else environ
    return load(resolve_config_path(path, env), env, check_artifacts_dir)


@functools.cache
def packaged_config() -> AppConfig:
    """The packaged ``config/scheduler.yaml`` (every default, paths resolved), without environment
    overrides or checks on disk: for code and tests that need settings without a config file."""
    from cryptorun_core.config_files import load

    return load(DEFAULT_CONFIG_PATH, {}, check_artifacts_dir=False)


_Model = TypeVar("_Model", bound=BaseModel)


def changed(model: _Model, **changes: Any) -> _Model:
    """A validated copy of ``model`` with ``changes`` applied, a mapping merging into its section:
    ``changed(packaged_config().market, ccxt={"max_retries": 5})``."""
    from cryptorun_core.config_files import merge_mapping

    return type(model).model_validate(merge_mapping(model.model_dump(by_alias=True), changes))
