"""The status values a task goes through."""

from __future__ import annotations

import enum


class TaskStatus(str, enum.Enum):
    """The values of :attr:`ProcessingTask.status`.

    The members are strings, so they compare equal to the plain values that
    existing code writes (``task.task_status = "SUCCESS"``) and can be assigned
    to :attr:`ProcessingTask.task_status` directly.
    """

    #: The task has not finished.
    PENDING = "PENDING"

    #: The task finished and its results are ready.
    SUCCESS = "SUCCESS"

    #: The task finished with an error. Older documentation called this ``ERROR``.
    FAILURE = "FAILURE"

    #: The task finished without recording a status.
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value
