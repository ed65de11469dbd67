"""Technical factor (SPEC §4): mean of RSI(14) on 4h bars, 100·min(ADX(14) on 1h / 50, 1) and
the position of the close in the 20-period high–low range.

Definitions (documented choices):

- **4h bars** are built from the hourly matrix in blocks of 4 counted back from T, so the last
  4h bar ends at T: close = close of its last hour, high/low = extremes of its hours.
- **Wilder smoothing** of a series x with period n: the first value is the simple mean of the
  first n values (from the row's first valid value), then ``s_t = s_{t−1} + (x_t − s_{t−1})/n``
  (an EMA with α = 1/n seeded with that SMA). Computed with pandas ``ewm(adjust=False)``, not a
  Python loop per bar. The matrix only holds the history window (``market.history_bars``) before
  T, so the recursion always starts at the same place for a given T.
- **RSI(n)** on 4h closes: gains/losses of consecutive 4h closes, each Wilder-smoothed;
  ``RSI = 100 − 100/(1 + avg_gain/avg_loss)``; avg_loss = 0 → 100 (50 when avg_gain is 0 too).
  Needs n + 1 4h closes.
- **ADX(n)** on 1h bars (Wilder): TR = max(h − l, |h − c₋₁|, |l − c₋₁|); +DM = up if up > down
  and up > 0 else 0 (up = h − h₋₁, down = l₋₁ − l), −DM symmetrically; TR, +DM, −DM Wilder-smoothed;
  ±DI = 100·sm(±DM)/sm(TR); DX = 100·|+DI − −DI|/(+DI + −DI) (0 when both are 0);
  ADX = Wilder smoothing of DX. Needs 2n hourly bars.
- **Range position** over the last ``range_periods`` 24h periods (20·24 hourly bars ending at T):
  ``100·(close(T) − min low)/(max high − min low)``; 50 when the range is 0.
- The factor is the mean of the components that could be computed (NaN when none).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def to_4h(close: np.ndarray, high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4h bars (n × H//4) from hourly matrices, aligned so the last 4h bar ends at T."""
    n, h = close.shape
    m = h // 4
    if m == 0:
        empty = np.full((n, 0), np.nan)
        return empty, empty, empty
    sl = slice(h - 4 * m, h)
    c = close_4h(close)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi = np.nanmax(high[:, sl].reshape(n, m, 4), axis=2)
        lo = np.nanmin(low[:, sl].reshape(n, m, 4), axis=2)
    return c, hi, lo


def close_4h(close: np.ndarray) -> np.ndarray:
    """Closes of the 4h bars of :func:`to_4h` (the close of each block's last hour), n × H//4."""
    n, h = close.shape
    m = h // 4
    return close[:, h - 4 * m:].reshape(n, m, 4)[:, :, -1]


