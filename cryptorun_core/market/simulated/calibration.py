"""The simulated market next to real 2021–22 history: the same statistics, the same estimators.

A :class:`History` is what both sides are reduced to: hourly closes of a few majors (BTC first)
and daily closes of a universe of coins (NaN before listing or on gaps). :func:`real_history`
reads ``../shared/data/real`` (hourly/ and daily/, see its README); :func:`simulated_history`
reads the same shape from a :class:`SimulatedMarket` through its public ``fetch_ohlcv``, the
bars a user sees. :func:`statistics` then computes every number from a History alone, so
neither side gets an estimator of its own; the regime numbers go through the project's own
``cryptorun_core.regime`` helpers and the packaged thresholds.

``python -m cryptorun_core.market.simulated.calibration [REAL_DIR]`` prints the comparison
table published in docs/simulated_market.md.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cryptorun_core import regime
from cryptorun_core.config import AppConfig, RegimeThresholds
from cryptorun_core.market.base import UTC

TOLERANCE = 0.25  # relative distance to the real value every statistic must stay within
# Vote shares are shares of ~370 strongly autocorrelated days: a few points are sampling noise,
# and a real share of 0 allows no relative band. A share is within when it is within TOLERANCE
# relative or SHARE_FLOOR absolute.
SHARE_FLOOR = 0.05
SIM_START = datetime(2021, 1, 1, tzinfo=UTC)
SIM_WINDOWS = 10  # consecutive windows as long as the real span; their statistics are averaged
HOURLY_MAJORS = ("BTC", "ETH", "LTC", "XRP", "BCH")  # the real hourly files
REAL_START = datetime(2021, 1, 1, tzinfo=UTC)
REAL_END = datetime(2022, 2, 4, tzinfo=UTC)  # end of the real hourly files (exclusive)
ABS_ACF_LAGS = (1, 2, 3, 4, 5)
DEFAULT_REAL_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "real"


@dataclass(frozen=True)
class History:
    """Closes of one market over one span, reduced to what the statistics read."""

    hourly: pd.DataFrame  # hourly closes, bar-open timestamps, columns = HOURLY_MAJORS present (BTC first)
    daily: pd.DataFrame  # UTC-day closes, day-open timestamps, columns = universe coins (BTC first)


# --------------------------------------------------------------------------------------------
# the two sides


def _read_closes(path: Path) -> pd.Series:
    frame = pd.read_csv(path, usecols=["timestamp", "close"])
    return pd.Series(frame["close"].to_numpy(float), index=pd.to_datetime(frame["timestamp"], utc=True))


def real_history(root: Path = DEFAULT_REAL_DIR, start: datetime = REAL_START, end: datetime = REAL_END) -> History:
    """The real hourly majors and daily universe of ``root`` over [start, end)."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    hourly = {}
    for base in HOURLY_MAJORS:
        s = _read_closes(root / "hourly" / f"{base}-USD.csv")
        hourly[base] = s[(s.index >= lo) & (s.index < hi)]
    daily = {}
    for path in sorted((root / "daily").glob("*-USD.csv")):
        s = _read_closes(path)
        daily[path.name[: -len("-USD.csv")]] = s[(s.index >= lo) & (s.index < hi)]
    days = pd.date_range(lo, hi - pd.Timedelta(days=1), freq="1D")
    order = ["BTC"] + sorted(b for b in daily if b != "BTC")
    return History(pd.DataFrame(hourly), pd.DataFrame({b: daily[b].reindex(days) for b in order}, index=days))


def simulated_universe(market, as_of: datetime, n_coins: int) -> list[str]:
    """The ``n_coins`` permanent crypto coins of ``market`` with the largest ADV (BTC first), as bases."""
    _, hour = _hour(as_of)
    specs = [s for s in market.specs_at(hour) if s.kind == "crypto" and s.active and s.listed_hour is None]
    specs.sort(key=lambda s: -s.adv_usd)
    return [s.base for s in specs[:n_coins]]


def _hour(as_of: datetime) -> tuple[int, int]:
    from cryptorun_core.market.simulated import _hour_of

    return _hour_of(as_of)


