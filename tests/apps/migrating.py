"""An application whose database is managed with Flask-Migrate, for the tests.

``DATABASE_URI`` and ``MIGRATIONS_DIR`` configure it; ``APP_MODELS`` adds models
of the application's own (``notes``, ``notes,tags``), so that tests can make the
application's schema change between runs.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_qhana_tasks import QHAnaTasks

db = SQLAlchemy()
models = set(filter(None, os.environ.get("APP_MODELS", "").split(",")))

if "notes" in models:

    class Note(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)


if "tags" in models:

    class Tag(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URI"]
    db.init_app(app)
    Migrate(app, db, directory=os.environ["MIGRATIONS_DIR"])
    QHAnaTasks(app)
    return app