def wilder(x: np.ndarray, period: int) -> np.ndarray:
    """Wilder smoothing along axis 1 of an (n × T) array whose NaN are only leading."""
    x = np.asarray(x, dtype=float)
    n, t = x.shape
    if t == 0:
        return np.full((n, t), np.nan)
    valid = np.isfinite(x)
    first = np.where(valid.any(axis=1), valid.argmax(axis=1), t)
    seed_pos = first + period - 1
    ok = seed_pos < t
    if not ok.any():
        return np.full((n, t), np.nan)
    # running sums only as far as the last seed (the same prefix sums, a fraction of the matrix)
    width = int(seed_pos[ok].max()) + 1
    csum = np.cumsum(np.where(valid[:, :width], x[:, :width], 0.0), axis=1)
    del valid
    rows = np.nonzero(ok)[0]
    sp = seed_pos[ok]
    before = np.where(first[ok] > 0, csum[rows, np.maximum(first[ok] - 1, 0)], 0.0)
    seed = (csum[rows, sp] - before) / period
    cols = np.arange(t)[None, :]
    feed = np.where(cols > seed_pos[:, None], x, np.nan)
    feed[rows, sp] = seed
    sm = pd.DataFrame(feed.T).ewm(alpha=1.0 / period, adjust=False, ignore_na=True).mean().to_numpy().T
    sm[cols < seed_pos[:, None]] = np.nan
    return sm


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """RSI(period) at the last column of each row (Wilder)."""
    close = np.asarray(close, dtype=float)
    if close.shape[1] < period + 1:
        return np.full(close.shape[0], np.nan)
    d = np.diff(close, axis=1)
    gain = np.where(np.isfinite(d), np.maximum(d, 0.0), np.nan)
    loss = np.where(np.isfinite(d), np.maximum(-d, 0.0), np.nan)
    # one smoothing pass over both series stacked (rows are smoothed independently; 4h series are short)
    ag, al = np.split(wilder(np.vstack([gain, loss]), period)[:, -1], 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = 100.0 - 100.0 / (1.0 + ag / al)
    val = np.where(al == 0, np.where(ag > 0, 100.0, 50.0), val)
    return np.where(np.isfinite(ag) & np.isfinite(al), val, np.nan)


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """ADX(period) at the last column of each row (Wilder)."""
    high, low, close = (np.asarray(a, dtype=float) for a in (high, low, close))
    if close.shape[1] < 2 * period + 1:
        return np.full(close.shape[0], np.nan)
    ph, pl, pc = high[:, :-1], low[:, :-1], close[:, :-1]
    h, l = high[:, 1:], low[:, 1:]
    with np.errstate(invalid="ignore"):
        tr = np.fmax(h - l, np.fmax(np.abs(h - pc), np.abs(l - pc)))
        up, down = h - ph, pl - l
        pdm = np.where((up > down) & (up > 0), up, 0.0)
        mdm = np.where((down > up) & (down > 0), down, 0.0)
    bad = ~(np.isfinite(tr) & np.isfinite(up) & np.isfinite(down))
    tr, pdm, mdm = (np.where(bad, np.nan, a) for a in (tr, pdm, mdm))
    s_tr, s_p, s_m = wilder(tr, period), wilder(pdm, period), wilder(mdm, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        pdi = np.where(s_tr > 0, 100.0 * s_p / s_tr, 0.0)
        mdi = np.where(s_tr > 0, 100.0 * s_m / s_tr, 0.0)
        tot = pdi + mdi
        dx = np.where(tot > 0, 100.0 * np.abs(pdi - mdi) / tot, 0.0)
    dx = np.where(np.isfinite(s_tr), dx, np.nan)
    return wilder(dx, period)[:, -1]


def position_in_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, hours: int = 480) -> np.ndarray:
    """100·(close(T) − min low)/(max high − min low) over the last ``hours`` hourly bars (50 on a zero range)."""
    sl = slice(max(close.shape[1] - hours, 0), close.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi = np.nanmax(high[:, sl], axis=1) if close.shape[1] else np.full(close.shape[0], np.nan)
        lo = np.nanmin(low[:, sl], axis=1) if close.shape[1] else np.full(close.shape[0], np.nan)
    c = close[:, -1] if close.shape[1] else np.full(close.shape[0], np.nan)
    rng = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = 100.0 * (c - lo) / rng
    pos = np.where(rng == 0, 50.0, pos)
    return np.where(np.isfinite(c) & np.isfinite(rng), np.clip(pos, 0.0, 100.0), np.nan)


#: symbols per block in :func:`technical_factor`: the components' temporaries (a few dozen block × H
#: float arrays) stay a few MB whatever the universe size, instead of several copies of the matrix
TECHNICAL_BLOCK_ROWS = 128


def technical_factor(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, rsi_period: int = 14, adx_period: int = 14, range_hours: int = 480
) -> dict[str, np.ndarray]:
    """Technical factor and its components from hourly matrices (last column = T).

    Every component is computed row by row (nothing mixes symbols), so blocks of rows give the same
    numbers as the whole matrix at once; blocks bound the memory of the temporaries."""
    n = close.shape[0]
    rsi_4h, adx_1h, pos = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for a in range(0, n, TECHNICAL_BLOCK_ROWS):
        b = slice(a, a + TECHNICAL_BLOCK_ROWS)
        hi, lo, cl = high[b], low[b], close[b]
        rsi_4h[b] = rsi(close_4h(cl), rsi_period)
        adx_1h[b] = adx(hi, lo, cl, adx_period)
        pos[b] = position_in_range(hi, lo, cl, range_hours)
    adx_score = 100.0 * np.minimum(adx_1h / 50.0, 1.0)
    comps = np.column_stack([rsi_4h, adx_score, pos])
    cnt = np.isfinite(comps).sum(axis=1)
    tech = np.where(cnt > 0, np.nansum(comps, axis=1) / np.maximum(cnt, 1), np.nan)
    return {"technical": tech, "rsi_4h": rsi_4h, "adx_1h": adx_1h, "adx_score": adx_score, "range_position": pos}
