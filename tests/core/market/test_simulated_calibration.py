"""The default simulated market against real 2021–22 history: every statistic of
docs/simulated_market.md, same estimators on both sides, within 25 % of the real value."""

from __future__ import annotations

import pytest

from cryptorun_core.config import packaged_config
from cryptorun_core.market.simulated import SimulatedMarket
from cryptorun_core.market.simulated import calibration as cal

pytestmark = pytest.mark.skipif(not (cal.DEFAULT_REAL_DIR / "hourly").is_dir(), reason="../shared/data/real not available")



@pytest.fixture(scope="module")
def table():
    config = packaged_config()
    sim = config.market.simulated
    market = SimulatedMarket(seed=sim.seed, n_symbols=sim.n_symbols)
    real = cal.statistics(cal.real_history(), config)
    return cal.comparison(real, cal.simulated_statistics(market, config)).set_index("statistic")


def test_the_table_covers_every_statistic_the_issue_names(table):
    names = set(table.index)
    assert {"btc_rv7d_median", "coin_rv7d_median", "coin_vol_dispersion", "abs_return_acf", "btc_daily_rv_acf1",
            "xs_return_spread", "corr_to_btc_median", "beta_to_btc_median", "pct_above_20ma_mean"} <= names
    for vote in ("vol_vote", "ma_vote", "breadth_vote"):
        assert {f"{vote}_calm", f"{vote}_normal", f"{vote}_volatile"} <= names
        assert sum(table.loc[f"{vote}_{lab}", "real"] for lab in ("calm", "normal", "volatile")) == pytest.approx(1.0)


def test_each_statistic_is_within_25_percent_of_the_real_one(table):
    off = table[~table["within"]]
    assert off.empty, off[["real", "simulated", "ratio"]].to_string()


def test_tolerance_is_relative_with_an_absolute_floor_for_vote_shares():
    assert cal.within("btc_rv7d_median", 0.70, 0.87) and not cal.within("btc_rv7d_median", 0.70, 0.88)
    assert cal.within("vol_vote_calm", 0.0, 0.05) and not cal.within("vol_vote_calm", 0.0, 0.051)
    assert cal.within("ma_vote_calm", 0.40, 0.50) and not cal.within("ma_vote_calm", 0.40, 0.51)


def test_statistics_react_to_the_market_they_read():
    """Estimators that cannot tell markets apart would pass anything: a copy of the real history
    with every daily log return halved must halve the coins' vol and leave their beta alone."""
    config = packaged_config()
    real = cal.real_history()
    base = cal.statistics(real, config)
    damped = cal.History(real.hourly, real.daily**0.5)  # every daily log return halved
    half = cal.statistics(damped, config)
    assert half["coin_rv7d_median"] == pytest.approx(0.5 * base["coin_rv7d_median"], rel=1e-9)
    assert half["beta_to_btc_median"] == pytest.approx(base["beta_to_btc_median"], rel=1e-9)
