"""Cheap PNG rendering for materialisation metadata: a small 2-D canvas on Pillow.

The charts are a handful of rectangles, lines, dots and labels, so they are drawn directly with
``PIL.ImageDraw`` (Pillow is imported lazily; the import costs ≈ 20 ms, where matplotlib's
cost 0.4–0.9 s in every fresh run worker). Text uses Pillow's bundled scalable font
(``ImageFont.load_default(size)``), so no system font is needed.

:class:`Canvas` is the image; :class:`Frame` maps data coordinates into a pixel box of it (an
"axes"). A chart goes into Dagster metadata as markdown with an embedded data URI, which the UI
renders as an image: ``dg.MetadataValue.md("![alt](data:image/png;base64,…)")``.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

#: Default image size in pixels.
WIDTH_PX, HEIGHT_PX = 640, 300

#: Colours shared by every chart (regime labels and decisions).
REGIME_COLORS = {"calm": "#2e7d32", "normal": "#1565c0", "volatile": "#c62828"}
ENTRY_COLOR, REJECT_COLOR, NA_COLOR = "#2e7d32", "#9e9e9e", "#e0e0e0"
TEXT_COLOR, AXIS_COLOR, GRID_COLOR = "#212121", "#424242", "#eeeeee"

#: Font sizes in pixels.
TITLE_PX, LABEL_PX, TICK_PX = 11, 10, 9


@dataclass
class RenderStats:
    """Per-process render counters (what ``measure`` and the tests read)."""

    renders: int = 0
    seconds: float = 0.0
    last: dict[str, float] = field(default_factory=dict)


STATS = RenderStats()


def rgb(color: str, alpha: float = 1.0, over: tuple[int, int, int] = (255, 255, 255)) -> tuple[int, int, int]:
    """``#rrggbb`` as an RGB tuple; with ``alpha`` < 1, blended over ``over`` (white) — the charts
    draw translucent bands first, on the white background, so an opaque blend is the same picture."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return tuple(round(alpha * c + (1 - alpha) * o) for c, o in zip((r, g, b), over))  # type: ignore[return-value]


@functools.lru_cache(maxsize=None)
def font(size: int):
    """Pillow's bundled scalable font at ``size`` pixels (one object per size and process)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values (steps of 1, 2, 2.5 or 5 × 10^k) within [lo, hi]."""
    span = hi - lo
    if not (span > 0) or not math.isfinite(span):
        return [lo] if math.isfinite(lo) else []
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float) -> str:
    return f"{value:g}"


@dataclass
class Frame:
    """A plot box ``(left, top, right, bottom)`` in pixels and the data limits it shows."""

    left: float
    top: float
    right: float
    bottom: float
    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)

    def x(self, value: float) -> float:
        x0, x1 = self.xlim
        return self.left + (value - x0) / ((x1 - x0) or 1.0) * (self.right - self.left)

    def y(self, value: float) -> float:
        y0, y1 = self.ylim
        return self.bottom - (value - y0) / ((y1 - y0) or 1.0) * (self.bottom - self.top)

    def clip_y(self, py: float) -> float:
        return min(max(py, self.top), self.bottom)

    def clip_x(self, px: float) -> float:
        return min(max(px, self.left), self.right)


