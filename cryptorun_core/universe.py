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
* **Inactive.** A symbol is ``inactive`` when it is listed inactive on every configured venue
  that lists it. Otherwise its inactive venue markets are ignored (neither in ``venues`` nor in
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

import numpy as np
import pandas as pd

from cryptorun_core.config import AppConfig
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.periods import complete_periods
from cryptorun_core.schemas import UNIVERSE_RANKING_COLUMNS, UniverseRankingSchema

RANKING_COLUMNS = UNIVERSE_RANKING_COLUMNS
_CANONICAL_RE = r"^[^/\s]+/USD$"


def rank_universe(
    snapshot: MarketSnapshot, config: AppConfig, hot_size: int = 30, warm_size: int = 100, *, validate: bool = True
) -> pd.DataFrame:
    """Rank every canonical symbol of ``snapshot`` at ``snapshot.as_of`` (SPEC §2).

    Exclusions, first match wins: ``stablecoin_or_fiat`` (base in ``config.market.excluded_bases``),
    ``inactive`` (listed inactive on every venue), ``insufficient_periods`` (fewer than
    ``config.universe.min_periods`` complete 24h periods), ``adv_below_min`` (ADV below
    ``config.universe.min_adv_usd``). Eligible symbols are ranked by ADV descending, ties by
    symbol; the first ``hot_size`` are segment ``'hot'``, the next ``warm_size`` ``'warm'``, the
    rest (and every excluded symbol) ``'none'``. See the module docstring for how venues,
    inactive listings and periods incomplete on one venue are treated.

    Returns exactly the columns ``rank`` (Int64, NA unless eligible), ``symbol``, ``adv_usd``,
    ``tier``, ``venues`` (config-ordered, comma-joined), ``n_periods``, ``eligible``,
    ``exclusion_reason``, ``segment``; eligible rows first by rank, then excluded rows by symbol.
    Validated with :data:`cryptorun_core.schemas.UniverseRankingSchema` unless ``validate=False``
    (for callers whose output type validates the same frame, e.g. the Dagster asset).

    Bars are the snapshot's sanitized bars (:meth:`MarketSnapshot.clean_bars`, shared with the
    regime and the scan) and periods its memoised period table (:meth:`MarketSnapshot.periods`).
    """
    check = UniverseRankingSchema.validate if validate else (lambda frame: frame)
    if hot_size < 0 or warm_size < 0:
        raise ValueError(f"hot_size and warm_size must be >= 0 (got {hot_size}, {warm_size})")
    venues_cfg = tuple(config.market.venues)
    venue_rank = {v: i for i, v in enumerate(venues_cfg)}

    # only closed, sound bars (open + one bar <= T; garbage — NaN / non-positive prices, high < low,
    # conflicting duplicates, … — rejected, identical duplicates once) exist for this cycle: a symbol
    # whose bars all close after T must not even appear (SPEC §1 point-in-time)
    bar_pairs = snapshot.bar_pairs()
    if len(bar_pairs):
        bar_pairs = bar_pairs[(bar_pairs["venue"].isin(venues_cfg) & _is_canonical(bar_pairs["symbol"])).to_numpy()]
    pairs = _listed_pairs(bar_pairs[["venue", "symbol"]], snapshot.markets, venues_cfg)
    if pairs.empty:
        return check(_empty_ranking())

    # Venues that count for each symbol: its active listings, or all listings when none is active.
    symbol_active = pairs.groupby("symbol", sort=False)["active"].transform("any")
    used = pairs[pairs["active"] | ~symbol_active].copy()
    used["venue_rank"] = used["venue"].map(venue_rank)
    used = used.sort_values(["symbol", "venue_rank"], kind="mergesort")
    venues_str = used.groupby("symbol", sort=True)["venue"].agg(",".join)
    active = pairs.groupby("symbol", sort=True)["active"].any()

    # Σ close·volume per (symbol, period) over venues where that period is complete.
    periods = snapshot.periods() if len(bar_pairs) else None  # every pair; the merge below keeps the used ones
    if periods is not None and not periods.empty:
        periods = periods.merge(used[["venue", "symbol"]], on=["venue", "symbol"], how="inner")
        complete = complete_periods(periods, snapshot.timeframe)
        per_period = complete.groupby(["symbol", "period"], sort=True)["usd_volume"].sum().reset_index()
        n_periods = per_period.groupby("symbol", sort=True).size()
        newest = per_period.groupby("symbol", sort=False).head(config.universe.adv_periods)  # sorted by period asc
        adv = newest.groupby("symbol", sort=True)["usd_volume"].mean()
    else:
        n_periods = pd.Series(dtype="int64")
        adv = pd.Series(dtype="float64")

    out = pd.DataFrame({"symbol": venues_str.index.to_numpy(dtype=object)})
    out["adv_usd"] = out["symbol"].map(adv).astype("float64")
    out["venues"] = out["symbol"].map(venues_str).astype(object)
    out["n_periods"] = out["symbol"].map(n_periods).fillna(0).astype("int64")
    is_active = out["symbol"].map(active).fillna(True).astype(bool).to_numpy()

    excluded_bases = {b.upper() for b in config.market.excluded_bases}
    base = out["symbol"].str.split("/", n=1).str[0].str.upper()
    conditions = [
        base.isin(excluded_bases).to_numpy(),
        ~is_active,
        (out["n_periods"] < config.universe.min_periods).to_numpy(),
        ~(out["adv_usd"].fillna(-np.inf) >= config.universe.min_adv_usd).to_numpy(),
    ]
    reason = np.select(conditions, ["stablecoin_or_fiat", "inactive", "insufficient_periods", "adv_below_min"], default="")
    out["eligible"] = reason == ""
    out["exclusion_reason"] = pd.Series(np.where(reason == "", None, reason), dtype=object)

    eligible = out[out["eligible"]].sort_values(["adv_usd", "symbol"], ascending=[False, True], kind="mergesort")
    excluded = out[~out["eligible"]].sort_values("symbol", kind="mergesort")
    eligible = eligible.assign(rank=np.arange(1, len(eligible) + 1, dtype="int64"))
    ranks = eligible["rank"].to_numpy()
    eligible["segment"] = np.select([ranks <= hot_size, ranks <= hot_size + warm_size], ["hot", "warm"], default="none")
    tiers = [config.tier_for_adv(a) for a in eligible["adv_usd"].to_numpy()]  # one call per eligible symbol
    eligible["tier"] = pd.Series([t.name if t is not None else None for t in tiers], index=eligible.index, dtype=object)
    excluded = excluded.assign(rank=pd.NA, segment="none", tier=None)

    ranking = pd.concat([eligible, excluded], ignore_index=True)
    ranking["rank"] = ranking["rank"].astype("Int64")
    ranking["tier"] = ranking["tier"].astype(object).where(ranking["tier"].notna(), None)
    ranking["segment"] = ranking["segment"].astype(object)
    ranking["eligible"] = ranking["eligible"].astype(bool)
    ranking = ranking[list(RANKING_COLUMNS)]
    return check(ranking)


def _listed_pairs(bars: pd.DataFrame, markets: pd.DataFrame | None, venues_cfg: tuple[str, ...]) -> pd.DataFrame:
    """(venue, symbol, active) for every pair listed in ``markets`` or present in ``bars`` (a bars
    table or just its distinct (venue, symbol) pairs)."""
    frames = []
    if markets is not None and not markets.empty:
        mk = markets[markets["venue"].isin(venues_cfg) & _is_canonical(markets["symbol"])]
        mk = mk.assign(active=mk["active"].astype(bool)).groupby(["venue", "symbol"], sort=False)["active"].any().reset_index()
        frames.append(mk)
    if not bars.empty:
        bp = bars[["venue", "symbol"]].drop_duplicates().assign(active=np.nan)
        frames.append(bp)
    if not frames:
        return pd.DataFrame({"venue": pd.Series([], dtype=object), "symbol": pd.Series([], dtype=object), "active": pd.Series([], dtype=bool)})
    both = pd.concat(frames, ignore_index=True)
    # a listing row decides; a pair seen only in bars counts as active
    both["listed"] = both["active"].notna()
    both = both.sort_values(["venue", "symbol", "listed"], ascending=[True, True, False], kind="mergesort")
    pairs = both.drop_duplicates(["venue", "symbol"], keep="first")
    pairs = pairs.assign(active=pairs["active"].where(pairs["listed"], True).astype(bool))
    return pairs[["venue", "symbol", "active"]].reset_index(drop=True)


def _is_canonical(symbols: pd.Series) -> pd.Series:
    """Boolean mask: symbol is ``BASE/USD`` (regex checked once per distinct symbol)."""
    uniq = pd.unique(symbols.astype(str))
    ok = set(uniq[pd.Series(uniq, dtype=object).str.match(_CANONICAL_RE).to_numpy(dtype=bool)])
    return symbols.astype(str).isin(ok)


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
