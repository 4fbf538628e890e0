"""Delete old tasks with all their rows, in batches.

:func:`select_prunable` selects the ids of the tasks that are due;
:func:`prune_tasks` counts them for a dry run, or deletes them in ordered
batches, each batch its own transaction, until none is left. Memory use and
lock times depend on the batch size, not on the size of the tables.

A scheduled job calls the same code as ``flask tasks prune``::

    from flask_qhana_tasks.prune import prune_tasks

    @celery.task
    def prune_old_tasks():
        report = prune_tasks()  # QHANA_TASKS_RETENTION decides what is old
        return report.deleted

Call the functions inside an application context; they use the session of the
``db`` the extension is registered with.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t
from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import InstrumentedAttribute

from .maintenance import CHILDREN
from .maintenance import id_in
from .maintenance import ids_parameter
from .maintenance import resolve_statuses
from .maintenance import status_filter
from .maintenance import TABLES
from .maintenance import task_records
from .maintenance import to_json
from .models import _session
from .models import ProcessingTask
from .models import TaskFile
from .signals import task_files_pruned
from .timeparse import DURATION_FORMS
from .timeparse import parse_duration
from .types import utcnow

#: The number of tasks deleted in one transaction when neither the call nor
#: ``QHANA_TASKS_PRUNE_BATCH_SIZE`` says otherwise.
DEFAULT_BATCH_SIZE = 1000


@dataclasses.dataclass
class PruneReport:
    """What :func:`prune_tasks` deleted, or would delete in a dry run."""

    #: Tasks that finished (or, if unfinished ones were included, started)
    #: before this time were due.
    before: datetime

    #: The number of rows deleted from each table, the task table first.
    deleted: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(TABLES, 0)
    )

    #: The number of batches committed.
    batches: int = 0

    #: The seconds the prune took.
    elapsed: float = 0.0

    #: Whether this was a dry run, which changed nothing.
    dry_run: bool = False

    @property
    def tasks(self) -> int:
        """The number of tasks deleted."""
        return self.deleted[ProcessingTask.__tablename__]


class PruneError(Exception):
    """A prune stopped before it was done.

    Every batch committed before the failure stays deleted, with all its rows;
    the failing batch was rolled back, unless the failure came after its commit.

    :param message: what went wrong.
    :param report: what was deleted before the failure.
    """

    def __init__(self, message: str, report: PruneReport) -> None:
        super().__init__(message)
        self.report = report


class NoRetentionError(ValueError):
    """A prune was asked for without saying which tasks are old enough."""


def configured_retention() -> timedelta | None:
    """Return ``QHANA_TASKS_RETENTION`` as a duration, or ``None`` if unset.

    :raises ValueError: the setting is neither a :class:`~datetime.timedelta`
        nor a duration like ``"30d"``, or it is not longer than zero.
    """
    value = current_app.config.get("QHANA_TASKS_RETENTION")

    if value is None:
        return None

    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"'QHANA_TASKS_RETENTION' is invalid: {exc}") from None

    if not isinstance(value, timedelta) or value <= timedelta():
        raise ValueError(
            f"'QHANA_TASKS_RETENTION' is {value!r}: set it to a 'timedelta' longer"
            f" than zero, or to a duration, {DURATION_FORMS}."
        )

    return value


def configured_batch_size() -> int:
    """Return ``QHANA_TASKS_PRUNE_BATCH_SIZE``, or :data:`DEFAULT_BATCH_SIZE`.

    :raises ValueError: the setting is not a whole number of at least 1.
    """
    value = current_app.config.get("QHANA_TASKS_PRUNE_BATCH_SIZE")

    if value is None:
        return DEFAULT_BATCH_SIZE

    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"'QHANA_TASKS_PRUNE_BATCH_SIZE' is {value!r}: set it to a whole number"
            " of at least 1."
        )

    return value


def prune_cutoff(
    *,
    older_than: timedelta | None = None,
    before: datetime | None = None,
    now: datetime | None = None,
) -> datetime:
    """Return the time before which tasks are due for pruning.

    :param older_than: tasks older than this are due.
    :param before: tasks before this time are due.
    :param now: the time ``older_than`` and the retention count back from; the
        current time if not given.
    :raises NoRetentionError: neither argument is given and
        ``QHANA_TASKS_RETENTION`` is not set.
    :raises ValueError: both arguments are given, or the retention setting is
        invalid.
    """
    if older_than is not None and before is not None:
        raise ValueError("Give 'older_than' or 'before', not both.")

    if before is not None:
        return before

    if older_than is None:
        older_than = configured_retention()

    if older_than is None:
        raise NoRetentionError(
            "No retention is given: pass how old tasks must be, or set"
            " 'QHANA_TASKS_RETENTION'."
        )

    return (now or utcnow()) - older_than


def select_prunable(
    before: datetime,
    *,
    statuses: Iterable[str] = (),
    include_unfinished: bool = False,
) -> sa.Select[int]:
    """Return the query of the ids of the tasks due for pruning.

    A task is due when it finished before ``before``. An unfinished task is due
    only if ``include_unfinished`` is true and it started before ``before``.

    :param before: the cutoff time.
    :param statuses: only tasks with one of these statuses; case is ignored.
    :param include_unfinished: also select unfinished tasks.
    :raises UnknownStatusError: a status is not known.
    """
    task = ProcessingTask
    due = sa.and_(task.finished_at.is_not(None), task.finished_at < before)

    if include_unfinished:
        started = sa.and_(task.finished_at.is_(None), task.started_at < before)
        due = sa.or_(due, started)

    query = sa.select(task.id).where(due)
    wanted = resolve_statuses(statuses)

    if wanted:
        query = query.where(status_filter(wanted))

    return query


def count_prunable(due: sa.Select[int]) -> dict[str, int]:
    """Count the rows of each table that pruning the selected tasks deletes.

    :param due: a query of task ids, as :func:`select_prunable` returns.
    """
    session = _session()
    tasks = sa.select(sa.func.count()).select_from(due.subquery())
    counts = {ProcessingTask.__tablename__: session.scalar(tasks) or 0}

    for child in CHILDREN:
        rows = sa.select(sa.func.count()).where(child.task_id.in_(due))
        counts[child.model.__tablename__] = session.scalar(rows) or 0

    return counts


def prune_tasks(
    before: datetime | None = None,
    *,
    older_than: timedelta | None = None,
    statuses: Iterable[str] = (),
    include_unfinished: bool = False,
    batch_size: int | None = None,
    dry_run: bool = False,
    archive: t.TextIO | None = None,
    on_batch: Callable[[PruneReport], None] | None = None,
) -> PruneReport:
    """Delete the tasks due for pruning with their steps, files, links and
    subscriptions.

    The tasks are deleted in batches in the order of their ids, each batch in a
    transaction of its own: the session is committed after each. A batch first
    locks those of its tasks that are still due, so that a task that finished
    or changed after the batch was read stays, and no row can be added to a
    task between its archive and its deletion. The child rows are deleted
    explicitly, whether the database enforces ``ON DELETE CASCADE`` or not.
    After each commit, :data:`~flask_qhana_tasks.signals.task_files_pruned` is
    sent with the batch's files, then ``on_batch`` is called.

    On servers whose connections default to another isolation level than
    ``READ COMMITTED``, such as MariaDB, each batch runs in ``READ COMMITTED``.

    Objects of the deleted tasks that the session holds are stale afterwards:
    do not use them.

    :param before: prune tasks that finished before this time.
    :param older_than: prune tasks that finished longer ago than this. With
        neither argument, ``QHANA_TASKS_RETENTION`` says.
    :param statuses: prune only tasks with one of these statuses.
    :param include_unfinished: also prune unfinished tasks that started before
        the cutoff.
    :param batch_size: delete this many tasks per transaction; defaults to
        ``QHANA_TASKS_PRUNE_BATCH_SIZE``.
    :param dry_run: delete nothing; count what would be deleted.
    :param archive: a text stream to write each task to before it is deleted,
        as one line of JSON with its child rows (see
        :func:`~flask_qhana_tasks.maintenance.task_records`). It is flushed
        before each batch commits; the lines of a batch that then fails stay in
        it, and are written again when the prune is repeated.
    :param on_batch: called with the report so far after each batch.
    :raises NoRetentionError: no cutoff is given or configured.
    :raises UnknownStatusError: a status is not known.
    :raises ValueError: an argument or setting is invalid.
    :raises RuntimeError: the session has changes that are not committed.
    :raises PruneError: a batch failed; the error holds the report of the
        batches committed before.
    """
    started = time.monotonic()
    cutoff = prune_cutoff(older_than=older_than, before=before)
    size = configured_batch_size() if batch_size is None else batch_size

    if size < 1:
        raise ValueError(f"The batch size must be at least 1, not {size}.")

    due = select_prunable(
        cutoff, statuses=statuses, include_unfinished=include_unfinished
    )
    report = PruneReport(before=cutoff, dry_run=dry_run)

    try:
        if dry_run:
            report.deleted = count_prunable(due)
        else:
            _delete_in_batches(due, size, report, archive, on_batch)
    finally:
        report.elapsed = time.monotonic() - started

    return report


def _delete_in_batches(
    due: sa.Select[int],
    size: int,
    report: PruneReport,
    archive: t.TextIO | None,
    on_batch: Callable[[PruneReport], None] | None,
) -> None:
    """Delete the selected tasks, ``size`` at a time, until none is left."""
    session = _session()

    if session.new or session.dirty or session.deleted:
        raise RuntimeError(
            "The session has changes that are not committed, and pruning commits"
            " after each batch. Commit or roll them back first."
        )

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    connection = session.connection()
    statements = _Statements(due, connection.dialect.name)
    options = _batch_options(connection)
    session.rollback()
    last_id: int | None = None

    while True:
        query = due.order_by(ProcessingTask.id).limit(size)

        if last_id is not None:
            query = query.where(ProcessingTask.id > last_id)

        try:
            # A batch's options apply to a transaction of its own: end one that
            # on_batch began, committing what it did, as the batch would.
            if options and session().in_transaction():
                session.commit()

            # Read through the connection: the ids need no ORM loading.
            connection = session.connection(execution_options=options)
            ids = list(connection.execute(query).scalars())

            if not ids:
                session.rollback()
                return

            want_files = task_files_pruned.has_receivers_for(app)
            batch = _delete_batch(connection, statements, ids, archive, want_files)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            session.rollback()
            raise PruneError(
                f"Batch {report.batches + 1} failed and was rolled back:"
                f" {_describe(exc)}.",
                report,
            ) from exc
        except BaseException:
            session.rollback()
            raise

        last_id = ids[-1]

        # Every task of the batch changed or went while it was read.
        if batch is None:
            continue

        report.batches += 1

        for name, count in batch.counts.items():
            report.deleted[name] += count

        if batch.files:
            try:
                task_files_pruned.send(app, files=batch.files)
            except Exception as exc:
                raise PruneError(
                    f"Batch {report.batches} was deleted, but a receiver of"
                    f" 'task_files_pruned' raised {_describe(exc)}; the stored"
                    " files of its tasks may remain.",
                    report,
                ) from exc

        if on_batch is not None:
            on_batch(report)


#: Each table with the column that holds the task id, children before the tasks.
_DELETION_ORDER: tuple[tuple[type[t.Any], InstrumentedAttribute[t.Any]], ...] = (
    *((child.model, child.task_id) for child in CHILDREN),
    (ProcessingTask, ProcessingTask.id),
)


#: The tasks read at a time to be written to an archive.
_ARCHIVE_CHUNK = 200


class _Batch(t.NamedTuple):
    """The rows one batch deleted."""

    #: The number of rows deleted from each table.
    counts: dict[str, int]

    #: The deleted ``TaskFile`` rows, if anyone is to hear of them.
    files: list[sa.Row[t.Any]]


class _Statements:
    """The statements of a batch, built once for every batch of a prune; the
    ids of a batch are their parameter ``ids``.

    :param due: the query of the tasks due, as :func:`select_prunable` returns.
    :param dialect: the name of the database's SQLAlchemy dialect.
    """

    def __init__(self, due: sa.Select[int], dialect: str) -> None:
        task = ProcessingTask
        self.lock_all: sa.Update | None = None

        # SQLite has no SELECT ... FOR UPDATE: a write that changes nothing
        # takes the database's write lock for the transaction instead.
        if dialect == "sqlite":
            self.lock_all = sa.update(task).where(sa.false()).values(id=task.id)

        # The tasks still due among those read, locked until the commit: no
        # row can be added to them, and none of them can finish or change
        # status, between their archive and their deletion.
        self.lock = (
            due.where(id_in(task.id, key="ids")).order_by(task.id).with_for_update()
        )

        table = TaskFile.__table__
        self.files = (
            sa.select(table)
            .where(id_in(table.c.task_id, key="ids"))
            .order_by(table.c.id)
        )
        self.deletes = [
            (model.__tablename__, sa.delete(model).where(id_in(task_id, key="ids")))
            for model, task_id in _DELETION_ORDER
        ]


def _batch_options(connection: sa.Connection) -> dict[str, t.Any]:
    """Return the execution options of a batch's transaction.

    A batch reads and locks its tasks, then archives and deletes them and their
    rows, and every statement must see the rows as the others do.
    Under ``READ COMMITTED`` each statement sees what is committed when it runs,
    and a locking read locks only the rows it returns. A server whose
    connections default to another level, such as MariaDB's ``REPEATABLE READ``,
    whose snapshot would predate the lock and whose locking reads also lock the
    gaps between rows, runs each batch in ``READ COMMITTED``. SQLite has the
    one level, and its database lock.
    """
    if connection.dialect.name == "sqlite":
        return {}

    if connection.get_isolation_level() == "READ COMMITTED":
        return {}

    return {"isolation_level": "READ COMMITTED"}


def _delete_batch(
    connection: sa.Connection,
    statements: _Statements,
    ids: list[int],
    archive: t.TextIO | None,
    want_files: bool,
) -> _Batch | None:
    """Lock the tasks of ``ids`` that are still due, archive and delete them
    with their rows, and commit.

    Return ``None``, having rolled back, if none of them is still due.

    :param connection: the connection of the session's transaction, which runs
        plain statements without loading or synchronising any object.
    """
    session = _session()

    if statements.lock_all is not None:
        connection.execute(statements.lock_all)

    parameters = {"ids": ids_parameter(ids)}
    ids = list(connection.execute(statements.lock, parameters).scalars())

    if not ids:
        session.rollback()
        return None

    parameters = {"ids": ids_parameter(ids)}
    files: list[sa.Row[t.Any]] = []

    if want_files:
        files = list(connection.execute(statements.files, parameters))

    if archive is not None:
        # A few tasks at a time, so that tasks with long logs or many rows do
        # not all sit in memory at once, whatever the batch size.
        for start in range(0, len(ids), _ARCHIVE_CHUNK):
            for record in task_records(ids[start : start + _ARCHIVE_CHUNK]):
                archive.write(to_json(record) + "\n")

        archive.flush()

    counts = {
        name: connection.execute(delete, parameters).rowcount
        for name, delete in statements.deletes
    }

    session.commit()
    return _Batch(counts, files)


def _describe(exc: BaseException) -> str:
    """Return the first line of an error's message, led by its type.

    A database error is described by the driver's error, without the statement
    SQLAlchemy adds to it.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig

    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
