"""Residualization (SPEC §4): technical, then volume, then quality are each replaced by
``clip(50 + residual, 0, 100)``, the residual of an OLS fit with intercept across the cycle's
cross-section on the factors before it. Momentum core is protected (never changed).

Exact order (documented choice — each regression uses the *already residualized* factors before it):

1. technical ~ 1 + momentum
2. volume    ~ 1 + momentum + technical'
3. quality   ~ 1 + momentum + technical' + volume'

(' = residualized and clipped). The cross-section is the rows where all four factors are finite;
it is residualized only when ``enabled`` and it has at least ``min_cross_section`` rows. Rows
outside it keep their raw values (``residualized`` is False for them). The fit uses
``numpy.linalg.lstsq`` (minimum-norm solution when a regressor is constant).
"""

from __future__ import annotations

import numpy as np

ORDER = ("momentum", "technical", "volume", "quality")


def ols_residual(y: np.ndarray, xs: list[np.ndarray]) -> np.ndarray:
    """Residuals of y on [1, *xs] by least squares."""
    X = np.column_stack([np.ones(len(y))] + list(xs))
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    return y - X @ beta


def residualize(factors: dict[str, np.ndarray], enabled: bool = True, min_cross_section: int = 10) -> dict[str, np.ndarray]:
    """Return a copy of ``factors`` (keys of :data:`ORDER`) residualized, plus ``residualized`` (bool array)."""
    out = {k: np.asarray(factors[k], dtype=float).copy() for k in ORDER}
    n = len(out["momentum"])
    mask = np.all(np.column_stack([np.isfinite(out[k]) for k in ORDER]), axis=1) if n else np.zeros(0, bool)
    if not enabled or int(mask.sum()) < min_cross_section:
        out["residualized"] = np.zeros(n, dtype=bool)
        return out
    done = [out["momentum"][mask]]
    for name in ORDER[1:]:
        y = out[name][mask]
        new = np.clip(50.0 + ols_residual(y, done), 0.0, 100.0)
        out[name][mask] = new
        done.append(new)
    out["residualized"] = mask
    return out
