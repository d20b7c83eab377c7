"""Showing training progress: a live bar on a terminal or in a notebook, one plain line per
epoch elsewhere."""

from __future__ import annotations

import io
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from digitnet.training.epoch import RunningStats

REFRESH_EVERY = 20  # steps between updates of loss/accuracy (each reads the running sums)


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key == "epoch" or value is None:
            continue
        parts.append(f"{key} {value:.1f}s" if key == "seconds" else f"{key} {value:.4f}")
    return "  ".join(parts)


def epoch_progress(console: Console, epoch: int, epochs: int) -> Progress:
    """The bar of one epoch: steps, elapsed and remaining time, running loss and accuracy."""
    return Progress(
        TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}"),
        console=console, transient=False,
    )


class ConsoleReporter:
    """Progress of ``digitnet train``: rich bar when ``console`` is a terminal, else lines."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(file=sys.stderr)
        self.live = self.console.is_terminal
        self.progress: Progress | None = None
        self.epochs = 1

    def resume(self, epoch: int, step: int, steps: int) -> None:
        self.console.print(f"resuming at epoch {epoch + 1}, step {step} of {steps}", highlight=False)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self.epochs = epochs
        if not self.live:
            return
        self.progress = epoch_progress(self.console, epoch, epochs)
        self.task = self.progress.add_task("train", total=steps, completed=done,
                                           loss="-", acc="-")
        self.progress.start()

    def step(self, done: int, stats: RunningStats) -> None:
        if self.progress is None:
            return
        if done % REFRESH_EVERY == 0 or done == self.progress.tasks[0].total:
            self.progress.update(self.task, completed=done, loss=f"{stats.loss:.4f}",
                                 acc=f"{stats.accuracy:.4f}")

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        self.console.print(epoch_line(record, self.epochs), highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class NotebookReporter(ConsoleReporter):
    """The same bar in Jupyter, redrawn in place in the cell's output (an IPython display
    handle), so that a saved notebook keeps its last state; rich's own live display would need
    ipywidgets. ``fit(config, reporter=NotebookReporter())``."""

    def __init__(self, width: int = 100) -> None:
        super().__init__(Console(file=io.StringIO(), width=width, color_system=None,
                                 force_terminal=False, force_jupyter=False))
        self.handle = None

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        from IPython.display import display

        self.epochs = epochs
        self.progress = epoch_progress(self.console, epoch, epochs)
        self.task = self.progress.add_task("train", total=steps, completed=done, loss="-", acc="-")
        self.handle = display(self.text(), raw=True, display_id=True)

    def step(self, done: int, stats: RunningStats) -> None:
        super().step(done, stats)
        if self.progress is not None and (done % REFRESH_EVERY == 0
                                          or done == self.progress.tasks[0].total):
            self.handle.update(self.text(), raw=True)

    def text(self) -> dict[str, str]:
        """The bar as it stands, as a plain-text display."""
        with self.console.capture() as captured:
            self.console.print(self.progress.get_renderable())
        return {"text/plain": captured.get().rstrip()}

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self.handle.update(self.text(), raw=True)
        self.progress = None
        print(epoch_line(record, self.epochs))

    def close(self) -> None:
        self.progress = None
