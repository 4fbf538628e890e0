from __future__ import annotations

import contextlib
import os
import typing as t
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_sqlalchemy import SQLAlchemy

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import QHAnaTasks
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskLink
from flask_qhana_tasks import TaskUpdateSubscription

# One db and one extension for every test, as an application factory has them.
db = SQLAlchemy()
tasks = QHAnaTasks()

#: The databases the suite can run on, each with the environment variable that
#: holds its URI. SQLite needs none: each test gets a file of its own.
SERVER_URI_VARIABLES = {
    "postgresql": "QHANA_TASKS_TEST_POSTGRES_URI",
    "mariadb": "QHANA_TASKS_TEST_MARIADB_URI",
}

#: The database the whole suite runs on, chosen with QHANA_TASKS_TEST_DATABASE.
BACKEND = os.environ.get("QHANA_TASKS_TEST_DATABASE", "sqlite")

#: Whether the suite runs in CI, where no server may be missing.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND != "sqlite" and BACKEND not in SERVER_URI_VARIABLES:
        raise pytest.UsageError(
            f"QHANA_TASKS_TEST_DATABASE is {BACKEND!r}: use sqlite, postgresql or"
            " mariadb."
        )

    if BACKEND != "sqlite" and not os.environ.get(SERVER_URI_VARIABLES[BACKEND]):
        raise pytest.UsageError(
            f"QHANA_TASKS_TEST_DATABASE is {BACKEND!r}, but"
            f" {SERVER_URI_VARIABLES[BACKEND]} is not set. Start the servers with"
            " '. .ci/databases.sh', which sets it."
        )


def server_uri(backend: str) -> str:
    """Return the URI of a database server, or skip the test if none is set.

    In CI a missing server fails the test instead: CI must test every backend.
    """
    variable = SERVER_URI_VARIABLES[backend]
    uri = os.environ.get(variable)

    if not uri:
        message = f"{variable} is not set; '. .ci/databases.sh' starts a server."

        if IN_CI:
            pytest.fail(message)

        pytest.skip(message)

    return uri


def database_uri(backend: str, instance_path: Path) -> str:
    """Return the URI of the database a test on ``backend`` uses."""
    if backend == "sqlite":
        return f"sqlite:///{instance_path / 'tasks.sqlite'}"

    return server_uri(backend)


