"""Cheap PNG rendering for materialisation metadata: Agg canvas, small figures, a figure cache.

matplotlib is imported lazily (the first chart of a process pays for it, nothing else does) and
through ``matplotlib.figure`` + the Agg canvas only, never ``pyplot`` (no GUI backend, no global
figure manager). Figures are cached per (name, size) together with their artists: a later render of the same chart
in the same process only updates the data of the cached bars, lines and texts (see :func:`chart`).

A chart goes into Dagster metadata as markdown with an embedded data URI, which the UI renders
as an image: ``dg.MetadataValue.md("![alt](data:image/png;base64,…)")``.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

#: Default figure size: 640 x 300 pixels at 80 dpi (8 x 3.75 inches).
WIDTH_PX, HEIGHT_PX, DPI = 640, 300, 80

#: Colours shared by every chart (regime labels and decisions).
REGIME_COLORS = {"calm": "#2e7d32", "normal": "#1565c0", "volatile": "#c62828"}
ENTRY_COLOR, REJECT_COLOR, NA_COLOR = "#2e7d32", "#9e9e9e", "#e0e0e0"

_lock = threading.Lock()
_figures: dict[tuple[str, int, int, int], "_Cached"] = {}


@dataclass
class RenderStats:
    """Per-process render counters (what ``measure`` and the tests read)."""

    renders: int = 0
    figures_built: int = 0
    seconds: float = 0.0
    last: dict[str, float] = field(default_factory=dict)


STATS = RenderStats()


def _mpl():
    """(Figure, FigureCanvasAgg), importing matplotlib on first use with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no-op when another non-GUI backend is already set
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


@dataclass
class _Cached:
    fig: Any
    structure: Any = None
    artists: dict = field(default_factory=dict)


@contextmanager
def chart(
    name: str,
    structure: Any,
    build: Callable[[Any], dict],
    width_px: int = WIDTH_PX,
    height_px: int = HEIGHT_PX,
    dpi: int = DPI,
) -> Iterator[tuple[Any, dict]]:
    """``(figure, artists)`` of chart ``name``, held under a lock while the caller updates and saves it.

    The figure is built once per process and size. ``build(fig)`` creates the axes and artists and
    returns them by name; it runs again only when ``structure`` (e.g. the number of bars) changes.
    Otherwise the caller only updates data on the cached artists (``set_height``, ``set_data``,
    ``set_text``…), which skips the costly part of a matplotlib render: creating axes, ticks and
    text objects.
    """
    key = (name, width_px, height_px, dpi)
    with _lock:
        entry = _figures.get(key)
        if entry is None:
            Figure, FigureCanvasAgg = _mpl()
            fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
            FigureCanvasAgg(fig)
            entry = _figures[key] = _Cached(fig)
        if entry.structure != structure or not entry.artists:
            entry.fig.clear()
            entry.artists = build(entry.fig)
            entry.structure = structure
            STATS.figures_built += 1
        yield entry.fig, entry.artists


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes, exactly its pixel size (no tight bbox: that costs a second draw).
    zlib level 1: a flat-colour chart compresses nearly as well and encodes several times faster."""
    buf = io.BytesIO()
    fig.canvas.print_png(buf, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def markdown_image(png: bytes, alt: str = "chart", caption: str | None = None) -> str:
    """Markdown the Dagster UI renders as an image (and an optional caption line below it)."""
    md = f"![{alt}]({data_uri(png)})"
    return md + (f"\n\n{caption}" if caption else "")


@contextmanager
def timed_render(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        STATS.renders += 1
        STATS.seconds += elapsed
        STATS.last[name] = elapsed


def clear_cache() -> None:
    """Drop the cached figures (tests; a long-lived process never needs to)."""
    with _lock:
        _figures.clear()
