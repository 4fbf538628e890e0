from __future__ import annotations

import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_qhana_tasks import QHAnaTasks

# One db and one extension for every test, as an application factory has them.
db = SQLAlchemy()
tasks = QHAnaTasks()


def _enable_sqlite_foreign_keys(dbapi_connection: t.Any, record: t.Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_app(instance_path: Path, **config: t.Any) -> Flask:
    """Return a new application with Flask-SQLAlchemy and the extension registered.

    Its database is an SQLite file in ``instance_path`` that enforces foreign keys.
    """
    instance_path.mkdir(parents=True, exist_ok=True)
    app = Flask("tests", instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = (
        f"sqlite:///{instance_path / 'tasks.sqlite'}"
    )
    app.config.update(config)
    db.init_app(app)
    tasks.init_app(app)

    with app.app_context():
        sa.event.listen(db.engine, "connect", _enable_sqlite_foreign_keys)

    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """An application whose task tables exist, inside an application context."""
    app = make_app(tmp_path / "instance")

    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()
