"""The study's expected failures. Each message names its cause (a key, a file, a schedule).

One base class, so the command line can end every expected failure in one readable line without
importing the modules that raise them (and their heavy dependencies).
"""

from __future__ import annotations


class StudyError(Exception):
    """Base of every expected failure; anything else is a bug and keeps its traceback."""


class ConfigError(StudyError, ValueError):
    """A parameter is unknown, missing, mistyped or out of range. The message names the key."""


class DataError(StudyError, RuntimeError):
    """A data file is missing, truncated, corrupt or of the wrong shape. The message names it."""


class CheckpointError(StudyError, RuntimeError):
    """A checkpoint file is unreadable, truncated, not one of ours, or stale. The message names it."""


class TrainingDiverged(StudyError, RuntimeError):
    """The loss became non-finite; the last good checkpoint is kept."""

    def __init__(self, schedule: str, step: int, loss: float, what: str = "loss"):
        super().__init__(
            f"training diverged: schedule {schedule!r}, step {step}: {what} is {loss}; "
            "the last good checkpoint was kept (lower train.lr?)"
        )
        self.schedule, self.step, self.loss = schedule, step, loss


class NonFiniteSamples(StudyError, FloatingPointError):
    """Sampling produced NaN or inf: the model is unusable, and its samples must not reach FID."""
