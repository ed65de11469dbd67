"""The ranked trading universe at T (SPEC §2).

One row per canonical ``BASE/USD`` symbol seen on the configured venues, with its ADV, liquidity
tier, exclusion reason and hot/warm segment. Everything is computed from the 24h periods of
:func:`cryptorun_core.periods.period_table` (SPEC §1), so a daily-only snapshot (timeframe
``'1d'``, T at 00:00 UTC) works unchanged: each daily bar is one period.

Interpretive choices (documented here once, referenced from the docstrings):

* **Venues.** Only bars and market listings of ``config.market.venues`` count. A (venue, symbol)
  pair is *listed* when the snapshot's ``markets`` table has it or the venue supplied bars for
  it. A pair present in ``markets`` counts as active when any of its rows is active; a pair seen
  only in ``bars`` (no listing row, e.g. a hand-built snapshot) is treated as active.
* **Inactive.** A (venue, symbol) market is inactive when the venue lists it inactive or it has no
  closed bar in period 0 (SPEC §2: a feed, or a replayed file, that ended). A symbol is
  ``inactive`` when it is inactive on every configured venue that lists it. Otherwise its inactive venue markets are ignored (neither in ``venues`` nor in
  the ADV). For an inactive symbol ``venues``/``adv_usd``/``n_periods`` describe all its
  listings, for diagnostics only.
* **Complete periods across venues.** Completeness is decided per venue with
  :func:`cryptorun_core.periods.complete_periods` (24 hourly bars / 1 daily bar). A period counts
  as complete *for the symbol* when it is complete on at least one of its venues. A venue whose
  period is incomplete contributes **nothing** to that period's Σ close·volume (its partial
  volume is dropped, exactly as if the venue had no data for that period), so every number in
  the sum is a whole 24h of one venue; the period itself still counts through the other venues.
  ``n_periods`` is the number of such symbol-complete periods.
* **ADV** = mean over the ``config.universe.adv_periods`` (7) newest symbol-complete periods of
  the per-period Σ close·volume summed over the venues (newest = smallest period index; the
  periods need not be consecutive). Fewer complete periods than that → mean over those there
  are (such a symbol is excluded anyway unless ``min_periods`` < ``adv_periods``). No complete
  period → ``adv_usd`` is NaN.
* **Tier** is set only for eligible symbols (``config.tier_for_adv``); excluded rows have None.
* Symbols whose canonical form is not ``BASE/USD`` are not part of the universe and are ignored.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cryptorun_core.config import AppConfig
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.periods import PairPeriods, bars_per_period, kahan_rows
from cryptorun_core.quality import BarRules
from cryptorun_core.schemas import UNIVERSE_RANKING_COLUMNS, UniverseRankingSchema, validate_frame

RANKING_COLUMNS = UNIVERSE_RANKING_COLUMNS
_CANONICAL_RE = re.compile(r"^[^/\s]+/USD$")
_CANONICAL: dict[str, bool] = {}  # symbol → matches _CANONICAL_RE (symbols are few and recur every cycle)


def rank_universe(
    snapshot: MarketSnapshot, config: AppConfig, hot_size: int = 30, warm_size: int = 100, *, validate: bool = True
) -> pd.DataFrame:
    """Rank every canonical symbol of ``snapshot`` at ``snapshot.as_of`` (SPEC §2).

    Exclusions, first match wins: ``stablecoin_or_fiat`` (base in ``config.market.excluded_bases``),
    ``inactive`` (inactive on every venue), ``insufficient_periods`` (fewer than
    ``config.universe.min_periods`` complete 24h periods), ``adv_not_finite`` (the volumes overflow:
    only possible with magnitude rules looser than the defaults; the ADV is left empty), ``adv_below_min`` (ADV below
    ``config.universe.min_adv_usd``). Eligible symbols are ranked by ADV descending, ties by
    symbol; the first ``hot_size`` are segment ``'hot'``, the next ``warm_size`` ``'warm'``, the
    rest (and every excluded symbol) ``'none'``. See the module docstring for how venues,
    inactive listings and periods incomplete on one venue are treated.

    Returns exactly the columns ``rank`` (Int64, NA unless eligible), ``symbol``, ``adv_usd``,
    ``tier``, ``venues`` (config-ordered, comma-joined), ``n_periods``, ``eligible``,
    ``exclusion_reason``, ``segment``; eligible rows first by rank, then excluded rows by symbol.
    Validated against :data:`cryptorun_core.schemas.UniverseRankingSchema` (through
    :func:`cryptorun_core.schemas.validate_frame`) unless ``validate=False`` (for callers whose
    output type validates the same frame, e.g. the Dagster asset).

    Bars are the snapshot's sanitized bars (:meth:`MarketSnapshot.clean_bars`, shared with the
    regime and the scan) and periods its memoised period table (:meth:`MarketSnapshot.periods`).
    """
    # only closed, sound bars (open + one bar <= T; garbage — NaN / non-positive prices, high < low,
    # conflicting duplicates, … — rejected, identical duplicates once) exist for this cycle: a symbol
    # whose bars all close after T must not even appear (SPEC §1 point-in-time)
    snapshot.use_bar_rules(BarRules.of(config))
    bar_pairs = snapshot.bar_pairs()
    venues, symbols, active = listed_pairs(
        bar_pairs["venue"].to_numpy(object), bar_pairs["symbol"].to_numpy(object),
        listing_activity(snapshot.markets, config.market.venues), config.market.venues,
    )
    periods = PairPeriods.from_table(snapshot.periods(), venues, symbols) if len(bar_pairs) else PairPeriods.empty(venues, symbols)
    return rank_pairs(periods, active, config, snapshot.timeframe, hot_size, warm_size, validate=validate)


def listing_activity(markets: pd.DataFrame | None, venues_cfg) -> dict[tuple[str, str], bool]:
    """{(venue, symbol): active} of the canonical pairs of ``venues_cfg`` in a ``markets`` table
    (a pair is active when any of its rows is)."""
    venues_cfg = set(venues_cfg)
    active: dict[tuple[str, str], bool] = {}
    if markets is not None and len(markets):
        for v, s, a in zip(markets["venue"].tolist(), markets["symbol"].tolist(), markets["active"].astype(bool).tolist()):
            if v in venues_cfg and _is_canonical(s):
                active[(v, s)] = active.get((v, s), False) or a
    return active


def listed_pairs(
    bar_venue: np.ndarray, bar_symbol: np.ndarray, listing: dict[tuple[str, str], bool], venues_cfg
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(venue, symbol, active)`` of every canonical pair of ``venues_cfg`` listed (``listing``: its
    :func:`listing_activity`) or with bars (``bar_venue``/``bar_symbol``: the pairs that have clean
    bars), sorted by (venue, symbol). A listing row decides; a pair seen only in bars counts as active."""
    venues_cfg = set(venues_cfg)
    active = dict(listing)
    for v, s in zip(bar_venue.tolist(), bar_symbol.tolist()):
        if v in venues_cfg and _is_canonical(s):
            active.setdefault((v, s), True)
    keys = sorted(active)
    return (np.array([k[0] for k in keys], dtype=object), np.array([k[1] for k in keys], dtype=object),
            np.array([active[k] for k in keys], dtype=bool))


