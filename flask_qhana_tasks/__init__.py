"""Durable, inspectable records of long-running tasks for Flask applications."""

from __future__ import annotations

from .extension import QHAnaTasks as QHAnaTasks
from .migrations import add_migrations_to as add_migrations_to
from .models import ModelsNotRegisteredError as ModelsNotRegisteredError
from .models import ProcessingTask as ProcessingTask
from .models import Step as Step
from .models import StepNotClearedError as StepNotClearedError
from .models import TaskFile as TaskFile
from .models import TaskLink as TaskLink
from .models import TaskProgress as TaskProgress
from .models import TaskUpdateSubscription as TaskUpdateSubscription
from .models import WebhookRef as WebhookRef
from .status import TaskStatus as TaskStatus

__all__ = [
    "ModelsNotRegisteredError",
    "ProcessingTask",
    "QHAnaTasks",
    "Step",
    "StepNotClearedError",
    "TaskFile",
    "TaskLink",
    "TaskProgress",
    "TaskStatus",
    "TaskUpdateSubscription",
    "WebhookRef",
    "add_migrations_to",
]
