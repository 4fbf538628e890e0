"""Prune old tasks every night with Celery beat.

The example application's tasks are kept for the time that
``QHANA_TASKS_RETENTION`` says, here taken from the environment. From the
``examples`` folder, with a broker that Celery reaches, run a worker with the
beat scheduler inside it::

    FLASK_QHANA_TASKS_RETENTION=30d celery --app celery_prune worker --beat

An application that has a Celery set-up of its own adds the schedule entry and
the task to it.
"""

from __future__ import annotations

from app import create_app
from celery import Celery
from celery.schedules import crontab

from flask_qhana_tasks.prune import prune_tasks

flask_app = create_app()
celery = Celery(__name__)

celery.conf.beat_schedule = {
    "prune-old-tasks": {
        "task": "prune_old_tasks",
        "schedule": crontab(hour=3, minute=30),
    },
}


@celery.task(name="prune_old_tasks")
def prune_old_tasks() -> dict[str, int]:
    """Delete the tasks older than the retention, and return the rows deleted
    from each table."""
    with flask_app.app_context():
        report = prune_tasks()

    return report.deleted
