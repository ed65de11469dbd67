"""Live progress of a Dagster run executed in this process, from the instance's event listener.

``execute_in_process`` runs the job in the calling thread, and the instance calls its listeners
for every event of the run right after storing it. So the monitor sees each step start and finish
as it happens, without reading the event log back (no polling queries against the SQLite storage
the run is writing). It reports them with the elapsed time: as plain lines when the stream is not a
terminal, otherwise on one updating line that a small ticker thread redraws every ``interval``
seconds (no storage access there either).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from cryptorun_pipelines.cli.render import WIDTH, Style, fit, fmt_duration

if TYPE_CHECKING:  # pragma: no cover
    from dagster import DagsterInstance

def error_message(err: Any) -> str:
    """First line of the innermost cause of a Dagster ``SerializableErrorInfo`` (the user's error,
    not Dagster's "Error occurred while executing op" wrapper)."""
    if err is None:
        return ""
    while getattr(err, "cause", None) is not None:
        err = err.cause
    lines = (getattr(err, "message", "") or "").strip().splitlines()
    return lines[0] if lines else getattr(err, "cls_name", "") or "error"


@dataclass
class StepEvent:
    kind: str  # started | finished | failed | skipped | retry
    step: str
    elapsed_s: float
    message: str = ""


@dataclass
class Progress:
    """What the monitor saw; the renderer turns it into a line."""

    label: str
    total: int | None = None
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    materialized: int = 0

    def line(self, elapsed_s: float) -> str:
        done = len(self.finished) + len(self.failed)
        total = f"/{self.total}" if self.total else ""
        now = ", ".join(self.running) if self.running else ("finishing" if done else "starting")
        return f"{self.label}  steps {done}{total}  {fmt_duration(elapsed_s)}  {now}"


def format_event(event: StepEvent, style: Style) -> str:
    mark = {"started": "▸", "finished": "✓", "failed": "✗", "skipped": "-", "retry": "↻"}.get(event.kind, "·")
    colour = {"finished": "green", "failed": "red", "retry": "yellow", "skipped": "dim"}.get(event.kind)
    text = fit(f"  {fmt_duration(event.elapsed_s):>6}  {mark} {event.kind:<8} {event.step}"
               + (f" — {event.message}" if event.message else ""), WIDTH)
    return style(text, colour) if colour else text


class RunMonitor:
    """Listens to the events of run ``run_id`` (about to be executed in this process) and prints progress."""

    def __init__(
        self,
        instance: "DagsterInstance",
        run_id: str,
        out: IO[str],
        *,
        label: str,
        tty: bool,
        style: Style,
        interval: float = 0.25,
        quiet: bool = False,
    ):
        self.instance = instance
        self.out = out
        self.tty = tty
        self.style = style
        self.interval = interval
        self.quiet = quiet
        self.progress = Progress(label=label)
        self.events: list[StepEvent] = []
        self.run_id = run_id
        self._found = False
        self._listening = False
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        # only a terminal's single line needs redrawing between events
        self._ticker = threading.Thread(target=self._tick, name="cryptorun-progress", daemon=True) if tty and not quiet else None
        self._line_open = False
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "RunMonitor":
        self._t0 = time.monotonic()
        self._listening = True
        self.instance.add_event_listener(self.run_id, self._on_event)
        if self._ticker is not None:
            self._ticker.start()
        return self

    def stop(self) -> None:
        self._listening = False  # the instance keeps its listeners: a stopped monitor ignores later events
        self._stop.set()
        if self._ticker is not None and self._ticker.is_alive():
            self._ticker.join(timeout=5)
        with self._lock:
            self._clear_line()

    def __enter__(self) -> "RunMonitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- events ---------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._render()

    def _on_event(self, entry: Any) -> None:
        """The instance's listener: runs in the executing thread right after the event was stored."""
        if not self._listening:
            return
        try:
            with self._lock:
                if not self._found:
                    self._find_run()
                self._handle(entry)
                self._render()
        except Exception:  # progress output must never break the run
            pass

    def _find_run(self) -> None:
        """The number of steps of the run's execution plan (once, at its first event)."""
        run = self.instance.get_run_by_id(self.run_id)
        if run is not None:
            self._found = True
            try:
                snap = self.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
                self.progress.total = len(snap.steps)
            except Exception:
                self.progress.total = None

    def _handle(self, entry: Any) -> None:
        from dagster import DagsterEventType

        ev = entry.dagster_event
        if ev is None:
            return
        step = ev.step_key or "?"
        elapsed = time.monotonic() - self._t0
        p = self.progress
        kind = None
        message = ""
        if ev.event_type == DagsterEventType.STEP_START:
            kind = "started"
            p.started.append(step)
            p.running.append(step)
        elif ev.event_type == DagsterEventType.STEP_SUCCESS:
            kind = "finished"
            p.finished.append(step)
        elif ev.event_type == DagsterEventType.STEP_FAILURE:
            kind = "failed"
            p.failed.append(step)
            message = error_message(getattr(ev.event_specific_data, "error", None))
        elif ev.event_type == DagsterEventType.STEP_SKIPPED:
            kind = "skipped"
        elif ev.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
            kind = "retry"
            message = "waiting for upstream"
        elif ev.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            p.materialized += 1
            return
        if kind in ("finished", "failed", "skipped", "retry") and step in p.running:
            p.running.remove(step)
        if kind:
            event = StepEvent(kind, step, elapsed, message)
            self.events.append(event)
            if not self.quiet and not self.tty:
                self.out.write(format_event(event, self.style) + "\n")
                self.out.flush()
            elif not self.quiet and kind == "failed":
                self._clear_line()
                self.out.write(format_event(event, self.style) + "\n")

    # -- output ---------------------------------------------------------------------------

    def _render(self) -> None:
        if self.quiet or not self.tty:
            return
        line = fit(self.progress.line(time.monotonic() - self._t0), WIDTH - 1)
        self.out.write("\r" + line + "\x1b[K")
        self.out.flush()
        self._line_open = True

    def _clear_line(self) -> None:
        if self._line_open:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._line_open = False
