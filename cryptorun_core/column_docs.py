"""One line per table column, from SPEC's definitions (declared once; the Dagster UI's Columns panel
shows them beside each column of the tables in :mod:`cryptorun_core.schemas`), and the short name
and sentence of each table-wide check of those schemas."""

COLUMN_DESCRIPTIONS: dict[str, str] = {
    # SPEC §2 universe
    "rank": "Rank by ADV, descending (ties by symbol); empty when excluded.",
    "symbol": "Canonical BASE/USD symbol.",
    "adv_usd": "Average daily dollar volume: mean Σ close·volume over the last 7 complete 24h periods, summed over venues.",
    "tier": "Liquidity tier by ADV: tier1 ≥ $5M, tier2 ≥ $1M, tier3 ≥ $100k.",
    "venues": "Configured venues that list the symbol.",
    "n_periods": "Complete 24h periods of history (at least 7 to be eligible).",
    "eligible": "True when the symbol is ranked (no exclusion reason).",
    "exclusion_reason": "Why the symbol is not ranked (stablecoin/fiat base, inactive, too little history, ADV below $100k).",
    "segment": "hot (top max_sample of the hot job), warm (the next max_sample of the warm job) or none.",
    # SPEC §6 regime
    "realized_vol_7d": "Stdev of the last 168 hourly log returns of the benchmark · √(24·365).",
    "pct_above_20ma": "% of symbols whose period-0 close is above the mean of their closes 0..19.",
    "breadth_thrust": "EMA (α = 2/11) over 30 periods of advancers / (advancers + decliners).",
    # SPEC §3-§5, §9 signals
    "timestamp": "The cycle's time T (as_of), ISO 8601 UTC.",
    "score": "Σ weight_blend · factor over momentum, technical, volume, quality (0-100).",
    "momentum_core": "Regime-weighted momentum over 1h/4h/12h/24h/7d (0-100, never residualized).",
    "vadr": "Volume-adjusted daily range: √(range ratio · USD volume ratio) vs the 20 prior periods; 1.0 is an ordinary day.",
    "vadr_min": "VADR threshold: max(p80 across the ranked universe, tier minimum).",
    "spread_bps": "(best ask − best bid) / mid · 10⁴ on the chosen venue's own book.",
    "depth_usd": "USD of bids and asks within ±2% of mid on the chosen venue's own book.",
    "regime": "Regime of the weights used: calm, normal or volatile.",
    "fresh": "● when the newest bar closed ≤ 2 bars before T and the book is ≤ 60 s old; ○ otherwise.",
    "venue": "The venue with the largest depth among valid books; its numbers are the ones gated.",
    "sources": "Venues that supplied a valid book and fresh bars this cycle.",
    "technical": "Mean of RSI(14) on 4h, ADX(14)/50 on 1h and the close's place in the 20-period range (0-100).",
    "volume": "100·clip(0.5 + 0.25·log₂ surge), surge = period-0 USD volume / mean of periods 1-7 (0-100).",
    "quality": "Mean of tier score, spread, depth, bar completeness and source coverage (0-100).",
    "depth_badge": "✓ when depth_usd reaches the tier's depth minimum; ✗ otherwise.",
    "cached": "Whether the row's source data came from the cache.",
    "ttl_remaining_s": "Seconds the cache entry the row came from has left.",
    # SPEC §8 premove
    "premove_score": "0.45·compression + 0.30·volume build + 0.25·book imbalance, each scaled to 0-100.",
    "state": "QUIET < 50 ≤ WATCH < 70 ≤ PREPARE < 85 ≤ PRIME; EXECUTE = PRIME with ≥ 2 of 3 gates.",
    "compression": "100·(1 − percentile rank of range₀ among range₀..₁₉).",
    "volume_build": "USD volume of period 0 / mean of periods 1-7.",
    "book_imbalance": "(bid − ask depth) / (bid + ask depth) within ±2% of mid.",
    "gates_passed": "Premove component gates passed: compression ≥ 70, volume build ≥ 1.5, imbalance ≥ 0.15.",
    "execution_risk": "LOW: spread ≤ 25 bps and depth ≥ 2× tier min; HIGH: the spread or depth gate fails; MEDIUM otherwise.",
}

#: short name → sentence of every table-wide check (the name labels it in the UI, which cuts labels at 30 characters)
TABLE_CHECKS: dict[str, str] = {
    "ranking_consistent": "eligible, rank, exclusion_reason and segment agree on every row.",
    "ranks_contiguous": "Ranks are 1..n by ADV descending, eligible rows first.",
    "score_descending": "Rows are sorted by score, highest first.",
    "decision_consistent": "decision and primary_reason agree with the gate flags.",
    "valid_has_no_reason": "A book is valid exactly when it has no invalid_reason.",
}
