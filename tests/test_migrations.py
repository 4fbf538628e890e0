"""The shipped migrations, run through Flask-Migrate as an application runs them.

Each command runs in a process of its own, as ``flask db`` does for a user:
Alembic's environment configures logging for the whole process.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from flask_qhana_tasks.migrations import VERSIONS_DIR

from .conftest import BACKEND
from .conftest import database_uri
from .conftest import drop_everything
from .conftest import EVERY_BACKEND

APP = Path(__file__).parent / "apps" / "migrating.py"
TASK_TABLES = {
    "ProcessingTask",
    "Step",
    "TaskFile",
    "TaskLink",
    "TaskUpdateSubscription",
}

FlaskRunner = Callable[..., subprocess.CompletedProcess[str]]


def run_flask(
    tmp_path: Path, python: str, *args: str, uri: str = "", models: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URI": uri or f"sqlite:///{tmp_path / 'app.sqlite'}",
        "MIGRATIONS_DIR": str(tmp_path / "migrations"),
        "APP_MODELS": models,
    }
    return subprocess.run(
        [python, "-m", "flask", "--app", str(APP), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URI of an empty database: the suite's own, or the parametrized one."""
    backend = getattr(request, "param", BACKEND)
    uri = database_uri(backend, tmp_path)

    if backend == "sqlite":
        yield uri
        return

    engine = sa.create_engine(uri)
    drop_everything(engine)
    yield uri
    drop_everything(engine)
    engine.dispose()


@pytest.fixture
def flask(tmp_path: Path, database: str) -> FlaskRunner:
    """Run ``flask`` for the test application; fail on a non-zero exit status."""

    def flask(
        *args: str, models: str = "", status: int = 0
    ) -> subprocess.CompletedProcess[str]:
        result = run_flask(tmp_path, sys.executable, *args, uri=database, models=models)
        assert result.returncode == status, result.stdout + result.stderr
        return result

    flask("db", "init")
    return flask


@contextlib.contextmanager
def inspect_db(uri: str) -> Iterator[sa.Inspector]:
    engine = sa.create_engine(uri)

    try:
        with engine.connect() as connection:
            yield sa.inspect(connection)
    finally:
        engine.dispose()


def table_names(uri: str) -> set[str]:
    with inspect_db(uri) as inspector:
        return set(inspector.get_table_names())


def assert_matches_models(flask: FlaskRunner) -> None:
    result = flask("db", "check")
    assert "No new upgrade operations detected." in result.stdout


@pytest.mark.parametrize("database", EVERY_BACKEND, indirect=True)
def test_upgrade_creates_the_tables(flask: FlaskRunner, database: str) -> None:
    flask("db", "upgrade", "heads")

    assert table_names(database) >= TASK_TABLES

    with inspect_db(database) as inspector:
        foreign_keys = inspector.get_foreign_keys("TaskFile")

    assert [fk["options"] for fk in foreign_keys] == [{"ondelete": "CASCADE"}]
    assert_matches_models(flask)

    heads = flask("db", "heads").stdout
    assert "qhana_tasks_0006 (qhana_tasks) (head)" in heads


@pytest.mark.parametrize("database", EVERY_BACKEND, indirect=True)
def test_downgrade_and_upgrade_again(flask: FlaskRunner, database: str) -> None:
    flask("db", "upgrade", "heads")

    flask("db", "downgrade", "qhana_tasks@base")
    assert not TASK_TABLES & table_names(database)

    flask("db", "upgrade", "heads")
    assert_matches_models(flask)


