"""The embedded, offline default market: three venues, ~150 USD pairs, no network.

Everything served is a *pure function* of ``(seed, venue, symbol, time)``: asking for T twice,
or for an old T after a newer one, or from a fresh instance, gives bit-identical frames and
books. That is what lets backfills equal live runs (SPEC §1) when this source is used.

How purity and speed are obtained:

- Every random quantity comes from a counter-based generator (``np.random.Philox``) keyed by a
  blake2b hash of ``(seed, symbol, purpose, block)`` -- never Python's salted ``hash()``.
- Time is counted in hours since :data:`EPOCH`; hourly returns are generated in fixed blocks of
  :data:`BLOCK_HOURS`. A symbol's log price at hour h is the sum of all block sums before h's
  block plus the within-block cumulative sum, so the price at h never depends on the query
  window. Block sums are cached per symbol, whole blocks in bounded ``lru_cache``\\ s.
- All arithmetic happens on whole, fixed-size blocks; a query only slices and concatenates
  cached arrays, so no float can differ with the query's length or alignment.

The market model (calibrated to real 2021–22 history: docs/simulated_market.md, computed by
:mod:`cryptorun_core.market.simulated.calibration`; tiers and books against SPEC §2–§3):

- the coins, their venues and constant parameters (:mod:`.universe`: majors, stablecoins/fiat,
  synthetic names and rotating new listings);
- a market factor shared by all symbols (:mod:`.factor`): log-normal, clustering volatility
  (slow swings, spikes, daily noise), Student-t hourly shocks, a slowly trending drift; its vol
  sets a hidden calm / normal / volatile state that scales traded volume and book liquidity;
- symbol returns = beta * market factor + idiosyncratic noise that moves with the factor's vol,
  plus a transient daily price part and occasional *events* (pumps: volume and range surges with a
  directional move, given back afterwards) that make VADR/score gates pass sometimes;
- volume follows each coin's vol level and its big hours;
- heavy-tailed ADV (a few $B giants down to a tail under $100k), venue volumes are shares of
  the symbol's total, venue prices differ by a few bps of basis noise;
- venue listings differ, a few flaky (symbol, venue) feeds lag by hours at times, rare single
  missing bars on thin pairs, rotating new listings (always some with < 20 days of history),
  stablecoin/fiat bases and one inactive market;
- 100-level L2 books stamped exactly at T whose spread and ±2% depth follow venue liquidity.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.market.base import (
    BAR_COLUMNS,
    UTC,
    FetchResult,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
    Timeframe,
    closed_bars,
    empty_bars,
    to_utc,
)
from cryptorun_core.market.simulated.factor import (
    BLOCK_HOURS,
    HORIZON_BLOCKS,
    HOURS_PER_YEAR,
    SHOCK_DF,
    VOL_MEDIAN,
    market_block,
    market_factor,
    regime_states,
)
from cryptorun_core.market.simulated.keys import _frozen, _normal, _rng, _unit, student_t
from cryptorun_core.market.simulated.universe import (  # noqa: F401 (this module's names since the split)
    ANCHOR_HOUR,
    BETA_RANGE,
    EPOCH,
    EVENT_RATE,
    FIAT_BASES,
    IDIO_BASE,
    IDIO_SLOPE,
    IDIO_SPREAD,
    INACTIVE_BASES,
    MAJORS,
    NEW_LISTING_PERIOD_H,
    STABLE_BASES,
    SymbolSpec,
    _adv_for_rank,
    _crypto_spec,
    _fixed_specs,
    _slot_phase,
    _slot_spec,
    _synthetic_base,
    _venue_listing,
)
from cryptorun_core.market.windows import BarWindows, pack_series

EPOCH_NS = pd.Timestamp(EPOCH).value
HOUR_NS = 3_600 * 10**9
DEFAULT_VENUES = ("kraken", "okx", "coinbase")

CALM, NORMAL, VOLATILE = 0, 1, 2  # hidden regime states (see factor.py)
VOLUME_MULT = np.array([0.8, 1.0, 1.5])  # stablecoins and fiat trade more in sell-offs
VOLUME_VOL_ELASTICITY = 0.8  # crypto volume ∝ (coin vol / its typical vol)^this
VOLUME_MOVE_SLOPE = 0.6  # extra volume per sigma of the hour's move (see _activity)
BOOK_DEPTH_MULT = np.array([1.2, 1.0, 0.7])  # market makers pull liquidity in sell-offs
BOOK_SPREAD_MULT = np.array([0.85, 1.0, 1.4])
# The idiosyncratic hourly sigma of each coin (universe.py) moves with the factor's vol to the
# power IDIO_GAMMA (alts' own moves cluster with the market's).
IDIO_GAMMA = 1.5
REFERENCE_SIGMA = VOL_MEDIAN / np.sqrt(HOURS_PER_YEAR)
# A transient part of each coin's log price: a value per day (linear in between) of sd
# TRANSIENT_MULT · its daily idio sigma. It moves daily returns apart but does not accumulate,
# so over weeks coins move together more than over a day (20-day breadth swings as a whole).
TRANSIENT_MULT = 1.8
TRANSIENT_CHUNK_DAYS = 64
# Events: a directional move of EVENT_MOVE (uniform range), up with probability EVENT_UP_P (pumps),
# with volume and range surges; each is given back over EVENT_FADE times its length, so events
# leave no drift (they must not lift every chart) while the pump itself is there to be scanned.
# A quick give-back (pump and dump): a slow one left a coin drifting down for days after every
# pump, which skewed the breadth-thrust vote towards volatile (docs/simulated_market.md).
EVENT_MOVE = (0.06, 0.20)
EVENT_UP_P = 0.75
EVENT_FADE = 1

# Books (SPEC §3): ±2% depth ≈ DEPTH_COEF · venue_ADV^DEPTH_EXP (≈ $150k, the tier-1 minimum, at
# $6M venue ADV, so the lower half of the top 30 often fails depth), spread ≈
# SPREAD_COEF · (venue_ADV / $1M)^-½ bps (≈ 10 bps there, ≈ 80 bps at $100k venue ADV).
DEPTH_COEF = 2.7
DEPTH_EXP = 0.7
SPREAD_COEF = 25.0
MIN_SPREAD_BPS = 0.4
BOOK_STEP = 6e-4  # relative distance between levels: 100 levels reach ~6% from mid

FLAKY_PAIR_P = 0.05  # share of (symbol, venue) feeds that lag at times
OUTAGE_DAILY_P = 0.35


# --------------------------------------------------------------------------------------------
# symbol paths


class _Returns(NamedTuple):
    ret: np.ndarray  # hourly log return of the symbol
    cum: np.ndarray  # cumulative sum within the block
    sigma: np.ndarray  # effective hourly sigma (for bar ranges)
    volume_mult: np.ndarray  # event volume multiplier
    state: np.ndarray


class _Event(NamedTuple):
    start: int
    hours: int
    volume_mult: float
    sigma_mult: float
    drift: float


@lru_cache(maxsize=8192)
def _events(seed: int, symbol: str, rate: float, k: int) -> tuple[_Event, ...]:
    """Surges that *start* in block k: a directional move with heavy volume and wide ranges."""
    if rate <= 0:
        return ()
    rng = _rng(seed, symbol, "events", k)
    n = int(rng.poisson(rate * BLOCK_HOURS / 24.0))
    u = rng.random((6, n))
    starts = k * BLOCK_HOURS + (u[0] * BLOCK_HOURS).astype(np.int64)
    hours = 10 + (u[1] * 27).astype(np.int64)
    vol = 2.5 * (7.0 / 2.5) ** u[2]
    sig = 1.5 + 1.5 * u[3]
    move = (EVENT_MOVE[0] + (EVENT_MOVE[1] - EVENT_MOVE[0]) * u[4]) * np.where(u[5] < EVENT_UP_P, 1.0, -1.0)
    return tuple(_Event(int(s), int(h), float(v), float(g), float(m / h)) for s, h, v, g, m in zip(starts, hours, vol, sig, move))


@lru_cache(maxsize=4096)
def _transient_chunk(seed: int, symbol: str, chunk: int) -> np.ndarray:
    out = _rng(seed, symbol, "transient", chunk).standard_normal(TRANSIENT_CHUNK_DAYS)
    _frozen(out)
    return out


def _transient_steps(seed: int, spec: SymbolSpec, k: int, scale: np.ndarray) -> np.ndarray:
    """Hourly changes of the coin's transient price part over block k: n(h) − n(h − 1), where
    n is linear between per-day values keyed by (seed, symbol, day)."""
    h = np.arange(k * BLOCK_HOURS - 1, (k + 1) * BLOCK_HOURS)
    d0, d1 = int(max(h[0], 0) // 24), int(h[-1] // 24) + 1
    chunks = range(d0 // TRANSIENT_CHUNK_DAYS, d1 // TRANSIENT_CHUNK_DAYS + 1)
    w = np.concatenate([_transient_chunk(seed, spec.symbol, c) for c in chunks])
    first = chunks[0] * TRANSIENT_CHUNK_DAYS
    day, frac = np.maximum(h, 0) // 24 - first, (np.maximum(h, 0) % 24) / 24.0
    n = w[day] * (1.0 - frac) + w[day + 1] * frac
    return TRANSIENT_MULT * spec.idio * np.sqrt(24.0) * np.diff(n) * scale


def _symbol_returns_raw(seed: int, spec: SymbolSpec, k: int) -> _Returns:
    market = market_block(seed, k)
    z = student_t(_rng(seed, spec.symbol, "ret", k), SHOCK_DF, BLOCK_HOURS)
    idio = spec.idio * (market.sigma / REFERENCE_SIGMA) ** IDIO_GAMMA
    sigma = np.sqrt((spec.beta * market.sigma) ** 2 + idio**2)
    ret = spec.beta * market.ret + idio * z + _transient_steps(seed, spec, k, idio / spec.idio)
    volume_mult = np.ones(BLOCK_HOURS)
    block_start = k * BLOCK_HOURS
    # events of the previous block may run into this one
    for ev in _events(seed, spec.symbol, spec.event_rate, k - 1) + _events(seed, spec.symbol, spec.event_rate, k):
        lo = max(ev.start - block_start, 0)
        hi = min(ev.start + ev.hours - block_start, BLOCK_HOURS)
        if lo < hi:
            sl = slice(lo, hi)
            ret[sl] += ev.drift + (ev.sigma_mult - 1.0) * idio[sl] * z[sl]
            sigma[sl] *= ev.sigma_mult
            volume_mult[sl] *= ev.volume_mult
        # then the move fades out: it is given back evenly over EVENT_FADE times its length
        fade_end = ev.start + ev.hours * (1 + EVENT_FADE)
        lo, hi = max(ev.start + ev.hours - block_start, 0), min(fade_end - block_start, BLOCK_HOURS)
        if lo < hi:
            ret[lo:hi] -= ev.drift / EVENT_FADE
    cum = np.cumsum(ret)
    return _Returns(ret, cum, sigma, volume_mult, market.state)


@lru_cache(maxsize=2048)
def _symbol_returns(seed: int, spec: SymbolSpec, k: int) -> _Returns:
    out = _symbol_returns_raw(seed, spec, k)
    _frozen(*out)
    return out


_LEVELS: dict[tuple[int, SymbolSpec, int], list[float]] = {}
_LEVELS_LOCK = threading.Lock()


def _level(seed: int, spec: SymbolSpec, k: int) -> float:
    """Cumulative log return from the start of the symbol's origin block to the start of block k.

    Cumulated outward from the origin (forward for later blocks, backward for earlier ones), one
    block at a time in a fixed order, so the float is the same whichever query asked first
    (bit-identical prices for any window) and a 2026 query only sums the blocks since the anchor.
    """
    j = k - spec.origin_block
    if j == 0:
        return 0.0
    direction = 1 if j > 0 else -1
    with _LEVELS_LOCK:
        levels = _LEVELS.setdefault((seed, spec, direction), [0.0])
        while len(levels) <= abs(j):
            n = len(levels)
            if direction > 0:  # level(origin + n) = level(origin + n - 1) + sum(block origin + n - 1)
                levels.append(levels[-1] + float(_symbol_returns_raw(seed, spec, spec.origin_block + n - 1).cum[-1]))
            else:  # level(origin - n) = level(origin - n + 1) - sum(block origin - n)
                levels.append(levels[-1] - float(_symbol_returns_raw(seed, spec, spec.origin_block - n).cum[-1]))
        return levels[abs(j)]


def _log_level_at(seed: int, spec: SymbolSpec, hour: int) -> float:
    k = hour // BLOCK_HOURS
    return _level(seed, spec, k) + float(_symbol_returns(seed, spec, k).cum[hour - k * BLOCK_HOURS])


class _SymbolBlock(NamedTuple):
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    usd_volume: np.ndarray
    state: np.ndarray


def _intraday_seasonality() -> np.ndarray:
    hour_of_day = np.arange(24)
    return 1.0 + 0.3 * np.cos(2 * np.pi * (hour_of_day - 15) / 24.0)  # US/EU overlap is busiest


_SEASONALITY = _intraday_seasonality()


def _activity(spec: SymbolSpec, r: _Returns) -> np.ndarray:
    """Traded volume relative to ADV: crypto trades more when it moves — with the coin's vol level
    (elasticity VOLUME_VOL_ELASTICITY) and in the hours of its big moves (VOLUME_MOVE_SLOPE per
    sigma of the hour's move); 1 on average for an ordinary hour."""
    if spec.kind != "crypto":
        return VOLUME_MULT[r.state]
    typical = np.hypot(spec.beta * REFERENCE_SIGMA, spec.idio)
    move = np.abs(r.ret) / r.sigma
    return (r.sigma / typical) ** VOLUME_VOL_ELASTICITY * (1.0 - VOLUME_MOVE_SLOPE * 0.8 + VOLUME_MOVE_SLOPE * move)


@lru_cache(maxsize=2048)
def _symbol_block(seed: int, spec: SymbolSpec, k: int) -> _SymbolBlock:
    """OHLC and USD volume of the symbol's reference price for every hour of block k."""
    r = _symbol_returns(seed, spec, k)
    log_p0 = np.log(spec.price)
    if spec.kind == "stable":
        # a peg: small iid wobble around the reference price, no random walk
        noise = spec.idio * _rng(seed, spec.symbol, "peg", k).standard_normal(BLOCK_HOURS + 1)
        log_prev, log_close = log_p0 + noise[:-1], log_p0 + noise[1:]
        sigma = np.full(BLOCK_HOURS, spec.idio)
    else:
        x_anchor = _log_level_at(seed, spec, spec.anchor_hour)
        level = _level(seed, spec, k)
        log_close = log_p0 + (level + r.cum) - x_anchor
        log_prev = np.concatenate([[log_p0 + level - x_anchor], log_close[:-1]])
        sigma = r.sigma
    close = np.exp(log_close)
    open_ = np.exp(log_prev)
    shape = _rng(seed, spec.symbol, "shape", k).standard_normal((3, BLOCK_HOURS))
    high = np.maximum(open_, close) * np.exp(0.6 * sigma * np.abs(shape[0]))
    low = np.minimum(open_, close) * np.exp(-0.6 * sigma * np.abs(shape[1]))
    hours = k * BLOCK_HOURS + np.arange(BLOCK_HOURS)
    usd = (
        spec.adv_usd / 24.0
        * _activity(spec, r)
        * _SEASONALITY[hours % 24]
        * np.exp(0.4 * shape[2] - 0.08)
        * r.volume_mult
    )
    out = _SymbolBlock(open_, high, low, close, usd, r.state)
    _frozen(*out)
    return out


# --------------------------------------------------------------------------------------------
# venues


class _VenueParams(NamedTuple):
    share: float  # share of the symbol's volume traded on this venue
    basis: float  # constant log price offset
    spread_mult: float
    missing_p: float  # probability that an hour has no bar (no trade)
    flaky: bool  # the feed lags by hours at times


_VENUE_WEIGHT = {"kraken": 0.9, "okx": 1.2, "coinbase": 1.0}


@lru_cache(maxsize=8192)
def _venue_params(seed: int, spec: SymbolSpec, venue: str) -> _VenueParams:
    weights = {v: _VENUE_WEIGHT.get(v, 1.0) * float(np.exp(0.5 * _normal(seed, spec.base, v, "share"))) for v in spec.venues}
    share = weights[venue] / sum(weights.values())
    adv_v = spec.adv_usd * share
    missing_p = 0.0 if adv_v > 2e6 else (0.0004 if adv_v > 2e5 else 0.002)
    return _VenueParams(
        share=share,
        basis=3e-4 * _normal(seed, spec.base, venue, "basis"),
        spread_mult=float(np.exp(0.45 * _normal(seed, spec.base, venue, "spread"))),
        missing_p=missing_p,
        flaky=spec.kind == "crypto" and _unit(seed, spec.base, venue, "flaky") < FLAKY_PAIR_P,
    )


class _VenueBlock(NamedTuple):
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # base units
    present: np.ndarray  # False where the venue printed no bar that hour


@lru_cache(maxsize=4096)
def _venue_block(seed: int, spec: SymbolSpec, venue: str, k: int) -> _VenueBlock:
    sb = _symbol_block(seed, spec, k)
    vp = _venue_params(seed, spec, venue)
    rng = _rng(seed, spec.symbol, venue, "venue", k)
    z = rng.standard_normal((2, BLOCK_HOURS))
    u = rng.random(BLOCK_HOURS)
    basis = np.exp(vp.basis + 2e-4 * z[0])  # one multiplier per bar keeps low <= open, close <= high
    close = sb.close * basis
    usd = sb.usd_volume * vp.share * np.exp(0.25 * z[1] - 0.03125)
    out = _VenueBlock(sb.open * basis, sb.high * basis, sb.low * basis, close, usd / close, u >= vp.missing_p)
    _frozen(*out)
    return out


def _feed_cap(seed: int, spec: SymbolSpec, venue: str, hour: int) -> int | None:
    """Newest bar hour a flaky feed serves when T's hour falls into one of its outages (else None)."""
    if not _venue_params(seed, spec, venue).flaky:
        return None
    day = hour // 24
    for d in (day - 1, day):
        outage = _outage(seed, spec.symbol, venue, d)
        if outage is not None and outage[0] <= hour < outage[1]:
            return outage[0] - 1
    return None


@lru_cache(maxsize=16384)
def _outage(seed: int, symbol: str, venue: str, day: int) -> tuple[int, int] | None:
    """``(first hour, end hour)`` of a flaky feed's outage starting on ``day`` (None: no outage that day)."""
    rng = _rng(seed, symbol, venue, "outage", day)
    u, start_off, length = rng.random(), int(rng.integers(0, 24)), int(rng.integers(3, 13))
    if u < OUTAGE_DAILY_P:
        start = day * 24 + start_off
        return start, start + length
    return None


# --------------------------------------------------------------------------------------------
# helpers on hour indices


def _hour_of(as_of: datetime) -> tuple[int, int]:
    """(T in ns since the Unix epoch, number of whole hours from EPOCH to T)."""
    t_ns = pd.Timestamp(to_utc(as_of)).value
    return t_ns, (t_ns - EPOCH_NS) // HOUR_NS


def _timestamps(hours: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex((EPOCH_NS + hours * HOUR_NS).astype("datetime64[ns]")).tz_localize(UTC)


def _native_symbol(venue: str, base: str) -> str:
    if venue == "kraken":
        return f"{'XBT' if base == 'BTC' else base}/USD"
    return f"{base}-USD"


class SimulatedMarket(MarketSource):
    """Deterministic offline market (see the module docstring; SPEC §1-§3, §6)."""

    name = "simulated"

    def __init__(self, seed: int = 7, n_symbols: int = 150, venues: tuple[str, ...] = DEFAULT_VENUES):
        if n_symbols < 5:
            raise ValueError(f"n_symbols must be at least 5 (got {n_symbols})")
        self.seed = int(seed)
        self.n_symbols = int(n_symbols)
        self._venues = tuple(venues)
        self.n_slots = min(4, max(1, self.n_symbols // 30))
        # listings and volume shares are drawn over every known venue, so a venue's data is the
        # same whichever subset of venues an instance is configured with
        self._all_venues = DEFAULT_VENUES + tuple(v for v in self._venues if v not in DEFAULT_VENUES)
        self._fixed = _fixed_specs(self.seed, self.n_symbols - self.n_slots, self._all_venues)
        self._by_symbol = {s.symbol: s for s in self._fixed}
        self._taken = frozenset(s.base for s in self._fixed)
        self._infos: dict[tuple[str, SymbolSpec], MarketInfo] = {}

    # -- MarketSource -------------------------------------------------------------------------

    @property
    def venues(self) -> tuple[str, ...]:
        return self._venues

    def list_markets(self, venue: str, as_of: datetime) -> list[MarketInfo]:
        if venue not in self._venues:
            raise ValueError(f"simulated market has no venue '{venue}' (venues: {', '.join(self._venues)})")
        _, hour = _hour_of(as_of)
        return [self._market_info(venue, spec) for spec in self.specs_at(hour) if venue in spec.venues]

    def _market_info(self, venue: str, spec: SymbolSpec) -> MarketInfo:
        # a backfill lists every venue at each of thousands of T: the same immutable records
        info = self._infos.get((venue, spec))
        if info is None:
            info = self._infos[(venue, spec)] = self._new_market_info(venue, spec)
        return info

    def ohlcv_request(self, venue: str, symbol: str, as_of: datetime, timeframe: Timeframe, limit: int) -> FetchResult[pd.DataFrame]:
        _, hour = _hour_of(as_of)
        spec = self._spec_for(venue, symbol, hour)
        if spec is None:
            return self._missing(venue, symbol, as_of, "bad_symbol")
        frame = self._bars(spec, venue, as_of, hour, timeframe, limit)
        if frame.empty:
            detail = f"no closed bars of {symbol} on {venue} at {as_of.isoformat()}"
            return FetchResult(venue, symbol, None, stamped_at=as_of, error="no_data", detail=detail)
        return FetchResult(venue, symbol, frame, stamped_at=as_of)

    def ticker_request(self, venue: str, symbol: str, as_of: datetime) -> FetchResult[Ticker]:
        t_ns, hour = _hour_of(as_of)
        spec = self._spec_for(venue, symbol, hour)
        if spec is None or not self._has_price(spec, hour):
            return self._missing(venue, symbol, as_of, "bad_symbol" if spec is None else "no_data")
        book = self._book(spec, venue, t_ns, hour, as_of, 100)
        bid, ask = float(book.bids[0, 0]), float(book.asks[0, 0])
        last = float(np.clip(self._last_close(spec, venue, hour), bid, ask))
        day = self._hourly(spec, venue, hour - 24, hour - 1)
        base_vol = float(day.volume.sum())
        quote_vol = float((day.volume * day.close).sum())
        return FetchResult(venue, symbol, Ticker(bid, ask, last, base_vol, quote_vol), stamped_at=as_of)

    def book_request(self, venue: str, symbol: str, as_of: datetime, depth: int) -> FetchResult[OrderBook]:
        t_ns, hour = _hour_of(as_of)
        spec = self._spec_for(venue, symbol, hour)
        if spec is None or not self._has_price(spec, hour):
            return self._missing(venue, symbol, as_of, "bad_symbol" if spec is None else "no_book")
        return FetchResult(venue, symbol, self._book(spec, venue, t_ns, hour, as_of, depth), stamped_at=as_of)

    # -- universe -----------------------------------------------------------------------------

    def specs_at(self, hour: int) -> list[SymbolSpec]:
        """Every symbol that exists at hour index ``hour`` (fixed ones, then current new listings)."""
        return list(self._fixed) + [self._slot_at(slot, hour) for slot in range(self.n_slots)]

    def spec(self, symbol: str, as_of: datetime) -> SymbolSpec | None:
        """The parameters of ``symbol`` at ``as_of`` (None when it is not listed anywhere then)."""
        _, hour = _hour_of(as_of)
        return self._lookup(symbol, hour)

    def _slot_at(self, slot: int, hour: int) -> SymbolSpec:
        generation = (hour - _slot_phase(self.seed, slot)) // NEW_LISTING_PERIOD_H
        return _slot_spec(self.seed, slot, int(generation), self._all_venues, self._taken)

    def _lookup(self, symbol: str, hour: int) -> SymbolSpec | None:
        spec = self._by_symbol.get(symbol)
        if spec is not None:
            return spec
        for slot in range(self.n_slots):
            cand = self._slot_at(slot, hour)
            if cand.symbol == symbol:
                return cand
        return None

    def _rotating_at(self, hours: np.ndarray) -> dict[str, list[SymbolSpec | None]]:
        """:meth:`_lookup` at each of ``hours`` of every symbol a rotating slot lists at one of them
        (None where none does), each slot's generation over the hours computed once."""
        found: dict[str, list[SymbolSpec | None]] = {}
        for slot in range(self.n_slots):
            generations = (hours - _slot_phase(self.seed, slot)) // NEW_LISTING_PERIOD_H
            for generation in np.unique(generations).tolist():
                cand = _slot_spec(self.seed, slot, int(generation), self._all_venues, self._taken)
                at = found.setdefault(cand.symbol, [None] * len(hours))
                for i in np.flatnonzero(generations == generation).tolist():
                    if at[i] is None:  # the first slot listing the symbol, as _lookup
                        at[i] = cand
        return found

    def _spec_for(self, venue: str, symbol: str, hour: int) -> SymbolSpec | None:
        spec = self._lookup(symbol, hour)
        if spec is None or venue not in self._venues or venue not in spec.venues:
            return None
        return spec

    def _new_market_info(self, venue: str, spec: SymbolSpec) -> MarketInfo:
        listed = EPOCH if spec.listed_hour is None else EPOCH + timedelta(hours=spec.listed_hour)
        return MarketInfo(
            venue=venue, symbol=spec.symbol, native_symbol=_native_symbol(venue, spec.base), base=spec.base,
            quote="USD", active=spec.active, listed_at=listed,
        )

    @staticmethod
    def _missing(venue: str, symbol: str, as_of: datetime, code: str) -> FetchResult:
        detail = f"{symbol} is not available on {venue} at {as_of.isoformat()} ({code})"
        return FetchResult(venue, symbol, None, stamped_at=as_of, error=code, detail=detail)

    # -- bars ---------------------------------------------------------------------------------

    def _hourly_arrays(self, spec: SymbolSpec, venue: str, first: int, last: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Hour indices and OHLCV arrays of the bars opening in hours [first, last] that the venue printed."""
        first = max(first, 0, spec.listed_hour or 0)
        if last < first:
            return np.zeros(0, dtype=np.int64), {c: np.zeros(0) for c in BAR_COLUMNS[1:]}
        k0, k1 = first // BLOCK_HOURS, last // BLOCK_HOURS
        blocks = [_venue_block(self.seed, spec, venue, k) for k in range(k0, k1 + 1)]
        lo = first - k0 * BLOCK_HOURS
        sl = slice(lo, lo + last - first + 1)
        if len(blocks) == 1:
            keep = blocks[0].present[sl]
            cols = {c: getattr(blocks[0], c)[sl][keep] for c in BAR_COLUMNS[1:]}
        else:
            keep = np.concatenate([b.present for b in blocks])[sl]
            cols = {c: np.concatenate([getattr(b, c) for b in blocks])[sl][keep] for c in BAR_COLUMNS[1:]}
        hours = np.arange(first, last + 1, dtype=np.int64)[keep]
        return hours, cols

    def _hourly(self, spec: SymbolSpec, venue: str, first: int, last: int) -> pd.DataFrame:
        """Hourly bars opening in hours [first, last] that the venue printed (no staleness applied)."""
        hours, cols = self._hourly_arrays(spec, venue, first, last)
        if not len(hours):
            return empty_bars()
        return pd.DataFrame({"timestamp": _timestamps(hours), **cols})

    def _last_hour(self, spec: SymbolSpec, venue: str, hour: int) -> int:
        """The newest bar hour served at T's hour (closed, feed outages, delisting)."""
        last = hour - 1  # the newest bar closed at or before T opens an hour before T's hour
        cap = _feed_cap(self.seed, spec, venue, hour)
        if cap is not None:
            last = min(last, cap)
        if spec.delisted_hour is not None:
            last = min(last, spec.delisted_hour - 1)
        return last

    def _bars(self, spec: SymbolSpec, venue: str, as_of: datetime, hour: int, timeframe: Timeframe, limit: int) -> pd.DataFrame:
        last = self._last_hour(spec, venue, hour)
        if timeframe == "1h":
            # bars of [last - limit - 2, last] (all closed at T: last < T's hour), the newest `limit`
            hours, cols = self._hourly_arrays(spec, venue, last - limit - 2, last)
            if limit is not None and len(hours) > limit:
                hours, cols = hours[-limit:], {c: v[-limit:] for c, v in cols.items()}
            if not len(hours):
                return empty_bars()
            return pd.DataFrame({"timestamp": _timestamps(hours), **cols})
        day_last = last // 24
        hourly = self._hourly(spec, venue, (day_last - limit) * 24, last)
        return closed_bars(_daily(hourly), as_of, "1d", limit)

    def bar_windows(
        self, requests: Sequence[tuple[str, str]], as_ofs: Sequence[datetime], timeframe: Timeframe = "1h", limit: int = 720
    ) -> BarWindows:
        """Every (venue, symbol)'s hourly bars over the range of ``as_ofs`` generated once, and for each T
        the rows :meth:`fetch_ohlcv` at T serves (the same floats: both slice the same cached blocks).

        Raises NotImplementedError for daily bars or a symbol that names different coins over the
        range (a rotating listing slot reusing a ticker): read those once per T instead.
        """
        if timeframe != "1h" or limit is None or limit <= 0:
            raise NotImplementedError("bar_windows serves hourly bars with a positive limit")
        t_ns = np.array([pd.Timestamp(to_utc(a)).value for a in as_ofs], dtype=np.int64)
        hours = (t_ns - EPOCH_NS) // HOUR_NS
        pairs = list(dict.fromkeys((str(v), str(s)) for v, s in requests))
        specs: dict[tuple[str, str], SymbolSpec | None] = {}
        served: dict[tuple[str, str], np.ndarray] = {}  # T at which the pair exists (else bad_symbol: no window)
        rotating = self._rotating_at(hours) if any(s not in self._by_symbol for _, s in pairs) else {}
        nowhere = [None] * len(hours)
        for venue, symbol in pairs:
            if symbol in self._by_symbol:
                at = [self._spec_for(venue, symbol, int(hours[0]))] * len(hours)
            else:  # _spec_for at each hour
                offered = venue in self._venues
                at = [c if c is not None and offered and venue in c.venues else None for c in rotating.get(symbol, nowhere)]
            found = set(at) - {None}
            if len(found) > 1:
                raise NotImplementedError(f"{symbol} names different coins between {as_ofs[0]} and {as_ofs[-1]}")
            specs[(venue, symbol)] = next(iter(found), None)
            served[(venue, symbol)] = np.array([a is not None for a in at], dtype=bool)
        series: dict[tuple[str, str], tuple] = {}
        windows: dict[tuple[str, str], tuple] = {}
        empty = (np.zeros(0, np.int64),) + tuple(np.zeros(0) for _ in BAR_COLUMNS[1:])
        # symbol-major: the three venues of a coin share its cached symbol blocks
        for venue, symbol in sorted(pairs, key=lambda p: (p[1], p[0])):
            spec = specs[(venue, symbol)]
            if spec is None:
                series[(venue, symbol)] = empty
                windows[(venue, symbol)] = (np.zeros(len(hours), np.int64), np.zeros(len(hours), np.int64))
                continue
            last = hours - 1
            if _venue_params(self.seed, spec, venue).flaky:
                caps = [_feed_cap(self.seed, spec, venue, int(h)) for h in hours]
                last = np.array([lst if c is None else min(lst, c) for lst, c in zip(last.tolist(), caps)], dtype=np.int64)
            if spec.delisted_hour is not None:
                last = np.minimum(last, spec.delisted_hour - 1)
            first = np.maximum(last - limit - 2, max(0, spec.listed_hour or 0))
            h, cols = self._hourly_arrays(spec, venue, int(first.min()), int(last.max()))
            stop = np.searchsorted(h, last, side="right")
            lo = np.searchsorted(h, first, side="left")
            start = np.maximum(lo, stop - limit)
            start = np.where((last < first) | ~served[(venue, symbol)], stop, start)
            series[(venue, symbol)] = (EPOCH_NS + h * HOUR_NS, *(cols[c] for c in BAR_COLUMNS[1:]))
            windows[(venue, symbol)] = (start, stop)

        def no_data(venue: str, symbol: str, as_of) -> str:
            return f"no closed bars of {symbol} on {venue} at {to_utc(as_of).isoformat()}"

        return pack_series(pairs, t_ns, [series[p] for p in pairs], [windows[p] for p in pairs], no_data)

    def _has_price(self, spec: SymbolSpec, hour: int) -> bool:
        return hour >= 1 and hour - 1 >= (spec.listed_hour or 0) and (spec.delisted_hour is None or hour <= spec.delisted_hour)

    def _last_close(self, spec: SymbolSpec, venue: str, hour: int) -> float:
        h = hour - 1
        k = h // BLOCK_HOURS
        return float(_venue_block(self.seed, spec, venue, k).close[h - k * BLOCK_HOURS])

    # -- books --------------------------------------------------------------------------------

    def _book(self, spec: SymbolSpec, venue: str, t_ns: int, hour: int, as_of: datetime, depth: int) -> OrderBook:
        """A 100-level book stamped at T; spread and ±2% depth follow venue liquidity (SPEC §3)."""
        vp = _venue_params(self.seed, spec, venue)
        state = int(regime_states(self.seed, np.array([hour - 1]))[0])
        rng = _rng(self.seed, spec.symbol, venue, "book", t_ns)
        z = rng.standard_normal(4)
        n = 100
        gaps = np.exp(0.3 * rng.standard_normal((2, n)))
        sizes = np.exp(0.6 * rng.standard_normal((2, n)) - 0.18)
        adv_v = spec.adv_usd * vp.share
        target = DEPTH_COEF * adv_v**DEPTH_EXP * np.exp(0.35 * z[0]) * BOOK_DEPTH_MULT[state]
        spread_bps = SPREAD_COEF * (adv_v / 1e6) ** -0.5 * vp.spread_mult * np.exp(0.25 * z[1]) * BOOK_SPREAD_MULT[state]
        spread_bps = max(MIN_SPREAD_BPS, spread_bps)
        if spec.kind != "crypto":
            spread_bps = max(MIN_SPREAD_BPS, spread_bps * 0.2)
        mid = self._last_close(spec, venue, hour) * np.exp(2e-4 * z[2])
        bid_share = float(np.clip(0.5 + 0.12 * z[3], 0.2, 0.8))
        # relative distance of each level from mid: half spread, then increasing gaps
        offsets = spread_bps / 2e4 + BOOK_STEP * (np.cumsum(gaps, axis=1) - gaps[:, :1])
        weights = (1.0 + np.arange(n) / 15.0) * sizes  # books thicken away from the touch
        in_band = offsets <= 0.02
        band_sum = np.where(in_band, weights, 0.0).sum(axis=1)
        band_sum = np.where(band_sum > 0, band_sum, weights[:, 0])
        usd = weights * (target * np.array([bid_share, 1.0 - bid_share]) / band_sum)[:, None]
        bid_px = mid * (1.0 - offsets[0])
        ask_px = mid * (1.0 + offsets[1])
        m = max(0, min(depth, n))
        bids = np.column_stack([bid_px, usd[0] / bid_px])[:m]
        asks = np.column_stack([ask_px, usd[1] / ask_px])[:m]
        return OrderBook(bids=bids, asks=asks, timestamp=as_of)


def _daily(hourly: pd.DataFrame) -> pd.DataFrame:
    """UTC-day bars from hourly bars (open of the first, close of the last bar of the day)."""
    if hourly.empty:
        return empty_bars()
    day = hourly["timestamp"].dt.floor("1D")
    out = hourly.groupby(day, sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"), volume=("volume", "sum")
    )
    out.index.name = "timestamp"
    return out.reset_index()
