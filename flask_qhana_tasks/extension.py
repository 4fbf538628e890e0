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
    from .resource import OutputUrlResolver

_R = t.TypeVar("_R", bound="OutputUrlResolver")

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
    :param output_url_resolver: returns the URL of a result file for the
        task-status resource; see :meth:`output_url_resolver`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        db: SQLAlchemy | None = None,
        *,
        output_url_resolver: OutputUrlResolver | None = None,
    ) -> None:
        self.db = db

        #: The callable that gives the task-status resource the URL of a result
        #: file, or ``None``. Set it with :meth:`output_url_resolver`.
        self.resolve_output_url: OutputUrlResolver | None = output_url_resolver

        if app is not None:
            self.init_app(app)

    def output_url_resolver(self, resolver: _R) -> _R:
        """Register the function that returns the URL of a result file.

        The task-status resource (see :doc:`/api-resource`) lists the result
        files of a finished task with their URLs. Where files are stored, and
        how they are downloaded, is the application's business, so it gives
        the URLs with this decorator::

            @tasks.output_url_resolver
            def file_url(file: TaskFile) -> str:
                return url_for(
                    "files.download",
                    file_id=file.id,
                    tag=file.security_tag,
                    _external=True,
                )

        The function is called inside the request, with each result file that
        has a ``file_type`` and a ``mimetype``, and returns its absolute URL. A
        later registration replaces an earlier one; it serves every application
        the extension is registered on.

        Without a resolver, the resource answers for tasks without such files,
        and fails with a :class:`RuntimeError` (a 500 response) for a finished
        task that has one.

        :param resolver: the function, given a :class:`~flask_qhana_tasks.TaskFile`.
        :return: ``resolver``, unchanged.
        """
        self.resolve_output_url = resolver
        return resolver

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

        Two keys switch on the task-status resource (see :doc:`/api-resource`).
        They are read here, so set them before calling ``init_app``:

        - ``QHANA_TASKS_API``: mount the resource. Default ``False``.
        - ``QHANA_TASKS_API_PREFIX``: where to mount it, a path such as
          ``"/tasks"`` (the default), under which ``<id>/`` is the resource of
          a task.

        :param app: the application.
        :param db: the Flask-SQLAlchemy instance; defaults to the one given to the
            constructor, then to the one registered on ``app``.
        :raises RuntimeError: the extension is registered on ``app`` already, no
            Flask-SQLAlchemy instance is known, or the models are registered with
            a different one.
        :raises ValueError: ``QHANA_TASKS_API_PREFIX`` is not a path.
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
        app.config.setdefault("QHANA_TASKS_API", False)
        app.config.setdefault("QHANA_TASKS_API_PREFIX", "/tasks")

        if app.config["QHANA_TASKS_MIGRATIONS"] and "migrate" in app.extensions:
            add_migrations_to(app)

        if app.config["QHANA_TASKS_API"]:
            from .resource import blueprint

            prefix = _check_prefix(app.config["QHANA_TASKS_API_PREFIX"])
            app.register_blueprint(blueprint, url_prefix=prefix)

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


def _check_prefix(prefix: t.Any) -> str:
    """Return ``QHANA_TASKS_API_PREFIX`` if it is a path a blueprint can be
    mounted at."""
    if (
        not isinstance(prefix, str)
        or not prefix.startswith("/")
        or "//" in prefix
        or any(char in prefix for char in "<>?#%\\")
        or any(char.isspace() for char in prefix)
    ):
        raise ValueError(
            "QHANA_TASKS_API_PREFIX must be a path that starts with '/' and holds"
            " no '//', spaces, '<', '>', '?', '#', '%' or backslashes, such as"
            f" '/tasks' or '/api/tasks', got {prefix!r}."
        )

    return prefix


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
