"""A small application that records its tasks with flask-qhana-tasks.

Record a few tasks in an SQLite file in ``examples/instance/``, list them,
run the training task as a worker would, and show it::

    flask --app examples/app.py demo
    flask --app examples/app.py tasks list
    flask --app examples/app.py train 4
    flask --app examples/app.py tasks show 4

Any Flask setting can be given as an environment variable with the ``FLASK_``
prefix, for example ``FLASK_SQLALCHEMY_DATABASE_URI``.
"""

from __future__ import annotations

import json
import typing as t
import uuid
from datetime import timedelta
from pathlib import Path

import click
from flask import current_app
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import QHAnaTasks
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskStatus
from flask_qhana_tasks.signals import task_files_pruned
from flask_qhana_tasks.types import utcnow

db = SQLAlchemy()
migrate = Migrate()
tasks = QHAnaTasks()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///tasks.sqlite"
    app.config.from_prefixed_env()

    db.init_app(app)
    migrate.init_app(app, db)
    tasks.init_app(app)

    app.cli.add_command(demo_command)
    app.cli.add_command(train_command)
    return app


def store_file(name: str, content: str) -> str:
    """Write a result file into the instance folder; return where it is, as a
    ``TaskFile`` of the ``local`` storage records it."""
    location = f"files/{uuid.uuid4().hex}/{name}"
    path = Path(current_app.instance_path, location)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return location


@task_files_pruned.connect
def delete_stored_files(sender: Flask, files: list[t.Any], **extra: t.Any) -> None:
    """Delete what the ``local`` storage holds for the files of pruned tasks."""
    for row in files:
        if row.storage_provider == "local":
            Path(sender.instance_path, row.file_storage_data).unlink(missing_ok=True)


def record_tasks() -> list[ProcessingTask]:
    """Record four tasks the way a plugin's workers would, and return them."""
    now = utcnow()

    report = ProcessingTask("csv-report", parameters='{"rows": 1000}')
    report.started_at = now - timedelta(minutes=5)
    report.add_task_log_entry("Read 1000 rows.")
    report.add_task_log_entry("Wrote report.csv.")
    report.save()
    TaskFile(
        report,
        security_tag="s3cr3t",
        storage_provider="local",
        file_name="report.csv",
        file_storage_data=store_file("report.csv", "row,value\n"),
        file_type="entity/table",
        mimetype="text/csv",
    ).save()
    report.task_status = TaskStatus.SUCCESS
    report.finished_at = now - timedelta(minutes=4)

    failed = ProcessingTask("csv-report", parameters='{"rows": -1}')
    failed.started_at = now - timedelta(minutes=3)
    failed.add_task_log_entry("Error: 'rows' must be positive.")
    failed.task_status = TaskStatus.FAILURE
    failed.finished_at = now - timedelta(minutes=3)
    failed.save()

    wizard = ProcessingTask("clustering-wizard")
    wizard.add_next_step(
        "https://plugins.example/clustering/step/1",
        "https://plugins.example/clustering/step/1/ui",
        "choose-algorithm",
    )
    wizard.data["algorithm"] = {"candidates": ["k-means", "dbscan"]}
    wizard.save()

    training = ProcessingTask("train-model", parameters='{"epochs": 20}')
    training.set_progress(0, target=20, unit="epochs")
    training.save(commit=True)

    return [report, failed, wizard, training]


def train_model(task_id: int) -> ProcessingTask:
    """Run the epochs of a training task as a worker would, and finish it."""
    task = ProcessingTask.get_by_id(task_id)

    if task is None:
        raise click.ClickException(f"No task has the id {task_id}.")

    epochs = json.loads(task.parameters)["epochs"]
    task.add_task_log_entry(f"Training for {epochs} epochs.", commit=True)

    for epoch in range(1, epochs + 1):
        loss = 1 / epoch  # the work of one epoch goes here
        task.advance_progress(1, commit=True)

        if epoch % 10 == 0:
            task.add_task_log_entry(f"Epoch {epoch}: loss {loss:.3f}.", commit=True)

    task.data["loss"] = round(loss, 3)
    task.task_status = TaskStatus.SUCCESS
    task.finished_at = utcnow()
    task.save(commit=True)
    return task


@click.command("demo")
def demo_command() -> None:
    """Create the tables if needed and record a few example tasks."""
    db.create_all()
    recorded = record_tasks()
    ids = ", ".join(str(task.id) for task in recorded)
    click.echo(f"Recorded tasks {ids} in {db.engine.url.database}.")


@click.command("train")
@click.argument("task_id", type=int)
def train_command(task_id: int) -> None:
    """Run the epochs of a recorded training task."""
    task = train_model(task_id)
    click.echo(f"Task {task.id} finished with status {task.status}.")
