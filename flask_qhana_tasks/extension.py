"""The :class:`QHAnaTasks` extension object."""

from __future__ import annotations

import typing as t

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from .migrations import add_migrations_to
from .models import _binding
from .models import _watch
from .models import Base

if t.TYPE_CHECKING:
    pass

#: The key of the extension in :attr:`flask.Flask.extensions`.
EXTENSION_KEY = "qhana_tasks"

#: The marker in :attr:`sqlalchemy.schema.Table.info` of the tables this package
#: adds to an application's metadata.
TABLE_INFO_KEY = "flask_qhana_tasks"


class QHAnaTasks:
    """Durable records of long-running tasks for a Flask application.

    Register it like any extension, after Flask-SQLAlchemy::

        db = SQLAlchemy()
        tasks = QHAnaTasks()

        def create_app():
            app = Flask(__name__)
            db.init_app(app)
            tasks.init_app(app)
            return app

    :param app: the application to register with; leave out to call
        :meth:`init_app` later.
    :param db: the Flask-SQLAlchemy instance whose database holds the tasks;
        defaults to the one registered on the application.
    """

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        self.db = db

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        """Register the extension and the task models with an application.

        The task tables are added to the metadata of ``db``, so
        ``db.create_all()`` creates them and Flask-Migrate's autogenerate sees
        them. If Flask-Migrate is registered on the application already, the
        package's migrations are added to its version locations (see
        :data:`QHANA_TASKS_MIGRATIONS`).

        The ``flask tasks`` commands and :mod:`flask_qhana_tasks.prune` read three
        more keys:

        - ``QHANA_TASKS_RETENTION``: how long finished tasks are kept when a prune
          names no cutoff, as a :class:`~datetime.timedelta` or a duration like
          ``"30d"``. Default ``None``: a prune must name its cutoff.
        - ``QHANA_TASKS_PRUNE_BATCH_SIZE``: how many tasks a prune deletes per
          transaction. Default ``1000``.
        - ``QHANA_TASKS_EXTRA_STATUSES``: the statuses the application records
          besides those of :class:`~flask_qhana_tasks.TaskStatus`, so that
          ``--status`` accepts them before any task has them. Default ``()``.

        :param app: the application.
        :param db: the Flask-SQLAlchemy instance; defaults to the one given to the
            constructor, then to the one registered on ``app``.
        :raises RuntimeError: the extension is registered on ``app`` already, no
            Flask-SQLAlchemy instance is known, or the models are registered with
            a different one.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"A 'QHAnaTasks' instance is already registered on the application"
                f" {app.name!r}. Call 'init_app' once per application."
            )

        db = self._resolve_db(app, db)
        _register_models(db)
        self.db = db
        app.extensions[EXTENSION_KEY] = self

        app.config.setdefault("QHANA_TASKS_MIGRATIONS", True)
        app.config.setdefault("QHANA_TASKS_RETENTION", None)
        app.config.setdefault("QHANA_TASKS_PRUNE_BATCH_SIZE", 1000)
        app.config.setdefault("QHANA_TASKS_EXTRA_STATUSES", ())

        if app.config["QHANA_TASKS_MIGRATIONS"] and "migrate" in app.extensions:
            add_migrations_to(app)

        from .cli import tasks_cli

        app.cli.add_command(tasks_cli)

    def _resolve_db(self, app: Flask, db: SQLAlchemy | None) -> SQLAlchemy:
        db = db or self.db or app.extensions.get("sqlalchemy")

        if db is None:
            raise RuntimeError(
                f"No Flask-SQLAlchemy instance is registered on the application"
                f" {app.name!r}. Call 'db.init_app(app)' before"
                f" 'QHAnaTasks.init_app(app)', or pass 'db' to it."
            )

        if not isinstance(db, SQLAlchemy):
            raise TypeError(
                "'db' must be a 'flask_sqlalchemy.SQLAlchemy' instance, not"
                f" {type(db).__name__!r}."
            )

        return db


def _register_models(db: SQLAlchemy) -> None:
    """Bind the models to ``db`` and add their tables to its metadata."""
    bound = _binding.db

    if bound is not None and bound is not db:
        raise RuntimeError(
            "The flask_qhana_tasks models are already registered with another"
            f" Flask-SQLAlchemy instance ({bound!r}). The models are module-level"
            " classes, so one process can register them with one 'db': create it"
            " once at module level and pass it to every application."
        )

    if bound is db:
        return

    target = db.metadata

    for table in Base.metadata.sorted_tables:
        existing = target.tables.get(table.key)

        if existing is not None and not existing.info.get(TABLE_INFO_KEY):
            raise RuntimeError(
                f"The application's metadata already has a table named"
                f" {table.name!r}. Remove the application's own task models and"
                " import them from 'flask_qhana_tasks' instead."
            )

    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(target)
        copy.info[TABLE_INFO_KEY] = True

    _watch(db.session)
    _binding.db = db
