"""Console output shared by the stages: rich progress bars on a terminal, plain progress lines elsewhere.

Under ``dvc repro`` in a job's log file (no TTY) a rich bar prints nothing until the stage ends, so
there the stages print one line every ``PLAIN_EVERY`` of the work instead: done/total, the stage's
info (loss, img/s, ...), elapsed time and ETA — what tqdm and Lightning users expect in a log.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
PLAIN_EVERY = 0.05  # a plain line per 5 % of a task (and at its end)


def progress(out: Console | None = None) -> Progress | PlainProgress:
    """A progress display on ``out`` (default: the stages' console): rich's bar if it is a terminal, else lines."""
    out = out or console
    if not out.is_terminal:
        return PlainProgress(out)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=out,
    )


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class _Task:
    def __init__(self, description: str, total: float, info: str):
        self.description, self.total, self.info = description, total, info
        self.completed = 0.0
        self.start = time.monotonic()
        self.start_completed: float | None = None  # the first value seen (a resumed run starts part-way)
        self.printed = -1  # the last PLAIN_EVERY interval printed
        self.finished = False


class PlainProgress:
    """rich.progress.Progress's ``add_task`` / ``update`` / ``advance`` as plain lines on a console."""

    def __init__(self, out: Console):
        self.out, self.tasks = out, []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def add_task(self, description: str, total: float, info: str = "", **_: Any) -> int:
        self.tasks.append(_Task(description, total, info))
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self.tasks[task_id].completed + advance)

    def update(self, task_id: int, completed: float | None = None, info: str | None = None, **_: Any) -> None:
        task = self.tasks[task_id]
        if info is not None:
            task.info = info
        if completed is None:
            return
        if task.start_completed is None:
            task.start_completed, task.start = completed, time.monotonic()
        task.completed = completed
        # Rounded first: 15 / 100 / 0.05 is 2.9999... in floating point.
        interval = int(round(completed / task.total / PLAIN_EVERY, 6)) if task.total else 0
        if interval > task.printed and not task.finished:
            task.printed, task.finished = interval, completed >= task.total
            self.out.print(self._line(task), soft_wrap=True, highlight=False, markup=False)

    @staticmethod
    def _line(task: _Task) -> str:
        elapsed = time.monotonic() - task.start
        done = task.completed - (task.start_completed or 0)
        eta = (task.total - task.completed) * elapsed / done if done > 0 else None
        percent = 100 * task.completed / task.total if task.total else 100
        parts = [f"{task.description}: {task.completed:g}/{task.total:g} ({percent:.0f}%)", task.info,
                 f"elapsed {_clock(elapsed)}", f"ETA {_clock(eta)}" if eta is not None else ""]
        return "  ".join(p for p in parts if p)
