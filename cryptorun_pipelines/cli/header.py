"""The status header printed on top of every command.

It is built from the newest materialisations on disk (SPEC §9 folders under ``artifacts_dir``):
the newest ``regime.json`` gives the regime, its confidence and as-of time; the newest
``explain.json`` gives per-venue API health (status and last latency), the average latency and
the number of data sources. Without artifacts the header says "no data yet".
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from cryptorun_pipelines.cli.render import PLAIN, WIDTH, Style, fit, fmt_iso

OFFLINE_SOURCES = ("simulated", "replay")
FOLDER_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$")


def artifact_folders(artifacts_dir: str | Path) -> list[Path]:
    """Artifact folders, newest first (their names sort in time order)."""
    root = Path(artifacts_dir)
    try:
        entries = [p for p in root.iterdir() if p.is_dir() and FOLDER_RE.match(p.name)]
    except OSError:
        return []
    return sorted(entries, key=lambda p: p.name, reverse=True)


def newest_file(artifacts_dir: str | Path, names: str | Sequence[str]) -> Path | None:
    """The newest artifact file with one of ``names``."""
    wanted = (names,) if isinstance(names, str) else tuple(names)
    for folder in artifact_folders(artifacts_dir):
        for name in wanted:
            path = folder / name
            if path.is_file():
                return path
    return None


def read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class VenueStatus:
    venue: str
    status: str  # ok | degraded | down | unknown
    last_latency_ms: float | None = None
    avg_latency_ms: float | None = None


@dataclass
class Header:
    regime: str | None = None
    confidence: float | None = None
    regime_as_of: str | None = None
    regime_file: str | None = None
    scan_as_of: str | None = None
    scan_file: str | None = None
    venues: list[VenueStatus] = field(default_factory=list)
    avg_latency_ms: float | None = None
    market_source: str | None = None
    sources: int | None = None
    configured_venues: int | None = None

    @property
    def has_data(self) -> bool:
        return self.regime is not None or self.scan_file is not None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["has_data"] = self.has_data
        return out


def _find_key(obj: Any, keys: Iterable[str], depth: int = 0) -> Any:
    """First value under one of ``keys`` in a nested dict (breadth-first, shallow)."""
    if not isinstance(obj, dict) or depth > 3:
        return None
    keys = tuple(keys)
    for key in keys:
        if key in obj and obj[key] not in (None, {}, []):
            return obj[key]
    for value in obj.values():
        if isinstance(value, dict):
            found = _find_key(value, keys, depth + 1)
            if found is not None:
                return found
    return None


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _venue_statuses(explain: dict[str, Any], venues: Sequence[str]) -> list[VenueStatus]:
    health = _find_key(explain, ("health", "venue_health", "api_health"))
    rows: dict[str, VenueStatus] = {}
    if isinstance(health, dict):
        items = [(k, v) for k, v in health.items() if isinstance(v, dict)]
    elif isinstance(health, list):
        items = [(str(v.get("venue")), v) for v in health if isinstance(v, dict)]
    else:
        items = []
    for venue, h in items:
        rows[venue] = VenueStatus(
            venue=venue,
            status=str(h.get("status") or "unknown"),
            last_latency_ms=_float(h.get("last_latency_ms", h.get("latency_ms"))),
            avg_latency_ms=_float(h.get("avg_latency_ms")),
        )
    if not items and str(explain.get("source", "")) in OFFLINE_SOURCES:
        # simulated/replayed data answers for every configured venue without network requests
        return [VenueStatus(venue=v, status="ok") for v in venues]
    order = list(venues) + sorted(set(rows) - set(venues))
    return [rows.get(v) or VenueStatus(venue=v, status="down" if items else "unknown") for v in order]


def _symbols(explain: dict[str, Any]) -> list[dict[str, Any]]:
    syms = explain.get("symbols") or explain.get("evaluated") or []
    if isinstance(syms, dict):
        syms = [dict(v, symbol=k) if isinstance(v, dict) else {"symbol": k} for k, v in syms.items()]
    return [s for s in syms if isinstance(s, dict)]


def build_header(artifacts_dir: str | Path, venues: Sequence[str] = ()) -> Header:
    """Collect the header from the newest ``regime.json`` and ``explain.json``."""
    header = Header(configured_venues=len(venues) or None)
    regime_path = newest_file(artifacts_dir, "regime.json")
    regime = read_json(regime_path)
    if regime:
        header.regime = regime.get("regime")
        header.confidence = _float(regime.get("confidence"))
        header.regime_as_of = regime.get("as_of") or regime.get("timestamp")
        header.regime_file = str(regime_path)
    explain_path = newest_file(artifacts_dir, "explain.json")
    explain = read_json(explain_path)
    if explain:
        header.scan_file = str(explain_path)
        header.scan_as_of = explain.get("as_of")
        header.market_source = explain.get("source")
        header.venues = _venue_statuses(explain, venues)
        # average over the venues that answered (a down venue has no meaningful latency)
        avgs = [v.avg_latency_ms for v in header.venues if v.avg_latency_ms and v.status != "down"]
        lats = [v.last_latency_ms for v in header.venues if v.last_latency_ms and v.status != "down"]
        pool = avgs or lats
        header.avg_latency_ms = sum(pool) / len(pool) if pool else None
        # data sources: the most venues any symbol was read from this cycle (SPEC §3 "Sources n")
        counts = [int(s["sources"]) for s in _symbols(explain) if _float(s.get("sources")) is not None]
        up = [v for v in header.venues if v.status in ("ok", "degraded")]
        header.sources = max(counts) if counts else (len(up) if up else None)
        if header.regime is None:
            used = _find_key(explain, ("regime",))
            if isinstance(used, dict):
                header.regime = used.get("label") or used.get("regime")
                header.confidence = _float(used.get("confidence"))
                header.regime_as_of = used.get("as_of")
    return header


def _latency(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f}ms"


def render_header(header: Header, style: Style = PLAIN, width: int = WIDTH) -> list[str]:
    """Regime line and API health line(s), each at most ``width`` columns."""
    if not header.has_data:
        return [style("CryptoRun", "bold") + " · " + style("no data yet", "dim") + " (run `cryptorun schedule run scan.hot`)"]
    if header.regime:
        conf = f"{header.confidence:.2f}" if header.confidence is not None else "-"
        regime = style.status(str(header.regime))
        line1_plain = f"Regime {header.regime} (confidence {conf}) as of {fmt_iso(header.regime_as_of)}"
        if header.scan_as_of:
            line1_plain += f" · scan {fmt_iso(header.scan_as_of)}"
        line1_plain = fit(line1_plain, width)
        line1 = line1_plain.replace(f"Regime {header.regime}", f"{style('Regime', 'bold')} {regime}", 1)
    else:
        line1 = style("Regime", "bold") + " no data yet" + (f" · scan {fmt_iso(header.scan_as_of)}" if header.scan_as_of else "")
    if not header.venues:
        return [line1, style("APIs", "bold") + " no scan yet"]
    # API health: one line, or two when the latencies do not fit beside the totals
    parts = []
    for v in header.venues:
        lat = f" {_latency(v.last_latency_ms)}" if v.last_latency_ms is not None else ""
        parts.append((f"{v.venue} {v.status}{lat}", v))
    tail = f"avg {_latency(header.avg_latency_ms)} · sources {header.sources if header.sources is not None else '-'}"
    if header.configured_venues:
        tail += f"/{header.configured_venues}"
    if header.market_source in OFFLINE_SOURCES:
        tail += f" ({header.market_source})"
    venues_full = "APIs " + " · ".join(p for p, _ in parts)
    if len(venues_full) + 3 + len(tail) <= width:
        plain_lines = [venues_full + " · " + tail]
    elif len(venues_full) <= width:
        plain_lines = [venues_full, "     " + tail]
    else:  # too many venues for latencies: statuses only
        plain_lines = [fit("APIs " + " · ".join(f"{v.venue} {v.status}" for _, v in parts), width), "     " + tail]
    api_lines = []
    for plain in plain_lines:
        line = fit(plain, width)
        if style.colour:
            line = line.replace("APIs", style("APIs", "bold"), 1)
            for _, v in parts:
                line = line.replace(f"{v.venue} {v.status}", f"{v.venue} {style.status(v.status)}", 1)
        api_lines.append(line)
    return [line1, *api_lines]