def simulated_history(market, start: datetime, days: int, n_coins: int = 60) -> History:
    """The simulated market's bars over [start, start + days) shaped like :func:`real_history`:
    hourly closes of the real file's majors, daily closes (close of each UTC day's last hourly
    bar) of its ``n_coins`` largest permanent crypto coins, each from the first venue listing it."""
    end = start + timedelta(days=days)
    hours = days * 24
    grid = pd.date_range(pd.Timestamp(start), periods=hours, freq="1h")
    days_index = pd.date_range(pd.Timestamp(start), periods=days, freq="1D")
    bases = simulated_universe(market, end, n_coins)
    _, hour = _hour(end)
    venue_of = {s.base: s.venues[0] for s in market.specs_at(hour)}
    results = market.fetch_ohlcv([(venue_of[b], f"{b}/USD") for b in bases], end, limit=hours)
    closes = {}
    for base, r in zip(bases, results):
        if r.ok:
            closes[base] = pd.Series(r.data["close"].to_numpy(float), index=r.data["timestamp"]).reindex(grid)
    hourly = pd.DataFrame({b: closes[b] for b in HOURLY_MAJORS if b in closes})
    daily = pd.DataFrame({b: c.groupby(c.index.floor("1D")).last().reindex(days_index) for b, c in closes.items()})
    return History(hourly, daily)


# --------------------------------------------------------------------------------------------
# estimators (History → numbers)


def _log_returns(closes: pd.DataFrame) -> pd.DataFrame:
    return np.log(closes).diff().iloc[1:]


def _autocorr(x: np.ndarray, lag: int) -> float:
    x = x[~np.isnan(x)]
    if len(x) <= lag + 2:
        return float("nan")
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])


def _regime_rows(history: History, thresholds: RegimeThresholds, ma_periods: int, thrust_periods: int,
                 ema_span: int) -> pd.DataFrame:
    """The three SPEC §6 indicators and their votes at every UTC midnight T with a full history
    (168 hourly BTC returns, ``thrust_periods`` + 1 daily periods): periods are the daily closes
    before T (period d = the day ending at T − 24h·d), as the regime step reads them."""
    btc_hourly = history.hourly["BTC"].to_numpy(float)
    hour_index = history.hourly.index
    daily = history.daily.to_numpy(float)
    rows = []
    n_periods = max(ma_periods, thrust_periods + 1)
    for i in range(n_periods, len(history.daily) + 1):
        t = history.daily.index[0] + pd.Timedelta(days=i)
        last = int(hour_index.searchsorted(t)) - 1  # newest hourly bar closed at T
        if last < 168:
            continue
        period_closes = daily[i - n_periods: i][::-1].T  # (symbols, periods), column 0 newest
        ind = regime.indicators_from_closes(
            btc_hourly[: last + 1], period_closes, timeframe="1h", ma_periods=ma_periods,
            thrust_periods=thrust_periods, thrust_ema_span=ema_span,
        )
        rows.append({k: ind[k] for k in regime.INDICATORS} | regime.vote(ind, thresholds))
    return pd.DataFrame(rows)


def statistics(history: History, config: AppConfig) -> dict[str, float]:
    """Every calibration statistic of ``history`` (names as in docs/simulated_market.md)."""
    rc = config.regime
    hourly_ret = _log_returns(history.hourly)
    daily_ret = _log_returns(history.daily)
    btc = daily_ret["BTC"]
    alts = daily_ret.drop(columns="BTC")

    # 7-day realized vol (SPEC §6 estimator) of BTC on hourly bars, sampled every 24 h
    btc_h = history.hourly["BTC"].to_numpy(float)
    btc_rv = np.array([regime.realized_vol(btc_h[: i + 1], "1h") for i in range(168, len(btc_h), 24)])
    # per coin: median of its daily 7-day realized vol (daily fallback estimator: 7 returns · √365)
    rv_daily = daily_ret.rolling(7).std(ddof=1) * math.sqrt(365)
    coin_vol = rv_daily.median().dropna()
    q25, q50, q75 = np.percentile(coin_vol.to_numpy(), [25, 50, 75])
    # vol clustering: autocorrelation of |daily return| (mean over coins and lags), and of BTC's
    # daily realized vol from its 24 hourly returns
    abs_acf = np.nanmean([[_autocorr(np.abs(daily_ret[c].to_numpy()), lag) for lag in ABS_ACF_LAGS] for c in daily_ret])
    btc_day_rv = hourly_ret["BTC"].groupby(hourly_ret.index.floor("1D")).std(ddof=1).to_numpy()
    # co-movement with BTC, per alt over the days both have a return
    corr, beta = [], []
    for c in alts:
        both = pd.concat([alts[c], btc], axis=1).dropna().to_numpy()
        if len(both) < 60:
            continue
        cov = np.cov(both.T, ddof=1)
        corr.append(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1]))
        beta.append(cov[0, 1] / cov[1, 1])
    xs_spread = daily_ret.std(axis=1, ddof=1)[daily_ret.count(axis=1) >= 10]
    rows = _regime_rows(history, rc.thresholds, rc.ma_periods, rc.thrust_periods, rc.thrust_ema_span)
    stats = {
        "btc_rv7d_median": float(np.median(btc_rv)),
        "coin_rv7d_median": float(q50),
        "coin_vol_dispersion": float((q75 - q25) / q50),
        "abs_return_acf": float(abs_acf),
        "btc_daily_rv_acf1": _autocorr(btc_day_rv, 1),
        "xs_return_spread": float(xs_spread.median()),
        "corr_to_btc_median": float(np.median(corr)),
        "beta_to_btc_median": float(np.median(beta)),
        "pct_above_20ma_mean": float(rows["pct_above_20ma"].mean()),
    }
    for key in regime.VOTE_KEYS.values():
        shares = rows[key].value_counts(normalize=True)
        for label in ("calm", "normal", "volatile"):
            stats[f"{key}_{label}"] = float(shares.get(label, 0.0))
    return stats