# The task tables as a QHAna plugin-runner database on SQLite has them.
PLUGIN_RUNNER_SCHEMA = """
CREATE TABLE "ProcessingTask" (
    id INTEGER NOT NULL, task_name VARCHAR(500), started_at TIMESTAMP,
    finished_at TIMESTAMP, parameters TEXT, data JSON, multi_step BOOLEAN,
    current_step INTEGER, progress_value FLOAT, progress_start FLOAT,
    progress_target FLOAT, progress_unit VARCHAR(100), task_status VARCHAR(100),
    task_log TEXT NOT NULL,
    CONSTRAINT "pk_ProcessingTask" PRIMARY KEY (id)
);
CREATE TABLE "Step" (
    id INTEGER NOT NULL, step_id VARCHAR(500), number INTEGER NOT NULL,
    href VARCHAR(500), ui_href VARCHAR(500), cleared BOOLEAN,
    CONSTRAINT "pk_Step" PRIMARY KEY (id, number),
    CONSTRAINT "fk_Step_id_ProcessingTask" FOREIGN KEY(id)
        REFERENCES "ProcessingTask" (id)
);
CREATE TABLE "TaskFile" (
    id INTEGER NOT NULL, security_tag VARCHAR(64) NOT NULL,
    storage_provider VARCHAR(64) NOT NULL, file_name VARCHAR(500) NOT NULL,
    file_storage_data TEXT NOT NULL, file_type VARCHAR(255),
    mimetype VARCHAR(255), created_at TIMESTAMP, task_id INTEGER,
    CONSTRAINT "pk_TaskFile" PRIMARY KEY (id),
    CONSTRAINT "fk_TaskFile_task_id_ProcessingTask" FOREIGN KEY(task_id)
        REFERENCES "ProcessingTask" (id)
);
CREATE INDEX "ix_TaskFile_file_name" ON "TaskFile" (file_name);
CREATE TABLE "TaskLink" (
    id INTEGER NOT NULL, type VARCHAR(64) NOT NULL, href VARCHAR(500) NOT NULL,
    task_id INTEGER,
    CONSTRAINT "pk_TaskLink" PRIMARY KEY (id),
    CONSTRAINT "fk_TaskLink_task_id_ProcessingTask" FOREIGN KEY(task_id)
        REFERENCES "ProcessingTask" (id)
);
CREATE TABLE "TaskUpdateSubscription" (
    id INTEGER NOT NULL, webhook_href VARCHAR(500) NOT NULL,
    task_href VARCHAR(500) NOT NULL, event_type VARCHAR(64), task_id INTEGER,
    CONSTRAINT "pk_TaskUpdateSubscription" PRIMARY KEY (id),
    CONSTRAINT "fk_TaskUpdateSubscription_task_id_ProcessingTask"
        FOREIGN KEY(task_id) REFERENCES "ProcessingTask" (id)
);
INSERT INTO "ProcessingTask" (id, task_name, started_at, task_log, data)
    VALUES (7, 'adopted', '2024-05-01 10:00:00.000000', 'line', '{"k": [1]}');
INSERT INTO "Step" VALUES (7, 'one', 0, 'https://api/1', 'https://ui/1', 1);
INSERT INTO "TaskFile" (id, security_tag, storage_provider, file_name,
    file_storage_data, task_id) VALUES (3, 's', 'local', 'a.txt', '/a.txt', 7);
"""


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_adopting_a_plugin_runner_database(flask: FlaskRunner, database: str) -> None:
    path = str(sa.engine.make_url(database).database)

    with sqlite3.connect(path) as connection:
        connection.executescript(PLUGIN_RUNNER_SCHEMA)

    flask("db", "stamp", "qhana_tasks_0001")
    flask("db", "upgrade", "heads")

    assert_matches_models(flask)

    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA foreign_keys=ON")
        assert connection.execute(
            'SELECT task_name, data FROM "ProcessingTask"'
        ).fetchall() == [("adopted", '{"k": [1]}')]
        connection.execute('DELETE FROM "ProcessingTask" WHERE id = 7')
        remaining = [
            connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in ("Step", "TaskFile")
        ]

    assert remaining == [0, 0]


def revisions(folder: Path) -> dict[str, str]:
    """Map each revision file's name in ``folder`` to its ``down_revision`` line."""
    found = {}

    for path in folder.glob("*.py"):
        (line,) = [
            line
            for line in path.read_text().splitlines()
            if line.startswith("down_revision")
        ]
        found[path.name] = line

    return found


def test_application_revisions_stay_in_the_application(
    flask: FlaskRunner, tmp_path: Path, database: str
) -> None:
    shipped = sorted(path.name for path in VERSIONS_DIR.glob("*.py"))
    flask("db", "upgrade", "heads")

    first = flask("db", "migrate", "-m", "notes", models="notes")
    flask("db", "upgrade", "heads", models="notes")
    flask("db", "migrate", "-m", "tags", models="notes,tags")

    own = revisions(tmp_path / "migrations" / "versions")
    notes = next(name for name in own if name.endswith("_notes.py"))
    tags = next(name for name in own if name.endswith("_tags.py"))
    assert "Generating" in first.stdout
    assert own[notes] == "down_revision = None"
    assert own[tags] == f"down_revision = {notes.split('_')[0]!r}"
    assert sorted(path.name for path in VERSIONS_DIR.glob("*.py")) == shipped

    flask("db", "upgrade", "heads", models="notes,tags")
    assert {"note", "tag"} <= table_names(database)