def rank_pairs(
    periods: PairPeriods, active: np.ndarray, config: AppConfig, timeframe: str, hot_size: int = 30, warm_size: int = 100,
    *, validate: bool = True,
) -> pd.DataFrame:
    """The ranking (see :func:`rank_universe`) from the listed pairs' periods at T.

    ``periods``: one row per listed pair (the output of :func:`listed_pairs`, sorted by venue then
    symbol), with the pair's periods at T (no bars for a pair without bars); ``active``: the
    pair's listing state.
    """
    if hot_size < 0 or warm_size < 0:
        raise ValueError(f"hot_size and warm_size must be >= 0 (got {hot_size}, {warm_size})")
    check = (lambda frame: validate_frame(UniverseRankingSchema, frame)) if validate else (lambda frame: frame)
    if len(periods.venue) == 0:
        return check(_empty_ranking())
    symbols, sym = np.unique(periods.symbol, return_inverse=True)  # sorted symbols; pair → symbol
    n_sym = len(symbols)
    # SPEC §2: a market without a closed bar in period 0 is inactive (a feed or file that ended)
    traded = periods.n_bars[:, 0] > 0 if periods.n_bars.shape[1] else np.zeros(len(periods.venue), dtype=bool)
    active = np.asarray(active, dtype=bool) & traded
    # Venues that count for each symbol: its active listings, or all listings when none is active.
    sym_active = np.bincount(sym, weights=active, minlength=n_sym) > 0
    used = active | ~sym_active[sym]
    venue_rank = {v: i for i, v in enumerate(config.market.venues)}
    venue_lists: list[list[str]] = [[] for _ in range(n_sym)]
    for p in sorted(np.flatnonzero(used).tolist(), key=lambda p: venue_rank[periods.venue[p]]):
        venue_lists[sym[p]].append(periods.venue[p])
    per_period, present = _symbol_period_volumes(periods, sym[used], np.flatnonzero(used), n_sym, timeframe)
    n_periods = present.sum(axis=1).astype(np.int64)
    adv = _newest_mean(per_period, present, config.universe.adv_periods)

    excluded_bases = {b.upper() for b in config.market.excluded_bases}
    base = np.array([s.split("/", 1)[0].upper() in excluded_bases for s in symbols.tolist()], dtype=bool)
    reason = np.select(
        [base, ~sym_active, n_periods < config.universe.min_periods, np.isinf(adv),
         ~(np.nan_to_num(adv, nan=-np.inf) >= config.universe.min_adv_usd)],
        ["stablecoin_or_fiat", "inactive", "insufficient_periods", "adv_not_finite", "adv_below_min"],
        default="",
    )
    adv = np.where(np.isinf(adv), np.nan, adv)  # never written: the reason says why
    eligible = reason == ""
    elig = np.flatnonzero(eligible)
    elig = elig[np.argsort(-adv[elig], kind="stable")]  # ADV descending, ties by symbol (symbols are sorted)
    order = np.concatenate([elig, np.flatnonzero(~eligible)])
    n_elig = len(elig)
    ranks = np.arange(1, n_elig + 1)
    segment = np.full(len(order), "none", dtype=object)
    segment[:n_elig] = np.select([ranks <= hot_size, ranks <= hot_size + warm_size], ["hot", "warm"], default="none")
    tiers = np.full(len(order), None, dtype=object)
    for r, a in enumerate(adv[elig].tolist()):  # one call per eligible symbol
        tier = config.tier_for_adv(a)
        tiers[r] = tier.name if tier is not None else None
    reasons = reason[order].astype(object)
    reasons[:n_elig] = None
    ranking = pd.DataFrame(
        {
            "rank": pd.arrays.IntegerArray(
                np.concatenate([ranks, np.zeros(len(order) - n_elig, np.int64)]), np.arange(len(order)) >= n_elig
            ),
            "symbol": symbols[order].astype(object),
            "adv_usd": adv[order],
            "tier": tiers,
            "venues": np.array([",".join(venue_lists[s]) for s in order.tolist()], dtype=object),
            "n_periods": n_periods[order],
            "eligible": eligible[order],
            "exclusion_reason": reasons,
            "segment": segment,
        }
    )
    return check(ranking)