# --------------------------------------------------------------------------------------------
# the comparison


def is_share(name: str) -> bool:
    return name.split("_")[0] in {"vol", "ma", "breadth"} and "_vote_" in name


def within(name: str, real: float, simulated: float) -> bool:
    """TOLERANCE relative to the real value (or SHARE_FLOOR absolute for a vote share)."""
    band = TOLERANCE * abs(real)
    if is_share(name):
        band = max(band, SHARE_FLOOR)
    return bool(abs(simulated - real) <= band)


def simulated_statistics(market, config: AppConfig, start: datetime = SIM_START, windows: int = SIM_WINDOWS,
                         days: int | None = None) -> dict[str, float]:
    """The mean of :func:`statistics` over ``windows`` consecutive windows of the real span's length
    from ``start`` (one simulated year is one draw, as 2021–22 is; the mean is the market's typical year)."""
    days = days or (REAL_END - REAL_START).days
    per = [statistics(simulated_history(market, start + timedelta(days=i * days), days), config) for i in range(windows)]
    return {k: float(np.mean([p[k] for p in per])) for k in per[0]}


def comparison(real: dict[str, float], simulated: dict[str, float]) -> pd.DataFrame:
    """One row per statistic: real, simulated, simulated/real and whether it is :func:`within`."""
    rows = []
    for name, r in real.items():
        s = simulated[name]
        ratio = s / r if r else float("nan")
        rows.append({"statistic": name, "real": r, "simulated": s, "ratio": ratio, "within": within(name, r, s)})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| statistic | real 2021–22 | simulated | simulated / real | within 25 % |", "|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        ratio = "—" if math.isnan(r.ratio) else f"{r.ratio:.2f}"
        lines.append(f"| `{r.statistic}` | {r.real:.3f} | {r.simulated:.3f} | {ratio} | {'yes' if r.within else '**no**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table (pooled windows), then one table per window."""
    from cryptorun_core.config import packaged_config
    from cryptorun_core.market.simulated import SimulatedMarket

    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else DEFAULT_REAL_DIR
    config = packaged_config()
    real = statistics(real_history(root), config)
    sim_cfg = config.market.simulated
    market = SimulatedMarket(seed=sim_cfg.seed, n_symbols=sim_cfg.n_symbols)
    days = (REAL_END - REAL_START).days
    print(f"real {REAL_START:%Y-%m-%d}..{REAL_END:%Y-%m-%d} vs simulated (seed {sim_cfg.seed}), mean of {SIM_WINDOWS} "
          f"windows of {days} days from {SIM_START:%Y-%m-%d}\n")
    print(markdown(comparison(real, simulated_statistics(market, config))))
    for i in range(SIM_WINDOWS):
        start = SIM_START + timedelta(days=i * days)
        sim = simulated_statistics(market, config, start=start, windows=1)
        print(f"\nwindow {start:%Y-%m-%d} + {days} days\n")
        print(markdown(comparison(real, sim)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