def test_migrate_without_changes_writes_no_revision(
    flask: FlaskRunner, tmp_path: Path
) -> None:
    flask("db", "upgrade", "heads")

    flask("db", "migrate", "-m", "nothing")

    assert revisions(tmp_path / "migrations" / "versions") == {}


def test_revisions_on_the_package_branch_are_refused(
    flask: FlaskRunner, tmp_path: Path
) -> None:
    shipped = sorted(path.name for path in VERSIONS_DIR.glob("*.py"))
    flask("db", "upgrade", "heads")

    result = flask(
        "db", "migrate", "--head", "qhana_tasks@head", models="notes", status=1
    )

    assert "of flask-qhana-tasks' 'qhana_tasks' branch" in result.stderr
    assert sorted(path.name for path in VERSIONS_DIR.glob("*.py")) == shipped


SUBSCRIPTIONS = sa.table(
    "TaskUpdateSubscription",
    sa.column("id", sa.Integer()),
    sa.column("task_id", sa.Integer()),
    sa.column("webhook_href", sa.String()),
    sa.column("task_href", sa.String()),
    sa.column("event_type", sa.String()),
)

#: Subscriptions as a database before the unique index could hold them: id,
#: task, webhook and event type. Rows 2, 4 and 7 repeat older ones.
SUBSCRIPTION_ROWS = [
    (1, 1, "https://a", None),
    (2, 1, "https://a", None),
    (3, 1, "https://a", "status"),
    (4, 1, "https://a", "status"),
    (5, 1, "https://b", None),
    (6, 2, "https://a", None),
    (7, 1, "https://a", None),
    (8, 1, "https://a", ""),
    (9, None, "https://a", None),
    (10, None, "https://a", None),
]


def add_subscriptions(
    uri: str, rows: list[tuple[int, int | None, str, str | None]]
) -> None:
    engine = sa.create_engine(uri)

    try:
        with engine.begin() as connection:
            connection.execute(
                SUBSCRIPTIONS.insert(),
                [
                    {
                        "id": id_,
                        "task_id": task_id,
                        "webhook_href": webhook,
                        "task_href": f"https://api/tasks/{task_id}/",
                        "event_type": event,
                    }
                    for id_, task_id, webhook, event in rows
                ],
            )
    finally:
        engine.dispose()


def subscription_ids(uri: str) -> list[int]:
    engine = sa.create_engine(uri)

    try:
        with engine.connect() as connection:
            query = sa.select(SUBSCRIPTIONS.c.id).order_by(SUBSCRIPTIONS.c.id)
            return list(connection.scalars(query))
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", EVERY_BACKEND, indirect=True)
def test_upgrade_deletes_duplicate_subscriptions(
    flask: FlaskRunner, database: str
) -> None:
    flask("db", "upgrade", "qhana_tasks_0005")
    tasks = sa.table("ProcessingTask", sa.column("id"), sa.column("task_log"))
    engine = sa.create_engine(database)

    with engine.begin() as connection:
        connection.execute(
            tasks.insert(), [{"id": 1, "task_log": ""}, {"id": 2, "task_log": ""}]
        )

    engine.dispose()
    add_subscriptions(database, SUBSCRIPTION_ROWS)

    flask("db", "upgrade", "heads")

    assert subscription_ids(database) == [1, 3, 5, 6, 8, 9, 10]
    assert_matches_models(flask)

    with pytest.raises(sa.exc.IntegrityError):
        add_subscriptions(database, [(11, 1, "https://a", None)])

    # Down, the duplicates are possible again; up, they are gone again.
    flask("db", "downgrade", "qhana_tasks_0005")
    add_subscriptions(database, [(12, 1, "https://a", None), (13, 1, "https://a", "")])

    with inspect_db(database) as inspector:
        columns = [
            column["name"] for column in inspector.get_columns("TaskUpdateSubscription")
        ]

    assert "event_key" not in columns

    flask("db", "upgrade", "heads")

    assert subscription_ids(database) == [1, 3, 5, 6, 8, 9, 10]
    assert_matches_models(flask)
