"""Typed, validated configuration loaded from ``config/scheduler.yaml``.

Every threshold and weight of SPEC.md lives here with its SPEC default; nothing else in the code
base carries a literal copy. Loading fails with :class:`ConfigError` naming the key path
(``jobs[scan.hot].schedule``, ``regime.weights.calm``) of the first problem found.
"""

from __future__ import annotations

import math
import os
import re
from datetime import datetime, timezone

UTC = timezone.utc
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    artifacts_dir: str = "artifacts"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    timezone: Literal["UTC"] = "UTC"
    partitions_start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    # market snapshots (pipeline-internal parquet, ~8 MB per hot cycle) older than this many hours
    # before the newest one are pruned; 0 keeps them all. SPEC §9 artifacts are never pruned.
    snapshot_retention_hours: int = Field(48, ge=0)

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
    seed: int = 7
    n_symbols: int = Field(150, ge=10, le=10000)


class ReplayMarketConfig(_Strict):
    path: str = "../shared/data/real/daily"
    resolution: Literal["1h", "1d"] = "1d"
    venue: str = "kraken"


class CcxtMarketConfig(_Strict):
    timeout_ms: int = Field(10_000, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)
    ohlcv_cache_dir: str = ".cache/ohlcv"
    api_key_env: dict[str, str] = Field(default_factory=dict)


class CacheConfig(_Strict):
    ttl_s: float = Field(600.0, ge=0)
    max_entries: int = Field(50_000, gt=0)


class MarketConfig(_Strict):
    source: Literal["simulated", "ccxt", "replay"] = "simulated"
    venues: tuple[str, ...] = KNOWN_VENUES
    microstructure_sources: tuple[str, ...] = KNOWN_VENUES
    usd_quotes: tuple[str, ...] = ("USD",)
    excluded_bases: tuple[str, ...] = (
        "USDT", "USDC", "DAI", "BUSD", "TUSD", "USDP", "PYUSD", "FDUSD", "UST", "GUSD",
        "EUR", "GBP", "JPY", "CAD", "AUD", "CHF",
    )
    history_bars: int = Field(720, ge=24, le=5000)
    book_depth_levels: int = Field(100, gt=0)
    simulated: SimulatedMarketConfig = SimulatedMarketConfig()
    replay: ReplayMarketConfig = ReplayMarketConfig()
    ccxt: CcxtMarketConfig = CcxtMarketConfig()
    cache: CacheConfig = CacheConfig()

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


class TierConfig(_Strict):
    name: str
    min_adv_usd: float = Field(ge=0)
    depth_min_usd: float = Field(gt=0)
    spread_max_bps: float = Field(gt=0)
    vadr_min: float = Field(gt=0)
    score: float = Field(ge=0, le=100)


def _default_tiers() -> tuple[TierConfig, ...]:
    return (
        TierConfig(name="tier1", min_adv_usd=5_000_000, depth_min_usd=150_000, spread_max_bps=25, vadr_min=1.85, score=100),
        TierConfig(name="tier2", min_adv_usd=1_000_000, depth_min_usd=75_000, spread_max_bps=50, vadr_min=1.80, score=70),
        TierConfig(name="tier3", min_adv_usd=100_000, depth_min_usd=25_000, spread_max_bps=80, vadr_min=1.75, score=40),
    )


class UniverseConfig(_Strict):
    min_adv_usd: float = Field(100_000, ge=0)
    adv_periods: int = Field(7, ge=1)
    min_periods: int = Field(7, ge=1)
    regime_universe_size: int = Field(100, ge=1)
    tiers: tuple[TierConfig, ...] = Field(default_factory=_default_tiers)

    @field_validator("tiers")
    @classmethod
    def _tiers_descending(cls, v: tuple[TierConfig, ...]) -> tuple[TierConfig, ...]:
        if not v:
            raise ValueError("at least one tier is required")
        advs = [t.min_adv_usd for t in v]
        if advs != sorted(advs, reverse=True) or len(set(advs)) != len(advs):
            raise ValueError("tiers must be ordered by strictly decreasing min_adv_usd")
        return v


