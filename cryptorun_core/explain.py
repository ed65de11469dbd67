"""explain.json of a scan cycle (SPEC §9): the document, its ``data_quality`` section and the rounding
of its numbers (as in the CSVs, :data:`cryptorun_core.artifacts.ROUNDING`; other floats to 6 decimals).

The scan (:mod:`cryptorun_core.engine`) computes; this module only formats what it computed.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cryptorun_core.artifacts import round_named
from cryptorun_core.config import FACTORS, TIMEFRAME_KEYS, AppConfig
from cryptorun_core.gates import GATES, tier_thresholds
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.quality import source_file_problems
from cryptorun_core.tablehash import table_hash
from cryptorun_core.timefmt import iso_z

#: decimals of each gate's value and threshold in explain.json (None: an integer)
GATE_ROUNDING = {"history": None, "freshness": 2, "score": 1, "vadr": 2, "spread": 1, "depth": 0, "fatigue": 4}


def json_number(x: Any, digits: int | None = 6) -> Any:
    """JSON-ready rounded number (None for NaN)."""
    if x is None or isinstance(x, (bool, np.bool_)):
        return None if x is None else bool(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    if not math.isfinite(f):
        return None
    if digits is None:
        return int(round(f))
    return round(f, digits) if digits > 0 else int(round(f))


_r = json_number  # short name for the tables below


def _rn(name: str, x: Any) -> Any:
    v = round_named(name, x)
    return _r(v) if isinstance(v, float) else v



def config_hash(config: AppConfig) -> str:
    """sha256 of the settings that shape the numbers; machine-local paths are left out so the same
    cycle computed in two checkouts (or artifact folders) carries the same hash."""
    settings = config.model_dump(mode="json")
    settings["global"] = {k: v for k, v in settings.get("global", settings.get("global_", {})).items() if k != "artifacts_dir"}
    settings.pop("global_", None)
    settings["market"]["replay"].pop("path", None)
    settings["market"]["ccxt"].pop("ohlcv_cache_dir", None)
    settings["market"].pop("record", None)  # where a cycle is archived shapes no number
    settings.pop("executor", None)  # where the steps ran does not shape a number
    settings.pop("notifications", None)  # nor who is told about the result
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: notes collect_snapshot writes in the fetch log of an ok OHLCV answer → action
SOURCE_NOTES = {"bar_after_as_of": "rejected", "out_of_order": "repaired"}


def data_quality(bar_issues: pd.DataFrame, metrics: Mapping[str, Any], snapshot: MarketSnapshot, symbols: list[str],
                 venues: tuple[str, ...], choice: Mapping[str, Any]) -> dict:
    """explain.json ``data_quality``: what was rejected or repaired before scoring, with reason codes.

    - ``bars``: per (venue, symbol) of the ranked universe, the bar issues of
      :func:`cryptorun_core.quality.sanitize_bars` (``nan_price``, ``bar_after_as_of``, …);
    - ``books``: per (venue, symbol) evaluated, invalid books (``crossed_book``, ``empty_book``,
      ``one_sided_book``, ``bad_levels``, ``absurd_spread``: action ``rejected``) and book requests
      that failed (the fetch reason code: ``venue_down``, ``empty_book``, …: action ``missing``);
    - ``unavailable``: evaluated symbols with no bars on any job venue (``not_listed`` when no job
      venue lists them any more, else ``no_bars``);
    - ``files``: inputs the source could not read (fetch log ``kind`` = ``file``: a replay file
      that is empty, corrupt or a symlink out of its folder), per (venue, symbol), with the reason
      code and a sentence naming the file: that symbol was skipped;
    - ``fetch_errors``: failed requests per venue, kind and reason code;
    - ``counts``: entries per reason code.
    """
    # bars after T in the snapshot itself are dropped silently: reporting them would make explain
    # depend on data after T (SPEC §1); a source serving them is caught (and noted) by collect_snapshot
    bar_rows = [
        {k: (int(v) if k == "n_bars" else v) for k, v in r.items()}
        for r in bar_issues.to_dict("records") if r["reason"] != "bar_after_as_of"
    ] if len(bar_issues) else []
    book_rows: list[dict] = []
    wanted = set(symbols)
    m_valid = np.asarray(metrics["valid"], dtype=bool)
    if len(m_valid):
        m_symbol = np.asarray(metrics["symbol"], dtype=object)
        bad = np.flatnonzero(~m_valid & np.array([x in wanted for x in m_symbol], dtype=bool))
        book_rows += [{"venue": v, "symbol": sym, "reason": r, "action": "rejected"} for v, sym, r in zip(
            np.asarray(metrics["venue"], dtype=object)[bad], m_symbol[bad], np.asarray(metrics["invalid_reason"], dtype=object)[bad])]
    f = snapshot.fetches
    fetch_errors: dict[str, dict[str, dict[str, int]]] = {}
    file_rows = source_file_problems(f, venues)
    if f is not None and len(f) and {"venue", "symbol", "kind", "ok", "error"}.issubset(f.columns):
        ok = f["ok"].astype(bool).to_numpy()
        on_venue = f["venue"].astype(str).isin(venues).to_numpy()
        kind = f["kind"].to_numpy(object)
        failed = f[~ok & on_venue]
        books_failed = failed[(failed["kind"] == "book").to_numpy() & failed["symbol"].isin(wanted).to_numpy()]
        book_rows += [{"venue": str(v), "symbol": str(s), "reason": str(e), "action": "missing"}
                      for v, s, e in zip(books_failed["venue"], books_failed["symbol"], books_failed["error"])]
        if "detail" in f.columns:  # contract breaches collect_snapshot repaired and noted per answer
            ok_rows = np.flatnonzero(ok & (kind == "ohlcv") & on_venue)
            details = f["detail"].to_numpy(object)[ok_rows]
            # only answers whose detail names a note (the others cannot carry one)
            noted = [i for i, d in zip(ok_rows, details) if isinstance(d, str) and any(k in d for k in SOURCE_NOTES)]
            for v, sym, d in zip(f["venue"].to_numpy(object)[noted], f["symbol"].to_numpy(object)[noted], f["detail"].to_numpy(object)[noted]):
                for note in str(d).split("; "):
                    reason = note.split(":", 1)[0]
                    if reason in SOURCE_NOTES:
                        bar_rows.append({"venue": str(v), "symbol": str(sym), "reason": reason,
                                         "action": SOURCE_NOTES[reason], "n_bars": None, "first_timestamp": None})
        bar_rows.sort(key=lambda r: (r["venue"], r["symbol"], r["reason"], r["action"]))
        if len(failed):
            for (v, kind_, err), n in failed.groupby(["venue", "kind", "error"], sort=True).size().items():
                fetch_errors.setdefault(str(v), {}).setdefault(str(kind_), {})[str(err)] = int(n)
    book_rows.sort(key=lambda r: (r["venue"], r["symbol"], r["reason"]))
    listed: set[str] = set()
    m = snapshot.markets
    if m is not None and len(m):
        listed = set(m.loc[m["venue"].astype(str).isin(venues), "symbol"].astype(str))
    unavailable = [
        {"symbol": s, "reason": "no_bars" if s in listed else "not_listed"}
        for s, n in zip(choice["symbol"], choice["n_bars"]) if int(n) == 0
    ]
    counts: dict[str, int] = {}
    for r in bar_rows + book_rows + unavailable + file_rows:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    return {"bars": bar_rows, "books": book_rows, "unavailable": unavailable, "files": file_rows, "fetch_errors": fetch_errors,
            "counts": dict(sorted(counts.items()))}



def explain_document(t, job, regime_used, weight_blend, tf_weights, config, settings, vthr, ev, gate_results, contrib, snapshot,
             input_hashes, ranking, regime) -> dict:
    thresholds = tier_thresholds(config, settings, vthr)
    first = {g: 0 for g in GATES}
    every = {g: 0 for g in GATES}
    reasons: dict[str, int] = {}
    for res in gate_results:
        failed = [r for r in res if not r["passed"]]
        if failed:
            first[failed[0]["gate"]] += 1
            reasons[failed[0]["reason"]] = reasons.get(failed[0]["reason"], 0) + 1
        for r in failed:
            every[r["gate"]] += 1

    symbols = []
    # ev: the evaluated table's columns (name → array); rows as Python scalars, as DataFrame.to_dict("records") gives them
    names = list(ev)
    records = (dict(zip(names, vals)) for vals in zip(*(np.asarray(ev[c]).tolist() for c in names)))
    for i, row in enumerate(records):
        gates = [
            {**g, "value": _r(g["value"], GATE_ROUNDING[g["gate"]]), "threshold": _r(g["threshold"], GATE_ROUNDING[g["gate"]])}
            for g in gate_results[i]
        ]
        factors = {}
        for f in FACTORS:
            col = "momentum_core" if f == "momentum" else f
            entry = {"value": _rn(col, row[col]), "weight": _r(weight_blend[f]), "contribution": _r(contrib[f][i], 3)}
            if f != "momentum":
                entry["raw"] = _rn(col, row[f"{f}_raw"])
            factors[f] = entry
        symbols.append(
            {
                "rank": None if pd.isna(row["rank"]) else int(row["rank"]),
                "symbol": row["symbol"],
                "tier": row["tier"],
                "venue": row["venue"],
                "sources": int(row["sources"]),
                "fresh": row["fresh"],
                "depth_badge": row["depth_badge"],
                "score": _rn("score", row["score"]),
                "factors": factors,
                "residualized": bool(row["residualized"]),
                "momentum": {
                    "z": {k: _r(row[f"z_{k}"], 4) for k in TIMEFRAME_KEYS},
                    "raw": _r(row["momentum_raw"], 4),
                    "accel": _r(row["accel"], 4),
                    "sigma_1h": _r(row["sigma_1h"], 6),
                    "r_24h": _r(row["r_24h"], 4),
                },
                "technical_parts": {"rsi_4h": _r(row["rsi_4h"], 1), "adx_1h": _r(row["adx_1h"], 1),
                                    "range_position": _r(row["range_position"], 1)},
                "volume_surge": _r(row["volume_surge"], 3),
                "quality_parts": {k[2:]: _r(row[k], 1) for k in ("q_tier", "q_spread", "q_depth", "q_completeness", "q_sources")},
                "vadr": {"value": _rn("vadr", row["vadr"]), "frozen": bool(row["vadr_frozen"]), "min": _rn("vadr_min", row["vadr_min"]),
                         "complete_prior_periods": int(row["complete_prior_periods"])},
                "book": {"has_book": bool(row["has_book"]), "invalid_reason": row["book_invalid_reason"] if not row["has_book"] else None,
                         "spread_bps": _rn("spread_bps", row["spread_bps"]), "depth_usd": _rn("depth_usd", row["depth_usd"]),
                         "bid_depth_usd": _rn("bid_depth_usd", row["bid_depth_usd"]),
                         "ask_depth_usd": _rn("ask_depth_usd", row["ask_depth_usd"]),
                         "book_age_s": _rn("book_age_s", row["book_age_s"])},
                "bars": {"n_bars": int(row["n_bars"]), "bar_lag_bars": _rn("bar_lag_bars", row["bar_lag_bars"])},
                "gates": gates,
                "decision": row["decision"],
                "primary_reason": row["primary_reason"],
            }
        )

    rank_cols = [c for c in ("rank", "symbol", "adv_usd", "tier", "venues", "n_periods", "eligible", "exclusion_reason", "segment")
                 if c in ranking.columns]
    regime_json = json.dumps({k: regime[k] for k in regime}, sort_keys=True, default=str)
    return {
        "as_of": iso_z(t),
        "job": job.name,
        "universe": job.config.universe,
        "source": snapshot.source,
        "regime": regime_used,
        "weights": {"factors": {f: _r(weight_blend[f]) for f in FACTORS},
                    "momentum_timeframes": {k: _r(tf_weights[k]) for k in TIMEFRAME_KEYS}},
        "thresholds": {
            "score_min": _r(settings.score_min),
            "vadr": {**{k: (_r(v, 4) if isinstance(v, float) else v) for k, v in vthr.to_dict().items()},
                     "use_percentile": bool(settings.vadr_use_percentile),
                     "tier_min": {n: _r(th.vadr_tier_min) for n, th in thresholds.items()},
                     "vadr_min": {n: _r(th.vadr_min, 4) for n, th in thresholds.items()}},
            "spread_max_bps": {n: _r(th.spread_max_bps) for n, th in thresholds.items()},
            "depth_min_usd": {n: _r(th.depth_min_usd) for n, th in thresholds.items()},
            "spread_multiplier": _r(settings.spread_multiplier),
            "depth_multiplier": _r(settings.depth_multiplier),
            "history_min_bars": int(config.gates.history_min_bars),
            "fresh_max_bar_lag": int(config.gates.fresh_max_bar_lag),
            "fresh_max_book_age_s": _r(config.gates.fresh_max_book_age_s),
            "depth_band_pct": _r(config.gates.depth_band_pct),
            "fatigue": {"r24h_above": _r(config.gates.fatigue.r24h_above), "rsi4h_above": _r(config.gates.fatigue.rsi4h_above)},
        },
        "hashes": {
            "config": config_hash(config),
            "bars": input_hashes["bars"],
            "books": input_hashes["books"],
            "ranking": table_hash(ranking, rank_cols),
            "regime": hashlib.sha256(regime_json.encode("utf-8")).hexdigest(),
        },
        "counts": {
            "evaluated": int(len(ev["decision"])),
            "entries": int((ev["decision"] == "entry").sum()),
            "rejected": int((ev["decision"] != "entry").sum()),
            "rejections_first_failure": first,
            "rejections_all_failures": every,
            "primary_reasons": dict(sorted(reasons.items())),
        },
        "venue_health": snapshot.health or {},
        "symbols": symbols,
    }

