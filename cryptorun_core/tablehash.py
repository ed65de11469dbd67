"""Row-order-independent table hashes (explain.json ``hashes``) computed with numpy in chunks.

The digest is defined by the pandas formulation it was first written in, and must not change:

    sha256( "c1|c2|…\\n"
            + for each string column, in column order: "\\x1f".join(sorted distinct values) + "\\n"
            + np.sort(hash_pandas_object(canon, index=False)).tobytes() )

where ``canon`` holds, per column, strings as int64 codes into their sorted distinct values,
datetimes as int64 ns since the epoch (UTC), booleans as bool and other numbers as float64.
:func:`row_hashes` computes ``hash_pandas_object`` of such columns without building a frame: each
column's values are redistributed with pandas' 64-bit mixer (``hash_array`` of 8-byte numbers uses
their bits) and combined as pandas' ``combine_hash_arrays`` does, a cache-sized chunk of rows at a
time. Columns that are constant over a group of rows (venue and symbol of a bar pair) can be fed
once per group (:func:`row_hashes` with ``finish=False``) and the state repeated per row.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pandas as pd

_CHUNK = 1 << 15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(v: np.ndarray, tmp: np.ndarray) -> None:
    """pandas' redistribution of 64-bit values (``_hash_ndarray``), in place on uint64 ``v``."""
    np.right_shift(v, np.uint64(30), out=tmp)
    v ^= tmp
    v *= _M1
    np.right_shift(v, np.uint64(27), out=tmp)
    v ^= tmp
    v *= _M2
    np.right_shift(v, np.uint64(31), out=tmp)
    v ^= tmp


def _multipliers(num_items: int) -> list[np.uint64]:
    """Multiplier applied after each column in pandas' ``combine_hash_arrays``."""
    out, mult = [], 1000003
    for i in range(num_items):
        out.append(np.uint64(mult))
        mult = (mult + 82520 + 2 * (num_items - i)) % (1 << 64)
    return out


def _load(dst: np.ndarray, values: np.ndarray) -> None:
    """The 64-bit pattern pandas hashes for ``values`` (8-byte numbers: their bits; bool: 0/1)."""
    if values.dtype == bool:
        dst[:] = values
    else:
        dst[:] = values.view(np.uint64)


def row_hashes(columns: Sequence[np.ndarray], num_items: int, *, first: int = 0, state: np.ndarray | None = None,
               rows: np.ndarray | None = None, finish: bool = True) -> np.ndarray:
    """Per-row ``hash_pandas_object(frame, index=False)`` of a ``num_items``-column frame, fed the
    columns ``first … first + len(columns) − 1`` here (8-byte numeric or bool arrays of equal length).

    ``state``: the per-row state after the columns before ``first`` (None: no column fed yet; a uint64
    array given is updated in place and returned);
    ``rows``: use these rows of every column (the result is aligned with ``rows``); ``finish``: add
    pandas' final constant (False while columns remain to be fed)."""
    n = len(rows) if rows is not None else (len(columns[0]) if columns else len(state))
    out = np.full(n, 0x345678, dtype=np.uint64) if state is None else np.asarray(state, dtype=np.uint64)
    mults = _multipliers(num_items)[first:first + len(columns)]
    buf = np.empty(min(n, _CHUNK), dtype=np.uint64)
    tmp = np.empty_like(buf)
    for s in range(0, n, _CHUNK):
        e = min(s + _CHUNK, n)
        o, b, t = out[s:e], buf[: e - s], tmp[: e - s]
        sel = rows[s:e] if rows is not None else slice(s, e)
        for col, mult in zip(columns, mults):
            _load(b, col[sel])
            _mix(b, t)
            o ^= b
            o *= mult
    if finish:
        out += np.uint64(97531)
    return out


def canonical_column(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list | None]:
    """(array for :func:`row_hashes`, sorted distinct values for a string column else None)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)  # only the values matter, not the index
    if pd.api.types.is_datetime64_any_dtype(s):  # integer time in the column's own unit
        return (s.dt.tz_convert("UTC") if s.dt.tz is not None else s).astype("int64").to_numpy(), None
    if pd.api.types.is_bool_dtype(s):
        return s.astype(bool).to_numpy(), None
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float).to_numpy(np.float64), None
    codes, uniques = pd.factorize(s.astype(str).to_numpy(), sort=True)
    return codes.astype(np.int64), list(uniques)


def digest(columns: Sequence[str], string_uniques: Sequence[Sequence], hashes: np.ndarray | None) -> str:
    """sha256 of the header, the string columns' distinct values (in column order) and the sorted row hashes
    (``hashes`` is sorted in place; None for an empty table, whose digest is the header's alone)."""
    h = hashlib.sha256()
    h.update(("|".join(columns) + "\n").encode())
    if hashes is None:
        return h.hexdigest()
    for uniques in string_uniques:
        h.update(("\x1f".join(map(str, uniques)) + "\n").encode("utf-8"))
    hashes.sort()
    h.update(memoryview(np.ascontiguousarray(hashes)).cast("B"))  # the bytes of tobytes(), without the copy
    return h.hexdigest()


def table_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """sha256 of a row-order-independent canonical serialisation of ``frame[columns]`` (see module docstring)."""
    if frame is None or len(frame) == 0:
        return digest(columns, [], None)
    canon = [canonical_column(frame[c]) for c in columns]
    hashes = row_hashes([a for a, _ in canon], len(columns))
    return digest(columns, [u for _, u in canon if u is not None], hashes)