def _symbol_period_volumes(
    periods: PairPeriods, sym_of_used: np.ndarray, used: np.ndarray, n_sym: int, timeframe: str
) -> tuple[np.ndarray, np.ndarray]:
    """Σ close·volume per (symbol, period) over the used venues where that period is complete, and
    whether any venue is complete there. Summed venue by venue in venue order (pairs are sorted by
    venue) with pandas' compensated summation, so the sums are those of a groupby ``sum``."""
    width = periods.n_bars.shape[1]
    total = np.zeros((n_sym, width))
    comp = np.zeros((n_sym, width))
    present = np.zeros((n_sym, width), dtype=bool)
    complete = periods.n_bars[used] >= bars_per_period(timeframe)
    usd = periods.usd_volume[used]
    # the k-th used venue of each symbol (in venue order): one vectorised compensated step per k
    order = np.argsort(sym_of_used, kind="stable")
    slot = np.empty(len(order), dtype=np.int64)
    sorted_sym = sym_of_used[order]
    first = np.searchsorted(sorted_sym, sorted_sym, side="left")
    slot[order] = np.arange(len(order)) - first
    for k in range(int(slot.max()) + 1 if len(slot) else 0):
        rows = np.flatnonzero(slot == k)
        s = sym_of_used[rows]
        ok = complete[rows]
        y = np.where(ok, usd[rows] - comp[s], 0.0)
        t = total[s] + y
        c = (t - total[s]) - y
        c[np.isnan(c)] = 0.0
        comp[s] = np.where(ok, c, comp[s])
        total[s] = np.where(ok, t, total[s])
        present[s] |= ok
    return total, present


def _newest_mean(values: np.ndarray, present: np.ndarray, n: int) -> np.ndarray:
    """Per row, the mean of ``values`` over its ``n`` first present columns (newest periods), with
    pandas' compensated groupby ``mean``; NaN where no column is present."""
    rows = values.shape[0]
    take = present & (np.cumsum(present, axis=1) <= n)
    count = take.sum(axis=1)
    picked = np.zeros((rows, max(n, 0)))
    r, c = np.nonzero(take)
    picked[r, np.cumsum(take, axis=1)[r, c] - 1] = values[r, c]  # row's present values, newest first, left-aligned
    total = kahan_rows(picked, np.arange(picked.shape[1])[None, :] < count[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _is_canonical(symbol) -> bool:
    """Symbol is ``BASE/USD`` (regex checked once per distinct symbol)."""
    ok = _CANONICAL.get(symbol)
    if ok is None:
        ok = _CANONICAL[symbol] = isinstance(symbol, str) and _CANONICAL_RE.match(symbol) is not None
    return ok


def _empty_ranking() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": pd.Series([], dtype="Int64"),
            "symbol": pd.Series([], dtype=object),
            "adv_usd": pd.Series([], dtype="float64"),
            "tier": pd.Series([], dtype=object),
            "venues": pd.Series([], dtype=object),
            "n_periods": pd.Series([], dtype="int64"),
            "eligible": pd.Series([], dtype=bool),
            "exclusion_reason": pd.Series([], dtype=object),
            "segment": pd.Series([], dtype=object),
        }
    )


def segment_symbols(ranking: pd.DataFrame, segment: str) -> list[str]:
    """Symbols of one segment (``'hot'`` / ``'warm'``) in rank order."""
    sel = ranking[ranking["segment"] == segment]
    return sel.sort_values("rank")["symbol"].tolist()
