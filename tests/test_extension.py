from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from flask_qhana_tasks import add_migrations_to
from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import QHAnaTasks
from flask_qhana_tasks.migrations import VERSIONS_DIR

from .conftest import db
from .conftest import make_app
from .conftest import tasks


def test_registered_on_the_app(app: Flask) -> None:
    assert app.extensions["qhana_tasks"] is tasks
    assert tasks.db is db
    assert app.config["QHANA_TASKS_MIGRATIONS"] is True

    result = app.test_cli_runner().invoke(args=["tasks", "--help"])

    assert result.exit_code == 0
    assert "Inspect the recorded tasks" in result.output


def test_create_all_creates_the_task_tables(app: Flask) -> None:
    tables = set(sa.inspect(db.engine).get_table_names())

    assert tables == {
        "ProcessingTask",
        "Step",
        "TaskFile",
        "TaskLink",
        "TaskUpdateSubscription",
    }


def test_application_factory(tmp_path: Path) -> None:
    # Two SQLite files stand for the two applications' databases on any backend.
    first = make_app(tmp_path / "first", "sqlite")
    second = make_app(tmp_path / "second", "sqlite")

    for app, name in ((first, "in-first"), (second, "in-second")):
        with app.app_context():
            db.create_all()
            ProcessingTask(name).save(commit=True)

    for app, name in ((first, "in-first"), (second, "in-second")):
        with app.app_context():
            names = db.session.scalars(sa.select(ProcessingTask.task_name)).all()
            assert names == [name]
            assert app.extensions["qhana_tasks"] is tasks
            db.engine.dispose()


def test_second_registration_on_one_app(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="already registered on the application"):
        tasks.init_app(app)


def test_another_db_is_refused() -> None:
    app = Flask("other")
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    other = SQLAlchemy()
    other.init_app(app)

    with pytest.raises(
        RuntimeError, match="already registered with another Flask-SQLAlchemy"
    ):
        QHAnaTasks(app)

    assert "qhana_tasks" not in app.extensions


def test_missing_flask_sqlalchemy() -> None:
    app = Flask("bare")

    with pytest.raises(RuntimeError, match=r"Call 'db.init_app\(app\)' before"):
        QHAnaTasks(app)


def test_db_of_another_type() -> None:
    with pytest.raises(
        TypeError, match=r"'flask_sqlalchemy\.SQLAlchemy' instance, not 'str'"
    ):
        QHAnaTasks(Flask("typed"), db="sqlite://")  # type: ignore[arg-type]


def run_python(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, where no ``init_app`` has run yet."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_models_used_before_init_app(tmp_path: Path) -> None:
    result = run_python(
        tmp_path,
        """
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_qhana_tasks import ModelsNotRegisteredError, ProcessingTask

        app = Flask("early")
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
        SQLAlchemy(app)

        with app.app_context():
            for use in (lambda: ProcessingTask.get_by_id(1), ProcessingTask("x").save):
                try:
                    use()
                except ModelsNotRegisteredError as error:
                    print(error)
        """,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(
        "Call 'QHAnaTasks(app)' or 'tasks.init_app(app)'" in line for line in lines
    )


def test_table_name_already_used_by_the_app(tmp_path: Path) -> None:
    result = run_python(
        tmp_path,
        """
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_qhana_tasks import QHAnaTasks

        app = Flask("clash")
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
        db = SQLAlchemy(app)

        class OwnTask(db.Model):
            __tablename__ = "ProcessingTask"
            id = db.Column(db.Integer, primary_key=True)

        QHAnaTasks(app)
        """,
    )

    assert result.returncode == 1
    assert (
        "RuntimeError: The application's metadata already has a table named"
        " 'ProcessingTask'." in result.stderr
    )


def version_locations(app: Flask) -> list[str]:
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        raw = config.get_main_option("version_locations")
        return raw.split(os.pathsep) if raw else []


def test_migrations_wired_when_flask_migrate_comes_first(tmp_path: Path) -> None:
    app = Flask("migrating", instance_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db.init_app(app)
    Migrate(app, db, directory=str(tmp_path / "migrations"))
    tasks.init_app(app)

    assert version_locations(app) == [
        str(tmp_path / "migrations" / "versions"),
        str(VERSIONS_DIR),
    ]


def test_migrations_wired_by_hand_when_flask_migrate_comes_later(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    Migrate(app, db, directory=str(tmp_path / "migrations"))
    assert str(VERSIONS_DIR) not in version_locations(app)

    add_migrations_to(app)
    add_migrations_to(app)

    assert version_locations(app).count(str(VERSIONS_DIR)) == 1


def test_migrations_not_wired_when_switched_off(tmp_path: Path) -> None:
    app = Flask("manual", instance_path=str(tmp_path))
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", QHANA_TASKS_MIGRATIONS=False)
    db.init_app(app)
    Migrate(app, db, directory=str(tmp_path / "migrations"))
    tasks.init_app(app)

    assert str(VERSIONS_DIR) not in version_locations(app)


def test_add_migrations_to_needs_flask_migrate(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="Flask-Migrate is not registered"):
        add_migrations_to(app)