class Canvas:
    """An RGB image with the few drawing primitives the charts need (pixel coordinates)."""

    def __init__(self, width: int = WIDTH_PX, height: int = HEIGHT_PX, background: str = "#ffffff"):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (width, height), rgb(background))
        self.draw = ImageDraw.Draw(self.image)

    # -- shapes -----------------------------------------------------------------------------

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Any) -> None:
        """A filled rectangle between two corners (any order); at least one pixel wide and high."""
        xa, xb = sorted((x0, x1))
        ya, yb = sorted((y0, y1))
        self.draw.rectangle((round(xa), round(ya), max(round(xa), round(xb) - 1), max(round(ya), round(yb) - 1)),
                            fill=_colour(fill))

    def line(self, points: Sequence[tuple[float, float]], fill: Any, width: int = 1) -> None:
        if len(points) >= 2:
            self.draw.line([(round(x), round(y)) for x, y in points], fill=_colour(fill), width=width, joint="curve")

    def dashed(self, x0: float, y0: float, x1: float, y1: float, fill: Any, width: int = 1, dash: int = 4, gap: int = 3) -> None:
        """A dashed straight line (the gate and threshold lines)."""
        length = math.hypot(x1 - x0, y1 - y0)
        if length == 0:
            return
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        pos = 0.0
        while pos < length:
            end = min(pos + dash, length)
            self.line([(x0 + ux * pos, y0 + uy * pos), (x0 + ux * end, y0 + uy * end)], fill, width)
            pos = end + gap

    def dot(self, x: float, y: float, radius: float, fill: Any) -> None:
        self.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_colour(fill))

    # -- text -------------------------------------------------------------------------------

    def text(self, x: float, y: float, text: str, size: int = LABEL_PX, fill: Any = TEXT_COLOR, anchor: str = "la") -> None:
        """``text`` at (x, y); ``anchor`` as in Pillow: horizontal l/m/r, vertical a (top)/m/s/d."""
        if text:
            self.draw.text((round(x), round(y)), text, font=font(size), fill=_colour(fill), anchor=anchor)

    def text_vertical(self, x: float, y: float, text: str, size: int = LABEL_PX, fill: Any = TEXT_COLOR, anchor: str = "rm") -> None:
        """``text`` rotated 90° (reading bottom to top). ``anchor`` places the rotated box: its
        horizontal letter refers to x (l/m/r), its vertical one to y (a = top, m, d = bottom)."""
        if not text:
            return
        from PIL import Image, ImageDraw

        f = font(size)
        left, top, right, bottom = f.getbbox(text)
        mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
        ImageDraw.Draw(mask).text((-left, -top), text, font=f, fill=255)
        mask = mask.transpose(Image.Transpose.ROTATE_90)
        w, h = mask.size
        px = {"l": x, "m": x - w / 2, "r": x - w}[anchor[0]]
        py = {"a": y, "m": y - h / 2, "d": y - h}[anchor[1]]
        self.image.paste(_colour(fill), (round(px), round(py)), mask)

    def text_width(self, text: str, size: int = LABEL_PX) -> float:
        return font(size).getlength(text)

    # -- axes -------------------------------------------------------------------------------

    def box(self, frame: Frame, colour: str = AXIS_COLOR) -> None:
        """The frame's outline (the four spines of a plot)."""
        self.draw.rectangle((round(frame.left), round(frame.top), round(frame.right), round(frame.bottom)), outline=_colour(colour))

    def yticks(self, frame: Frame, ticks: Sequence[float], labels: Sequence[str] | None = None, size: int = TICK_PX,
               grid: str | None = None) -> float:
        """Tick marks and labels on the left edge (and horizontal grid lines); returns the widest label."""
        labels = [tick_label(t) for t in ticks] if labels is None else labels
        widest = 0.0
        for value, label in zip(ticks, labels):
            py = frame.y(value)
            if py < frame.top - 0.5 or py > frame.bottom + 0.5:
                continue
            if grid:
                self.line([(frame.left, py), (frame.right, py)], grid)
            self.line([(frame.left - 3, py), (frame.left, py)], AXIS_COLOR)
            self.text(frame.left - 5, py, label, size, anchor="rm")
            widest = max(widest, self.text_width(label, size))
        return widest

    def xticks(self, frame: Frame, ticks: Sequence[float], labels: Sequence[str] | None = None, size: int = TICK_PX,
               grid: str | None = None, show_labels: bool = True, vertical: bool = False) -> None:
        """Tick marks and labels on the bottom edge (labels may hold several lines, or read upwards)."""
        labels = [tick_label(t) for t in ticks] if labels is None else labels
        for value, label in zip(ticks, labels):
            px = frame.x(value)
            if px < frame.left - 0.5 or px > frame.right + 0.5:
                continue
            if grid:
                self.line([(px, frame.top), (px, frame.bottom)], grid)
            self.line([(px, frame.bottom), (px, frame.bottom + 3)], AXIS_COLOR)
            if not show_labels:
                continue
            if vertical:
                self.text_vertical(px, frame.bottom + 5, label, size, anchor="ma")
            else:
                for i, part in enumerate(label.split("\n")):
                    self.text(px, frame.bottom + 5 + i * (size + 2), part, size, anchor="ma")

    def legend(self, right: float, bottom: float, entries: Sequence[tuple[str, str]], size: int = TICK_PX) -> None:
        """Colour swatches and labels, stacked upwards from the lower-right corner (right, bottom)."""
        for i, (colour, label) in enumerate(reversed(entries)):
            y = bottom - i * (size + 5) - size / 2 - 2
            x_text = right - self.text_width(label, size)
            self.text(x_text, y, label, size, anchor="lm")
            self.rect(x_text - 18, y - 4, x_text - 4, y + 4, colour)

    # -- output -----------------------------------------------------------------------------

    def png(self) -> bytes:
        """The image as PNG bytes; zlib level 1: a flat-colour chart compresses nearly as well and
        encodes several times faster."""
        buf = io.BytesIO()
        self.image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()


def _colour(value: Any) -> Any:
    return rgb(value) if isinstance(value, str) and value.startswith("#") else value


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def markdown_image(png: bytes, alt: str = "chart", caption: str | None = None, title: str | None = None) -> str:
    """Markdown the Dagster UI renders as an image, with an optional bold title line above it (text
    a reader and a browser test can read, unlike the pixels) and a caption line below it."""
    md = f"![{alt}]({data_uri(png)})"
    return (f"**{title}**\n\n" if title else "") + md + (f"\n\n{caption}" if caption else "")


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
