"""Progress bars for long-running CLI work: on a terminal only, on stderr, never in the hot loop.

``with progress_bars(enabled=...) as bars:`` gives :class:`Bars`; ``bars.task(...)`` a
:class:`Ticker` the work moves every batch (``advance``) or to a position (``update``), never per
entry. Bars are drawn only when stderr is a terminal (so stdout stays parseable and a pipe or a
journal sees nothing), ``TERM`` is not ``dumb`` and the caller did not turn them off
(``--no-progress``). Otherwise everything is a no-op, and ``bool(bars)`` is False so a caller can
skip its own counting. ``NO_COLOR`` keeps the bar, without colour (rich honours it).

No thread is started unless ``refresh_thread``: ``audit verify`` forks its workers only from a
process with one thread, so its bar is redrawn by the work's own updates (at most 10 times a second).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["Bars", "Ticker", "progress_bars", "show_progress"]

#: The least time between two redraws caused by the work's own updates (10 a second at most).
_REDRAW_S = 0.1


def show_progress(stream: TextIO | None = None, *, enabled: bool = True) -> bool:
    """Whether bars would be drawn on ``stream`` (default: stderr)."""
    stream = sys.stderr if stream is None else stream
    if not enabled or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


class Ticker:
    """One bar; this base class draws nothing (stderr is no terminal, or bars are off)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units done."""

    def update(self, completed: int, total: int | None = None) -> None:
        """``completed`` units done (of ``total``, if it changed)."""


class _RichTicker(Ticker):
    def __init__(self, bars: Any, task: Any) -> None:
        self._bars, self._task = bars, task
        self._drawn = 0.0

    def advance(self, n: int = 1) -> None:
        self._bars.advance(self._task, n)
        self._redraw()

    def update(self, completed: int, total: int | None = None) -> None:
        if total is None:
            self._bars.update(self._task, completed=completed)
        else:
            self._bars.update(self._task, completed=completed, total=total)
        self._redraw()

    def _redraw(self) -> None:
        now = time.monotonic()
        if now - self._drawn >= _REDRAW_S:
            self._drawn = now
            self._bars.refresh()


class Bars:
    """The bars of one command; this base class draws nothing."""

    def __bool__(self) -> bool:
        return False

    def task(self, description: str, total: int | None, unit: str = "entries") -> Ticker:
        """A new bar for ``total`` units (None: not known yet)."""
        return Ticker()


class _RichBars(Bars):
    def __init__(self, progress: Any) -> None:
        self._progress = progress

    def __bool__(self) -> bool:
        return True

    def task(self, description: str, total: int | None, unit: str = "entries") -> Ticker:
        task = self._progress.add_task(description, total=total, unit=unit)
        self._progress.refresh()
        return _RichTicker(self._progress, task)


def _columns() -> tuple[Any, ...]:
    from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn
    from rich.text import Text

    def rate(task: Any) -> float | None:
        # The average since the start: known from the first update (rich's windowed speed needs
        # two), and steady work (entries, vaults) runs at a steady pace.
        elapsed = task.finished_time if task.finished else task.elapsed
        return task.completed / elapsed if task.completed and elapsed else None

    class RateColumn(ProgressColumn):
        """Units per second, e.g. ``41,250 entries/s``."""

        def render(self, task: Any) -> Text:
            speed, unit = rate(task), task.fields.get("unit", "")
            return Text(f"- {unit}/s" if speed is None else f"{speed:,.0f} {unit}/s", style="progress.data.speed")

    class EtaColumn(ProgressColumn):
        """Time left at that rate, e.g. ``ETA 0:01:05``."""

        def render(self, task: Any) -> Text:
            speed = rate(task)
            if task.finished:
                left = 0
            elif speed is None or task.total is None:
                return Text("ETA -:--:--", style="progress.remaining")
            else:
                left = int((task.total - task.completed) / speed + 0.5)
            return Text(f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}", style="progress.remaining")

    # Fits 80 columns with a short description: what, how far, how fast, how long still.
    return (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        RateColumn(),
        EtaColumn(),
    )


@contextlib.contextmanager
def progress_bars(
    *, enabled: bool = True, refresh_thread: bool = False, stream: TextIO | None = None
) -> Iterator[Bars]:
    """Bars on ``stream`` (default: stderr) while the block runs, if :func:`show_progress`.

    Args:
        enabled: False for ``--no-progress``, or when the command's own output shares the terminal.
        refresh_thread: redraw 10 times a second from a thread, for work whose steps take seconds
            (the elapsed time and ETA keep moving); never for work that forks.
    """
    stream = sys.stderr if stream is None else stream
    if not show_progress(stream, enabled=enabled):
        yield Bars()
        return
    from rich.console import Console
    from rich.progress import Progress

    console = Console(file=stream)
    # Never redirect stdout: the command's data goes there, untouched.
    progress = Progress(*_columns(), console=console, auto_refresh=refresh_thread, refresh_per_second=10,
                        redirect_stdout=False, redirect_stderr=False)
    with progress:
        yield _RichBars(progress)
