"""Lookups by string compare as the database's collation says, as the operations
page describes: exactly on SQLite and PostgreSQL, ignoring case on MariaDB."""

from __future__ import annotations

from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskUpdateSubscription

from .conftest import db


def test_lookups_follow_the_collation(backend_app: Flask) -> None:
    task = ProcessingTask("collation")
    task.save()
    TaskUpdateSubscription(
        task, "https://hook.example/Tasks", "https://api.example/tasks/1", "Status"
    ).save()
    TaskFile(task, "tag", "local", "scratch.bin", "files/scratch", "TEMP-FILE").save()
    db.session.commit()

    by_event = TaskUpdateSubscription.get_by_task_and_event(task, "status")
    by_webhook = TaskUpdateSubscription.get_by_task_and_subscriber(
        task, "https://hook.example/tasks"
    )
    results = TaskFile.get_task_result_files(task)
    db.session.commit()

    if db.engine.dialect.name in ("mysql", "mariadb"):
        assert [ref.webhook_href for ref in by_event] == ["https://hook.example/Tasks"]
        assert len(by_webhook) == 1
        assert results == []
    else:
        assert by_event == []
        assert by_webhook == []
        assert [file.file_name for file in results] == ["scratch.bin"]
