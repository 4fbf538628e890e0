"""A prune killed with SIGKILL in the middle leaves the database consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from datetime import timezone
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks.prune import prune_tasks

from .conftest import count_orphans
from .conftest import count_rows
from .conftest import db

APP = Path(__file__).parent / "apps" / "migrating.py"
TASKS = 3000
FINISHED = datetime(2020, 6, 1, tzinfo=timezone.utc)


def insert_old_tasks(count: int) -> None:
    """Insert finished tasks with a step, a file, a link and a subscription each."""
    tables = db.metadata.tables
    ids = range(1, count + 1)
    rows = {
        "ProcessingTask": [
            {
                "id": i,
                "task_name": f"old-{i}",
                "started_at": FINISHED,
                "finished_at": FINISHED,
                "task_status": "SUCCESS",
                "task_log": "",
            }
            for i in ids
        ],
        "Step": [
            {
                "id": i,
                "number": 0,
                "step_id": "s",
                "href": "h",
                "ui_href": "u",
                "cleared": True,
            }
            for i in ids
        ],
        "TaskFile": [
            {
                "task_id": i,
                "security_tag": "s",
                "storage_provider": "local",
                "file_name": f"{i}.txt",
                "file_storage_data": "/x",
            }
            for i in ids
        ],
        "TaskLink": [{"task_id": i, "type": "t", "href": "https://x"} for i in ids],
        "TaskUpdateSubscription": [
            {"task_id": i, "webhook_href": "https://hook", "task_href": "https://t"}
            for i in ids
        ],
    }

    for name, values in rows.items():
        db.session.execute(sa.insert(tables[name]), values)

    db.session.commit()


def task_count() -> int:
    db.session.rollback()
    query = sa.select(sa.func.count()).select_from(ProcessingTask)
    return db.session.execute(query).scalar_one()


def test_killed_prune_leaves_consistent_rows(
    backend_app: Flask, tmp_path: Path
) -> None:
    insert_old_tasks(TASKS)
    uri = db.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URI": uri, "MIGRATIONS_DIR": str(tmp_path / "m")}
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        str(APP),
        "tasks",
        "prune",
        "--before",
        "2021-01-01",
        "--yes",
        "--batch-size",
        "10",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    try:
        deadline = time.monotonic() + 120

        # Kill it once it has committed a few batches, while it works on more.
        while task_count() > TASKS - 50:
            assert process.poll() is None, "the prune ended before it was killed"
            assert time.monotonic() < deadline, "the prune committed no batch"
            time.sleep(0.005)

        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)

    assert process.returncode == -signal.SIGKILL
    remaining = task_count()
    assert 0 < remaining < TASKS
    assert count_rows() == dict.fromkeys(count_rows(), remaining)
    assert count_orphans() == 0

    report = prune_tasks(before=datetime(2021, 1, 1, tzinfo=timezone.utc))

    assert report.tasks == remaining
    assert count_rows() == dict.fromkeys(count_rows(), 0)