def _enable_sqlite_foreign_keys(dbapi_connection: t.Any, record: t.Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def drop_everything(engine: sa.Engine) -> None:
    """Drop every table of the database, the application's and Alembic's too."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)


def make_app(instance_path: Path, backend: str = BACKEND, **config: t.Any) -> Flask:
    """Return a new application with Flask-SQLAlchemy and the extension registered.

    Its database is an SQLite file in ``instance_path`` that enforces foreign
    keys, or the server of ``backend``.
    """
    instance_path.mkdir(parents=True, exist_ok=True)
    app = Flask("tests", instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_uri(backend, instance_path)
    app.config.update(config)
    db.init_app(app)
    tasks.init_app(app)

    if backend == "sqlite":
        with app.app_context():
            sa.event.listen(db.engine, "connect", _enable_sqlite_foreign_keys)

    return app


#: The databases the cross-database tests run on: all three in the default run,
#: only the suite's own in a run on a server.
EVERY_BACKEND = ["sqlite", *SERVER_URI_VARIABLES] if BACKEND == "sqlite" else [BACKEND]


@contextlib.contextmanager
def empty_database_app(
    backend: str, tmp_path: Path, **config: t.Any
) -> Iterator[Flask]:
    """Run the body in the context of an application on ``backend`` whose
    database holds the task tables and nothing else, before and after."""
    app = make_app(tmp_path, backend, **config)

    with app.app_context():
        drop_everything(db.engine)
        db.create_all()
        yield app
        db.session.remove()
        drop_everything(db.engine)
        db.engine.dispose()


@pytest.fixture(params=EVERY_BACKEND)
def backend_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """Like ``app``, once on each database."""
    with empty_database_app(request.param, tmp_path) as app:
        yield app


def load_task(task_id: int) -> ProcessingTask:
    """Forget every loaded object and load the task afresh from the database."""
    db.session.expunge_all()
    task = ProcessingTask.get_by_id(task_id)
    assert task is not None
    return task


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """An application whose task tables exist, and nothing else, inside an
    application context."""
    app = make_app(tmp_path / "instance")

    with app.app_context():
        if BACKEND != "sqlite":
            drop_everything(db.engine)

        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def cli(app: Flask) -> FlaskCliRunner:
    """A runner of the application's commands, inside the ``app`` fixture's context."""
    return app.test_cli_runner()


@pytest.fixture
def without_cascade(app: Flask) -> None:
    """Stop the database from cascading the deletion of a task to its rows.

    On SQLite the connections stop enforcing foreign keys; on a server the
    foreign keys are made again without ``ON DELETE CASCADE``, as an adopted
    database that was not upgraded has them. Code that must leave no orphans
    on any database is tested against this.
    """
    if BACKEND == "sqlite":
        db.session.remove()
        sa.event.remove(db.engine, "connect", _enable_sqlite_foreign_keys)
        db.engine.dispose()
        return

    quote = db.engine.dialect.identifier_preparer.quote
    drop = "CONSTRAINT" if BACKEND == "postgresql" else "FOREIGN KEY"

    with db.engine.begin() as connection:
        for table, column in TASK_TABLES.items():
            if table == "ProcessingTask":
                continue

            # MariaDB cannot drop and add a key of one name in one statement.
            name = quote(f"fk_{table}_{column}_ProcessingTask")
            alter = f"ALTER TABLE {quote(table)}"
            connection.execute(sa.text(f"{alter} DROP {drop} {name}"))
            connection.execute(
                sa.text(
                    f"{alter} ADD CONSTRAINT {name} FOREIGN KEY ({quote(column)})"
                    f" REFERENCES {quote('ProcessingTask')} ({quote('id')})"
                )
            )


#: The task table and the tables of its children, by the column that holds the task.
TASK_TABLES = {
    "ProcessingTask": "id",
    "Step": "id",
    "TaskFile": "task_id",
    "TaskLink": "task_id",
    "TaskUpdateSubscription": "task_id",
}


def add_task(
    name: str = "demo",
    *,
    started: datetime | timedelta = timedelta(hours=1),
    finished: datetime | timedelta | None = timedelta(minutes=50),
    task_status: str | None = "SUCCESS",
    steps: int = 0,
    awaiting_input: bool = False,
    children: bool = False,
) -> int:
    """Add a task and return its id.

    :param started: when the task started, or how long ago.
    :param finished: when the task finished, or how long ago; ``None`` leaves it
        unfinished.
    :param steps: add this many cleared steps.
    :param awaiting_input: add one more step that waits for input.
    :param children: add a file, a link and a subscription.
    """
    now = datetime.now(timezone.utc)
    task = ProcessingTask(name, task_status=task_status)
    task.started_at = now - started if isinstance(started, timedelta) else started

    if finished is not None:
        task.finished_at = (
            now - finished if isinstance(finished, timedelta) else finished
        )

    for number in range(steps + awaiting_input):
        step = task.add_next_step(
            f"https://api/{number}", f"https://ui/{number}", f"s{number}"
        )
        # The steps were added when the task started.
        step.created_at = task.started_at

        if number < steps:
            task.clear_previous_step()

    if children:
        TaskFile(
            task, "secret", "local", f"{name}.csv", f"/files/{name}", "entity/list"
        )
        TaskLink(task, "plugin", "https://other/1")
        TaskUpdateSubscription(task, "https://hook", "https://api/tasks/1", "status")

    task.save(commit=True)
    return task.id


def backdate(task_ids: list[int], started_at: datetime, finished_at: datetime) -> None:
    """Set the start and finish times of tasks with one UPDATE."""
    db.session.execute(
        sa.update(ProcessingTask)
        .where(ProcessingTask.id.in_(task_ids))
        .values(started_at=started_at, finished_at=finished_at)
    )
    db.session.commit()


#: When the tasks of :func:`add_old_tasks` started.
LONG_AGO = datetime(2025, 1, 1, tzinfo=timezone.utc)


def add_old_tasks(count: int, task_status: str | None = "SUCCESS") -> list[int]:
    """Add tasks with a cleared step, a file, a link and a subscription each, that
    started on :data:`LONG_AGO` and ran five minutes; return their ids.
    """
    ids = [
        add_task(f"old-{n}", task_status=task_status, steps=1, children=True)
        for n in range(count)
    ]
    backdate(ids, LONG_AGO, LONG_AGO + timedelta(minutes=5))
    return ids


def remaining_ids() -> list[int]:
    """Return the ids of the tasks in the database, in order."""
    query = sa.select(ProcessingTask.id).order_by(ProcessingTask.id)
    return list(db.session.scalars(query))


#: Each backend's statements that make deleting a task's links fail.
REFUSE_DELETING_LINKS = {
    "sqlite": [
        'CREATE TRIGGER refuse BEFORE DELETE ON "TaskLink" WHEN old.task_id ='
        " {task_id} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN"
        " IF OLD.task_id = {task_id} THEN RAISE EXCEPTION 'disk I/O error';"
        " END IF; RETURN OLD; END $$ LANGUAGE plpgsql",
        'CREATE TRIGGER refuse BEFORE DELETE ON "TaskLink" FOR EACH ROW'
        " EXECUTE FUNCTION refuse()",
    ],
    "mariadb": [
        "CREATE TRIGGER refuse BEFORE DELETE ON TaskLink FOR EACH ROW"
        " IF OLD.task_id = {task_id} THEN SIGNAL SQLSTATE '45000'"
        " SET MESSAGE_TEXT = 'disk I/O error'; END IF",
    ],
}


def refuse_deleting_links_of(task_id: int) -> None:
    """Make the database fail, as a full disk would, to delete a task's links."""
    for statement in REFUSE_DELETING_LINKS[BACKEND]:
        db.session.execute(sa.text(statement.format(task_id=task_id)))

    db.session.commit()


def _table(name: str) -> sa.Table:
    return db.metadata.tables[name]


def count_rows() -> dict[str, int]:
    """Return the number of rows in each task table."""
    return {
        name: db.session.execute(
            sa.select(sa.func.count()).select_from(_table(name))
        ).scalar_one()
        for name in TASK_TABLES
    }


def count_orphans() -> int:
    """Return the number of child rows whose task does not exist."""
    orphans = 0

    task_ids = sa.select(_table("ProcessingTask").c.id)

    for name, column in list(TASK_TABLES.items())[1:]:
        table = _table(name)
        query = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c[column].not_in(task_ids))
        )
        orphans += db.session.execute(query).scalar_one()

    return orphans
