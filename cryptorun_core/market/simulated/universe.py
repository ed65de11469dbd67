"""The simulated universe: which coins exist, on which venues, with which constant parameters.

A :class:`SymbolSpec` is a pure function of the seed and a coin's rank (the permanent symbols:
majors, stablecoins/fiat at fixed ranks, then synthetic names) or of a rotating new-listing slot
and its generation. :mod:`cryptorun_core.market.simulated` turns specs into bars and books.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np

from cryptorun_core.market.base import UTC
from cryptorun_core.market.simulated.factor import BLOCK_HOURS
from cryptorun_core.market.simulated.keys import _normal, _rng, _unit

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
# Fixed symbols quote their reference price at this hour, so 2026 prices look like 2026 prices
# whatever the random walk did since the epoch.
ANCHOR_HOUR = int((datetime(2026, 1, 1, tzinfo=UTC) - EPOCH) / timedelta(hours=1))

# Idiosyncratic hourly sigma at the factor's median vol: IDIO_BASE + IDIO_SLOPE per decade of ADV
# below $2B, times a coin constant in [1 - IDIO_SPREAD, 1 + IDIO_SPREAD]; it moves with the
# factor's vol to the power IDIO_GAMMA (in the package module: alts' own moves cluster with the market's).
BETA_RANGE = (0.9, 1.65)  # uniform, BTC is 1
IDIO_BASE = 0.0010
IDIO_SLOPE = 0.0003
IDIO_SPREAD = 0.35
EVENT_RATE = (0.08, 0.18)  # events per day, uniform per coin (BTC none, new listings 0.12)
NEW_LISTING_PERIOD_H = 40 * 24  # each rotating slot lists a new coin every 40 days

# Majors in rough ADV order with 2026-ish reference prices; synthetic names fill the rest.
MAJORS: tuple[tuple[str, float], ...] = (
    ("BTC", 90_000.0), ("ETH", 3_200.0), ("SOL", 180.0), ("XRP", 2.2), ("USDT", 1.0), ("DOGE", 0.32),
    ("ADA", 0.85), ("USDC", 1.0), ("AVAX", 36.0), ("LINK", 21.0), ("DOT", 6.5), ("LTC", 105.0),
    ("BCH", 450.0), ("TRX", 0.25), ("SUI", 3.6), ("TON", 5.2), ("NEAR", 5.1), ("APT", 9.5),
    ("UNI", 12.0), ("ATOM", 6.8), ("XLM", 0.42), ("ETC", 27.0), ("FIL", 5.0), ("ARB", 0.75),
    ("EUR", 1.08), ("OP", 1.9), ("INJ", 23.0), ("HBAR", 0.28), ("ICP", 10.0), ("AAVE", 310.0),
    ("RENDER", 7.0), ("MKR", 1_700.0), ("SEI", 0.45), ("TIA", 5.5), ("GRT", 0.22), ("ALGO", 0.38),
    ("IMX", 1.3), ("STX", 1.7), ("LDO", 1.6), ("FTT", 1.9), ("PEPE", 0.000018), ("SHIB", 0.000022),
    ("BONK", 0.00003), ("WIF", 2.1), ("JUP", 0.9), ("PYTH", 0.35), ("SAND", 0.55), ("MANA", 0.5),
    ("AXS", 6.5), ("APE", 1.2), ("CRV", 0.7), ("COMP", 70.0), ("SNX", 2.0), ("GALA", 0.035),
    ("FET", 1.3), ("XTZ", 1.1), ("EOS", 0.8), ("KSM", 30.0), ("ZEC", 55.0), ("DASH", 35.0),
    ("CHZ", 0.09), ("ENJ", 0.25), ("BAT", 0.22), ("YFI", 8_000.0), ("SUSHI", 1.2), ("1INCH", 0.4),
    ("ZRX", 0.5), ("ANKR", 0.035), ("STORJ", 0.5), ("RUNE", 5.0), ("KAVA", 0.5), ("FLOW", 0.75),
    ("MINA", 0.6), ("EGLD", 35.0), ("QNT", 110.0), ("BLUR", 0.3), ("ENS", 30.0), ("LRC", 0.2),
)
STABLE_BASES = frozenset({"USDT", "USDC"})
FIAT_BASES = frozenset({"EUR"})
INACTIVE_BASES = frozenset({"FTT"})  # delisted everywhere but still in the venues' market lists
_CONSONANTS = "BCDFGHKLMNPRSTVZ"
_VOWELS = "AEIOU"


# --------------------------------------------------------------------------------------------
# the universe: symbol specs


@dataclass(frozen=True)
class SymbolSpec:
    """Constant parameters of one simulated coin (a pure function of the seed and its rank or slot).

    ``venues`` lists every known venue that lists the coin; an instance serves the configured ones.
    """

    symbol: str
    base: str
    kind: str  # "crypto" | "stable" | "fiat"
    adv_usd: float  # nominal total daily USD volume over all venues
    beta: float
    idio: float  # hourly idiosyncratic sigma in the normal regime
    price: float  # price at anchor_hour
    anchor_hour: int
    origin_block: int  # the price path is cumulated from this block on
    listed_hour: int | None  # first hour with a bar (rotating new listings)
    delisted_hour: int | None
    active: bool
    event_rate: float  # surges per day
    venues: tuple[str, ...]


def _synthetic_base(index: int, taken: set[str]) -> str:
    """Pronounceable made-up tickers (ZEBO, KIRA, ...) deterministic in ``index``."""
    i = index
    name = (
        _CONSONANTS[i % 16] + _VOWELS[(i // 16) % 5] + _CONSONANTS[(i // 80 + 7 * i) % 16] + _VOWELS[(3 * i + i // 16) % 5]
    )
    while name in taken:
        name += "X"
    return name


def _venue_listing(seed: int, base: str, rank: int, venues: tuple[str, ...]) -> tuple[str, ...]:
    """Majors list everywhere; the rest on a venue-dependent random subset (at least one)."""
    if rank < 12:
        return venues
    p_list = {"kraken": 0.8, "okx": 0.72, "coinbase": 0.6}
    listed = tuple(v for v in venues if _unit(seed, base, v, "listed") < p_list.get(v, 0.7))
    return listed or (venues[int(_unit(seed, base, "fallback") * len(venues))],)


def _adv_for_rank(seed: int, base: str, rank: int) -> float:
    """Heavy-tailed ADV: ~$2B at rank 1, ~$10M at 20, ~$1M at 50, ~$20k at 150 (±noise)."""
    r = rank + 1
    log10_adv = 9.3 - 1.6 * np.log10(r) - 0.010 * (r - 1) + 0.15 * _normal(seed, base, "adv")
    return float(10.0**log10_adv)


def _crypto_spec(seed: int, base: str, price: float, adv: float, venues: tuple[str, ...], **over) -> SymbolSpec:
    big = np.log10(adv)
    beta = 1.0 if base == "BTC" else BETA_RANGE[0] + (BETA_RANGE[1] - BETA_RANGE[0]) * _unit(seed, base, "beta")
    coin = 1.0 - IDIO_SPREAD + 2.0 * IDIO_SPREAD * _unit(seed, base, "idio")
    idio = 0.0008 if base == "BTC" else (IDIO_BASE + IDIO_SLOPE * max(0.0, 9.3 - big)) * coin
    fields = dict(
        symbol=f"{base}/USD",
        base=base,
        kind="crypto",
        adv_usd=adv,
        beta=beta,
        idio=idio,
        price=price,
        anchor_hour=ANCHOR_HOUR,
        origin_block=ANCHOR_HOUR // BLOCK_HOURS,
        listed_hour=None,
        delisted_hour=None,
        active=base not in INACTIVE_BASES,
        event_rate=0.0 if base == "BTC" else EVENT_RATE[0] + (EVENT_RATE[1] - EVENT_RATE[0]) * _unit(seed, base, "events"),
        venues=venues,
    )
    fields.update(over)
    return SymbolSpec(**fields)


@lru_cache(maxsize=32)
def _fixed_specs(seed: int, n_fixed: int, venues: tuple[str, ...]) -> tuple[SymbolSpec, ...]:
    """The permanent symbols: majors (with stablecoins/fiat at fixed ranks) then synthetic ones."""
    taken = {b for b, _ in MAJORS}
    specs = []
    for rank in range(n_fixed):
        if rank < len(MAJORS):
            base, price = MAJORS[rank]
        else:
            base = _synthetic_base(rank, taken)
            taken.add(base)
            price = float(10.0 ** (-3.0 + 4.7 * _unit(seed, base, "price")))
        listing = _venue_listing(seed, base, rank, venues)
        adv = _adv_for_rank(seed, base, rank)
        if base in STABLE_BASES or base in FIAT_BASES:
            specs.append(
                SymbolSpec(
                    symbol=f"{base}/USD", base=base, kind="stable" if base in STABLE_BASES else "fiat", adv_usd=adv,
                    beta=0.0, idio=0.0003 if base in STABLE_BASES else 0.0007, price=price, anchor_hour=ANCHOR_HOUR,
                    origin_block=ANCHOR_HOUR // BLOCK_HOURS, listed_hour=None, delisted_hour=None, active=True,
                    event_rate=0.0, venues=listing,
                )
            )
        else:
            specs.append(_crypto_spec(seed, base, price, adv, listing))
    return tuple(specs)


@lru_cache(maxsize=4096)
def _slot_spec(seed: int, slot: int, generation: int, venues: tuple[str, ...], taken: frozenset[str]) -> SymbolSpec:
    """The coin a rotating new-listing slot lists in one generation (listed for one period)."""
    listed = _slot_phase(seed, slot) + generation * NEW_LISTING_PERIOD_H
    rng = _rng(seed, "slot", slot, generation)
    letters = rng.integers(0, 26, 4)
    base = "".join(chr(65 + int(c)) for c in letters)
    while base in taken:
        base += "N"
    adv = float(10.0 ** rng.uniform(5.3, 6.7))
    price = float(10.0 ** rng.uniform(-2.5, 1.0))
    listing = _venue_listing(seed, base, 99, venues)
    return _crypto_spec(
        seed, base, price, adv, listing,
        idio=0.006 + 0.004 * rng.random(),
        anchor_hour=listed,
        origin_block=listed // BLOCK_HOURS,
        listed_hour=listed,
        delisted_hour=listed + NEW_LISTING_PERIOD_H,
        event_rate=0.12,
    )


def _slot_phase(seed: int, slot: int) -> int:
    """First listing hour of a slot; slots are staggered evenly so ages are spread over the period."""
    base_phase = int(_unit(seed, "slot-phase") * NEW_LISTING_PERIOD_H)
    return base_phase + slot * NEW_LISTING_PERIOD_H // 4 - NEW_LISTING_PERIOD_H
