"""Section 6 — what the hot scan's charts cost beside the scan they describe (in-process).

One hot scan of 30 symbols on the simulated market (``run_scan``, the baseline, timed per
repetition), then the charts its materialisation carries (``hot_scan_chart_metadata`` on that
scan's evaluated table and explain: score chart, gate rejections, badge table), warm — after one
untimed render that imports Pillow and loads the font, as the first chart of a run worker does.
Ratio: chart render time against the scan's compute time, both measured here. The full-cycle view,
each run in a fresh process, is ``python -m cryptorun_pipelines.charts.measure`` (docs/ui.md).
"""

from __future__ import annotations

from datetime import datetime, timezone

from benchmarks.common import Row, repeat

SECTION = "6 charts"
T = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
TARGET = 0.5  # × the scan's compute time


def run(quick: bool) -> list[Row]:
    from cryptorun_core.config import load_config
    from cryptorun_core.engine import run_scan
    from cryptorun_core.market.simulated import SimulatedMarket
    from cryptorun_core.market.snapshot import collect_snapshot
    from cryptorun_core.regime import compute_regime
    from cryptorun_core.universe import rank_universe, segment_symbols
    from cryptorun_pipelines.charts import hot_scan_chart_metadata

    config = load_config(check_artifacts_dir=False)
    hot = config.job("scan.hot")
    market = SimulatedMarket(seed=config.market.simulated.seed, n_symbols=config.market.simulated.n_symbols)
    uni = collect_snapshot(market, None, T, limit=config.market.history_bars, with_books=False)
    ranking = rank_universe(uni, config, hot_size=hot.config.max_sample, warm_size=config.job("scan.warm").config.max_sample)
    regime = {**compute_regime(uni, ranking, config).to_dict(), "partition_key": "2026-11-20-08:00"}
    snap = collect_snapshot(market, segment_symbols(ranking, "hot") + segment_symbols(ranking, "warm"), T,
                            limit=config.market.history_bars)
    reps = 3 if quick else 7
    result = {}

    def scan() -> None:
        result["res"] = run_scan(snap, ranking, regime, config, hot)

    base = repeat(scan, reps, warmup=1)
    res = result["res"]
    charts = repeat(lambda: hot_scan_chart_metadata(res.evaluated, res.explain, score_min=float(hot.config.score_min)),
                    reps, warmup=1)
    ratio = charts.median / base.median if base.median else None
    rows = [
        Row.of_stat(SECTION, "hot scan compute (run_scan, 30 symbols)", base, baseline="baseline").judge(None),
        Row.of_stat(SECTION, "hot scan charts, warm (score, gates, badge table)", charts, ratio=ratio,
                    baseline="× hot scan compute", target=f"≤ {TARGET}× scan").judge(ratio <= TARGET if ratio is not None else None),
    ]
    return rows
