"""Worker processes for the stress tests: each builds an application of its own
on the shared database, as a Celery worker would, and changes tasks."""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import TaskFile

from .conftest import db
from .conftest import tasks


def worker_app(uri: str) -> Flask:
    app = Flask("worker", instance_path=tempfile.mkdtemp())
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    db.init_app(app)
    tasks.init_app(app)
    return app


def change_tasks(
    uri: str, worker: int, shared_id: int, own_id: int, rounds: int, errors: Path
) -> None:
    """Append log entries to, and advance the progress and data of, the shared
    task; add and clear steps of the worker's own task."""
    try:
        with worker_app(uri).app_context():
            for number in range(rounds):
                shared = ProcessingTask.get_by_id(shared_id)
                assert shared is not None
                shared.add_task_log_entry(
                    f"worker {worker} entry {number}", commit=True
                )
                shared.advance_progress(1, commit=True)

                shared = ProcessingTask.get_by_id(shared_id)
                assert shared is not None
                shared.lock()
                shared.data["count"] += 1
                shared.data["entries"].append(f"{worker}.{number}")
                db.session.commit()

                own = ProcessingTask.get_by_id(own_id)
                assert own is not None
                own.add_next_step(
                    f"https://api/{worker}/{number}",
                    f"https://ui/{worker}/{number}",
                    f"step-{number}",
                )
                own.clear_previous_step(commit=True)
    except BaseException:
        errors.write_text(traceback.format_exc())
        raise


def record_tasks(uri: str, worker: int, count: int, errors: Path) -> None:
    """Record old finished tasks and unfinished ones, each with a file and a
    step, while a prune runs; keep writing to the unfinished ones."""
    try:
        with worker_app(uri).app_context():
            running: list[int] = []

            for number in range(count):
                task = ProcessingTask(f"w{worker}-{number}", task_status="SUCCESS")
                finished = number % 2 == 0

                if finished:
                    task.started_at = task.started_at.replace(year=2020)
                    task.finished_at = task.started_at
                else:
                    task.task_status = None
                    task.task_name = f"unfinished-{worker}-{number}"

                task.save()
                TaskFile(task, "s", "local", f"{number}.txt", "/x", "entity").save()
                task.add_next_step("https://api/1", "https://ui/1", "one")
                db.session.commit()

                # A finished task may be pruned as soon as it is committed.
                if not finished:
                    running.append(task.id)

                for task_id in running:
                    other = ProcessingTask.get_by_id(task_id)
                    assert other is not None
                    other.add_task_log_entry(f"round {number}", commit=True)
    except BaseException:
        errors.write_text(traceback.format_exc())
        raise