def _weights_table(values: dict[str, tuple[float, ...]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    return {regime: dict(zip(keys, row)) for regime, row in values.items()}


TIMEFRAME_KEYS = ("1h", "4h", "12h", "24h", "7d")
TIMEFRAME_HOURS = {"1h": 1, "4h": 4, "12h": 12, "24h": 24, "7d": 168}


class MomentumConfig(_Strict):
    k: float = Field(1.0, gt=0)
    vol_window_bars: int = Field(168, ge=2)
    weights: dict[str, dict[str, float]] = Field(
        default_factory=lambda: _weights_table(
            {
                "calm": (0.15, 0.30, 0.35, 0.15, 0.05),
                "normal": (0.20, 0.35, 0.30, 0.15, 0.00),
                "volatile": (0.25, 0.40, 0.25, 0.10, 0.00),
            },
            TIMEFRAME_KEYS,
        )
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return _check_weight_table(v, TIMEFRAME_KEYS, "timeframe")


class FactorsConfig(_Strict):
    momentum: MomentumConfig = MomentumConfig()
    orthogonalize: bool = True
    min_cross_section: int = Field(10, ge=3)
    rsi_period: int = Field(14, ge=2)
    adx_period: int = Field(14, ge=2)
    range_periods: int = Field(20, ge=2)


class VadrConfig(_Strict):
    min_prior_periods: int = Field(20, ge=1)
    percentile: float = Field(80, gt=0, lt=100)
    min_symbols_for_percentile: int = Field(20, ge=1)


class BandConfig(_Strict):
    """Vote band of one indicator: calm on one side, volatile on the other, normal between."""

    calm: float
    volatile: float


class RegimeThresholds(_Strict):
    # realized vol: calm below, volatile above; the two others: calm above, volatile below
    realized_vol_7d: BandConfig = BandConfig(calm=0.40, volatile=0.80)
    pct_above_20ma: BandConfig = BandConfig(calm=70.0, volatile=45.0)
    breadth_thrust: BandConfig = BandConfig(calm=0.60, volatile=0.40)

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
    benchmark: str = "BTC/USD"
    ma_periods: int = Field(20, ge=2)
    thrust_periods: int = Field(30, ge=2)
    thrust_ema_span: int = Field(10, ge=1)  # alpha = 2 / (span + 1) = 2/11
    refresh_hours: int = Field(4, ge=1)
    thresholds: RegimeThresholds = RegimeThresholds()
    weights: dict[str, dict[str, float]] = Field(
        default_factory=lambda: _weights_table(
            {
                "calm": (0.40, 0.30, 0.20, 0.10),
                "normal": (0.35, 0.25, 0.25, 0.15),
                "volatile": (0.30, 0.20, 0.30, 0.20),
            },
            FACTORS,
        )
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return _check_weight_table(v, FACTORS, "factor")


class FatigueConfig(_Strict):
    r24h_above: float = 0.12
    rsi4h_above: float = 70.0


class GatesConfig(_Strict):
    history_min_bars: int = Field(192, ge=1)
    fresh_max_bar_lag: int = Field(2, ge=0)
    fresh_max_book_age_s: float = Field(60.0, ge=0)
    depth_band_pct: float = Field(2.0, gt=0, lt=100)
    absurd_spread_bps: float = Field(2500.0, gt=0)  # a book wider than this is invalid (absurd_spread)
    fatigue: FatigueConfig = FatigueConfig()


class PremoveConfig(_Strict):
    compression_min: float = Field(70.0, ge=0, le=100)
    volume_build_min: float = Field(1.5, ge=0)
    imbalance_min: float = Field(0.15, ge=-1, le=1)
    compression_periods: int = Field(20, ge=2)
    volume_build_periods: int = Field(7, ge=1)
    weight_compression: float = Field(0.45, ge=0)
    weight_volume: float = Field(0.30, ge=0)
    weight_imbalance: float = Field(0.25, ge=0)
    volume_build_span: float = Field(2.0, gt=0)
    imbalance_cap: float = Field(0.3, gt=0)
    watch_min: float = 50.0
    prepare_min: float = 70.0
    prime_min: float = 85.0
    execute_min_gates: int = Field(2, ge=0, le=3)
    low_risk_spread_bps: float = Field(25.0, ge=0)
    low_risk_depth_multiple: float = Field(2.0, ge=0)

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

    universe: Literal["hot", "warm", "all"] = "hot"
    venues: tuple[str, ...] = KNOWN_VENUES
    max_sample: int = Field(30, ge=1, le=10000)
    premove: bool = False
    score_min: float = Field(75.0, ge=0, le=100)
    vadr_use_percentile: bool = True
    spread_multiplier: float = Field(1.0, gt=0)
    depth_multiplier: float = Field(1.0, gt=0)
    cache_ttl_s: float = Field(0.0, ge=0)
    request_rate_per_s: float = Field(0.0, ge=0)  # 0 = the venue's own ccxt rate limit

    @field_validator("venues")
    @classmethod
    def _venues(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return MarketConfig._known_venues(v)


class JobConfig(_Strict):
    name: str
    schedule: str
    type: Literal["scan", "regime"]
    enabled: bool = True
    description: str = ""
    config: JobSettings = JobSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not JOB_NAME_RE.match(v):
            raise ValueError(f"'{v}' is not a valid job name (lowercase words joined by dots)")
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(f"'{v}' is not a valid 5-field cron expression")
        return v

    @property
    def dagster_name(self) -> str:
        """Dagster names cannot contain dots: ``scan.hot`` becomes ``scan_hot``."""
        return self.name.replace(".", "_")


class AppConfig(_Strict):
    global_: GlobalConfig = Field(GlobalConfig(), alias="global")
    market: MarketConfig = MarketConfig()
    universe: UniverseConfig = UniverseConfig()
    factors: FactorsConfig = FactorsConfig()
    vadr: VadrConfig = VadrConfig()
    regime: RegimeConfig = RegimeConfig()
    gates: GatesConfig = GatesConfig()
    premove: PremoveConfig = PremoveConfig()
    jobs: tuple[JobConfig, ...]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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


def _format_loc(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """Turn a pydantic location into a readable key path, naming jobs by their name."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            if isinstance(node, list) and 0 <= item < len(node):
                child = node[item]
                if isinstance(child, dict) and isinstance(child.get("name"), str):
                    label = child["name"]
                node = child
            else:
                node = None
            if parts:
                parts[-1] = f"{parts[-1]}[{label}]"
            else:
                parts.append(f"[{label}]")
            continue
        item = str(item)
        if item in ("function-after", "function-before", "function-wrap") or item.startswith(("list[", "tuple[", "dict[")):
            continue
        parts.append(item)
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "<root>"


def parse_config(raw: Any, *, source: str = "<config>") -> AppConfig:
    """Validate a mapping (already parsed YAML) into an :class:`AppConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"{source} must contain a mapping at the top level")
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _format_loc(tuple(err["loc"]), raw)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        raise ConfigError(key, f"{msg} (in {source})") from None


def resolve_config_path(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to read: ``path``, else ``$CRYPTORUN_CONFIG``, else the packaged config/scheduler.yaml."""
    env = os.environ if environ is None else environ
    return Path(path or env.get(CONFIG_PATH_ENV) or DEFAULT_CONFIG_PATH).expanduser().resolve()


def load_config(
    path: str | os.PathLike[str] | None = None, *, check_artifacts_dir: bool = True, environ: Mapping[str, str] | None = None
) -> AppConfig:
    """Load and validate the scheduler config.

    ``path`` defaults to ``$CRYPTORUN_CONFIG`` or the packaged ``config/scheduler.yaml``.
    ``$CRYPTORUN_ARTIFACTS_DIR`` and ``$CRYPTORUN_MARKET_SOURCE`` override the file (read from
    ``environ``, default the process environment).
    """
    env = os.environ if environ is None else environ
    cfg_path = resolve_config_path(path, env)
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("<file>", f"config file not found: {cfg_path}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("<yaml>", f"{cfg_path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if isinstance(raw, dict):
        raw = dict(raw)
        env_dir = env.get(ARTIFACTS_DIR_ENV)
        env_source = env.get(MARKET_SOURCE_ENV)
        if env_dir:
            raw["global"] = {**(raw.get("global") or {}), "artifacts_dir": env_dir}
        if env_source:
            raw["market"] = {**(raw.get("market") or {}), "source": env_source}
    config = parse_config(raw, source=str(cfg_path))
    config = _resolve_paths(config, cfg_path.parent)
    if check_artifacts_dir:
        ensure_writable_dir(config.global_.artifacts_dir, "global.artifacts_dir")
    return config


def _resolve_paths(config: AppConfig, base: Path) -> AppConfig:
    """Relative paths in the file are relative to the project root (the config folder's parent)."""
    root = base.parent if base.name == "config" else base

    def resolve(p: str) -> str:
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else (root / path).resolve())

    glob = config.global_.model_copy(update={"artifacts_dir": resolve(config.global_.artifacts_dir)})
    replay = config.market.replay.model_copy(update={"path": resolve(config.market.replay.path)})
    ccxt_cfg = config.market.ccxt.model_copy(update={"ohlcv_cache_dir": resolve(config.market.ccxt.ohlcv_cache_dir)})
    market = config.market.model_copy(update={"replay": replay, "ccxt": ccxt_cfg})
    return config.model_copy(update={"global_": glob, "market": market})


def ensure_writable_dir(path: str, key: str) -> Path:
    """Create ``path`` if needed and prove it is writable, or raise ConfigError naming ``key``."""
    target = Path(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(key, f"cannot create directory {target}: {exc.strerror}") from None
    if not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(key, f"directory {target} is not writable")
    return target
