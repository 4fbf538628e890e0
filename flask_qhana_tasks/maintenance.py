"""Look into the recorded tasks and clear their steps.

These functions serve the ``flask tasks`` commands and any scheduled job that
wants the same answers. Call them inside an application context: they use the
session of the ``db`` the extension is registered with. Only
:func:`clear_steps` and :func:`clear_stale_steps` change anything, and they
commit.

Pruning lives in :mod:`flask_qhana_tasks.prune`.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import date
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute

from ._changes import record_changes
from .models import _session
from .models import ProcessingTask
from .models import Step
from .models import TaskFile
from .models import TaskLink
from .models import TaskUpdateSubscription
from .signals import STEPS
from .status import TaskStatus
from .types import utcnow

#: The statuses every application knows, in the order reports list them.
STANDARD_STATUSES: tuple[str, ...] = tuple(status.value for status in TaskStatus)


class UnknownStatusError(ValueError):
    """A status was asked for that no task can have."""


class UnknownTaskError(LookupError):
    """Tasks were asked for by ids that no task has.

    :param task_ids: the ids without a task.
    """

    def __init__(self, task_ids: Sequence[int]) -> None:
        self.task_ids = list(task_ids)

        if len(self.task_ids) == 1:
            message = f"No task has the id {self.task_ids[0]}."
        else:
            message = f"No tasks have the ids {', '.join(map(str, self.task_ids))}."

        super().__init__(message)


class _Child(t.NamedTuple):
    """A table whose rows belong to a task."""

    #: The key of the rows in a task record.
    key: str

    #: The mapped class.
    model: type[t.Any]

    #: The column that holds the task's id.
    task_id: InstrumentedAttribute[t.Any]

    #: The column that orders the rows of one task.
    order: InstrumentedAttribute[t.Any]


#: The tables whose rows belong to a task, in the order a task record lists them.
CHILDREN: tuple[_Child, ...] = (
    _Child("steps", Step, Step.id, Step.number),
    _Child("outputs", TaskFile, TaskFile.task_id, TaskFile.id),
    _Child("links", TaskLink, TaskLink.task_id, TaskLink.id),
    _Child(
        "subscriptions",
        TaskUpdateSubscription,
        TaskUpdateSubscription.task_id,
        TaskUpdateSubscription.id,
    ),
)

#: The task model and the models of its child tables.
MODELS: tuple[type[t.Any], ...] = (ProcessingTask, *(child.model for child in CHILDREN))

#: The names of the task table and its child tables, as reports key their counts.
TABLES: tuple[str, ...] = tuple(model.__tablename__ for model in MODELS)


@dataclasses.dataclass(frozen=True)
class TaskSummary:
    """One line of :func:`list_tasks`."""

    #: The id of the task.
    id: int

    #: The name of the task.
    name: str | None

    #: The status, as :attr:`ProcessingTask.status` gives it.
    status: str

    #: When the task started.
    started_at: datetime | None

    #: When the task finished, or ``None``.
    finished_at: datetime | None

    #: The name of the task's current step (its number if it has no name), or
    #: ``None`` for a task without steps.
    step: str | None

    #: Whether the current step waits for input.
    awaiting_input: bool

    def elapsed(self, now: datetime | None = None) -> timedelta | None:
        """Return how long the task ran, or has run so far if it has not finished.

        :param now: the time an unfinished task is measured to; the current time
            if not given.
        """
        if self.started_at is None:
            return None

        return (self.finished_at or now or utcnow()) - self.started_at


@dataclasses.dataclass(frozen=True)
class TaskPage:
    """The tasks :func:`list_tasks` found."""

    #: The tasks, newest first.
    tasks: list[TaskSummary]

    #: The ``offset`` that shows the next page, or ``None`` if this is the last.
    next_offset: int | None


@dataclasses.dataclass(frozen=True)
class TaskStats:
    """The numbers :func:`task_stats` counts."""

    #: The number of tasks in each status; the standard statuses are always
    #: there, others when a task has them.
    by_status: dict[str, int]

    #: The unfinished task that started first, or ``None``.
    oldest_unfinished: TaskSummary | None

    #: The number of tasks with a step that waits for input.
    awaiting_input: int

    #: The number of rows in each table.
    rows: dict[str, int]


@dataclasses.dataclass(frozen=True)
class ClearedStep:
    """A step that :func:`clear_steps` or :func:`clear_stale_steps` cleared."""

    #: The id of the task.
    task_id: int

    #: The position of the step in its task.
    number: int

    #: The name of the step.
    step_id: str | None


def status_of(finished: bool, task_status: str | None) -> str:
    """Return the status of a task, by the rule of :attr:`ProcessingTask.status`.

    :param finished: whether the task has finished.
    :param task_status: the recorded status.
    """
    if not finished:
        return TaskStatus.PENDING.value

    return task_status or TaskStatus.UNKNOWN.value


def accepted_statuses() -> list[str]:
    """Return every status a task can be asked for by.

    Those are the standard ones of :class:`TaskStatus`, those named in
    ``QHANA_TASKS_EXTRA_STATUSES``, and every status recorded in the database,
    since applications may write statuses of their own.
    """
    extra = current_app.config.get("QHANA_TASKS_EXTRA_STATUSES") or ()

    if isinstance(extra, str):
        extra = (extra,)

    column = ProcessingTask.task_status
    query = sa.select(column).where(column.is_not(None), column != "").distinct()
    recorded = _session().scalars(query).all()
    custom = sorted({*extra, *recorded} - set(STANDARD_STATUSES))
    return [*STANDARD_STATUSES, *custom]


def resolve_statuses(values: Iterable[str]) -> list[str]:
    """Return the statuses ``values`` name, spelled as they are recorded.

    Case is ignored: ``success`` names ``SUCCESS``, and a name recorded in
    several of its usual spellings (as typed, upper case, lower case,
    capitalised) names each of them. Each spelling is looked up through the
    index on ``task_status``, so the cost does not grow with the table.

    :param values: the statuses asked for.
    :raises UnknownStatusError: a value names no standard status, none in
        ``QHANA_TASKS_EXTRA_STATUSES`` and none recorded.
    """
    values = [value.strip() for value in values]

    if not values:
        return []

    extra = current_app.config.get("QHANA_TASKS_EXTRA_STATUSES") or ()
    known = [*STANDARD_STATUSES, *((extra,) if isinstance(extra, str) else extra)]
    # One index seek per spelling of the values asked for: a DISTINCT over the
    # matching rows would read every task of a status.
    column = ProcessingTask.task_status
    session = _session()
    spellings = sorted({form for value in values for form in _spellings(value)})
    # Each query returns the spelling as stored: under a case-insensitive
    # collation, as MariaDB's default is, 'failure' finds 'FAILURE'.
    found = {
        stored
        for form in spellings
        if (stored := session.scalar(sa.select(column).where(column == form).limit(1)))
    }
    candidates = [*known, *sorted(found - set(known))]
    resolved: list[str] = []

    for value in values:
        wanted = value.casefold()
        matches = [status for status in candidates if status.casefold() == wanted]

        if not matches:
            raise UnknownStatusError(
                f"{value!r} is not a task status: use one of"
                f" {', '.join(accepted_statuses())}, or add it to"
                " 'QHANA_TASKS_EXTRA_STATUSES'."
            )

        resolved.extend(status for status in matches if status not in resolved)

    return resolved


def _spellings(status: str) -> set[str]:
    """Return the usual spellings of a status: as given, upper, lower, capitalised."""
    return {status, status.upper(), status.lower(), status.capitalize()}


def status_filter(statuses: Sequence[str]) -> sa.ColumnElement[bool]:
    """Return the condition that a task has one of ``statuses``.

    The statuses are taken as they are; :func:`resolve_statuses` checks what a
    user typed.

    :param statuses: the statuses, as :attr:`ProcessingTask.status` gives them.
    """
    finished_at = ProcessingTask.finished_at
    task_status = ProcessingTask.task_status
    conditions: list[sa.ColumnElement[bool]] = []

    for status in statuses:
        if status == TaskStatus.UNKNOWN:
            recorded = sa.or_(
                task_status.is_(None), task_status == "", task_status == status
            )
        else:
            recorded = task_status == status

        conditions.append(sa.and_(finished_at.is_not(None), recorded))

        if status == TaskStatus.PENDING:
            conditions.append(finished_at.is_(None))

    return sa.or_(sa.false(), *conditions)


def _name_filter(pattern: str) -> sa.ColumnElement[bool]:
    """Return the condition that a task's name matches a glob pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = escaped.replace("*", "%").replace("?", "_")
    return ProcessingTask.task_name.ilike(like, escape="\\")


def _summaries(
    *conditions: sa.ColumnElement[bool],
    order_by: Sequence[t.Any],
    limit: int,
    offset: int = 0,
) -> list[TaskSummary]:
    """Return the summaries of the tasks that match every condition, in order."""
    task = ProcessingTask
    current = sa.and_(Step.id == task.id, Step.number == task.current_step)
    query = (
        sa.select(
            task.id,
            task.task_name,
            task.started_at,
            task.finished_at,
            task.task_status,
            Step.number,
            Step.step_id,
            Step.cleared,
        )
        .outerjoin(Step, current)
        .where(*conditions)
        .order_by(*order_by)
        .offset(offset)
        .limit(limit)
    )
    summaries = []

    for row in _session().execute(query):
        step = None if row.number is None else row.step_id or str(row.number)
        summary = TaskSummary(
            id=row.id,
            name=row.task_name,
            status=status_of(row.finished_at is not None, row.task_status),
            started_at=row.started_at,
            finished_at=row.finished_at,
            step=step,
            awaiting_input=step is not None and not row.cleared,
        )
        summaries.append(summary)

    return summaries


def list_tasks(
    *,
    statuses: Iterable[str] = (),
    name: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> TaskPage:
    """Return the tasks that match every filter given, newest first.

    :param statuses: only tasks with one of these statuses; ``"PENDING"``
        means unfinished. Case is ignored.
    :param name: only tasks whose name matches this pattern, in which ``*``
        stands for any text and ``?`` for one character. Case is ignored.
    :param since: only tasks started at or after this time.
    :param before: only tasks started before this time.
    :param limit: at most this many tasks.
    :param offset: skip this many matching tasks first.
    :raises UnknownStatusError: a status is not known.
    :raises ValueError: ``limit`` is less than 1 or ``offset`` less than 0.
    """
    if limit < 1:
        raise ValueError(f"The limit must be at least 1, not {limit}.")

    if offset < 0:
        raise ValueError(f"The offset must be at least 0, not {offset}.")

    task = ProcessingTask
    conditions = []
    wanted = resolve_statuses(statuses)

    if wanted:
        conditions.append(status_filter(wanted))

    if name is not None:
        conditions.append(_name_filter(name))

    if since is not None:
        conditions.append(task.started_at >= since)

    if before is not None:
        conditions.append(task.started_at < before)

    # One more than asked for tells whether there is another page.
    tasks = _summaries(
        *conditions,
        order_by=(task.started_at.desc(), task.id.desc()),
        limit=limit + 1,
        offset=offset,
    )

    if len(tasks) > limit:
        return TaskPage(tasks[:limit], offset + limit)

    return TaskPage(tasks, None)


def id_in(
    column: sa.ColumnElement[t.Any] | InstrumentedAttribute[t.Any],
    ids: Sequence[int] | None = None,
    *,
    key: str | None = None,
) -> sa.ColumnElement[bool]:
    """Return the condition that ``column`` holds one of ``ids``.

    The ids go to the database as one parameter where it can take a list that
    way: an array on PostgreSQL, a JSON array read by ``json_each`` on SQLite.
    Building and sending an ``IN`` list of a thousand parameters costs more
    than the database takes to use it, and drivers limit the number of
    parameters. Other databases get an ``IN`` list with the numbers written into
    the statement.

    :param column: an integer column.
    :param ids: the values to match; leave them out to pass them when the
        statement runs, as the parameter ``key``, in the form
        :func:`ids_parameter` returns.
    :param key: the name of the parameter; a name of its own if not given.
    """
    dialect = _session().get_bind().dialect.name
    value = None if ids is None else ids_parameter(ids)

    if dialect == "postgresql":
        array = sa.bindparam(key, value, type_=postgresql.ARRAY(sa.Integer()))
        return column == sa.any_(array)

    if dialect == "sqlite":
        listed = sa.func.json_each(sa.bindparam(key, value, type_=sa.String()))
        return column.in_(sa.select(listed.table_valued("value").c.value))

    listed_ids: sa.BindParameter[list[int]] = sa.bindparam(
        key, value, expanding=True, literal_execute=True
    )
    return column.in_(listed_ids)


def ids_parameter(ids: Sequence[int]) -> t.Any:
    """Return ids as the parameter of a condition :func:`id_in` made takes them.

    :param ids: the values to match.
    """
    if _session().get_bind().dialect.name == "sqlite":
        return json.dumps(list(ids))

    return list(ids)


def task_records(
    task_ids: Sequence[int], *, secrets: bool = True
) -> list[dict[str, t.Any]]:
    """Return every column of the given tasks and their child rows, in the order
    of their ids.

    A record holds the task's columns, its ``status``, and lists of its
    ``steps``, ``outputs``, ``links`` and ``subscriptions``, each row a dict of
    its columns without the task's id and the generated columns. :func:`to_json`
    writes it.

    :param task_ids: the ids; those without a task are left out.
    :param secrets: include the files' ``security_tag``.
    """
    session = _session()
    table = ProcessingTask.__table__
    query = sa.select(table).where(id_in(table.c.id, task_ids)).order_by(table.c.id)
    records: dict[int, dict[str, t.Any]] = {}

    for row in session.execute(query):
        finished = row.finished_at is not None
        records[row.id] = {
            "id": row.id,
            "task_name": row.task_name,
            "status": status_of(finished, row.task_status),
            **row._mapping,
            **{child.key: [] for child in CHILDREN},
        }

    for child in CHILDREN:
        child_table = child.model.__table__
        column = child_table.c[child.task_id.key]
        # Generated columns, such as a subscription's event_key, derive from the
        # others: a record leaves them out.
        recorded = [c for c in child_table.c if c.computed is None]
        query = (
            sa.select(*recorded)
            .where(id_in(column, list(records)))
            .order_by(column, child_table.c[child.order.key])
        )

        for row in session.execute(query):
            values = dict(row._mapping)
            task_id = values.pop(column.key)

            if not secrets:
                values.pop("security_tag", None)

            records[task_id][child.key].append(values)

    return list(records.values())


def task_details(task_id: int, *, secrets: bool = False) -> dict[str, t.Any]:
    """Return the record of one task, as :func:`task_records` makes it.

    :param task_id: the id of the task.
    :param secrets: include the files' ``security_tag``, which lets anyone who
        knows it download the file.
    :raises UnknownTaskError: no task has the id.
    """
    records = task_records([task_id], secrets=secrets)

    if not records:
        raise UnknownTaskError([task_id])

    return records[0]


def _json_default(value: t.Any) -> t.Any:
    """Write the values :mod:`json` does not know: date-times and dataclasses."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)

    raise TypeError(f"{type(value).__name__!r} values cannot be written as JSON.")


def to_json(value: t.Any, *, indent: int | None = None) -> str:
    """Return ``value`` as JSON, with date-times in ISO 8601 and dataclasses as
    objects.

    :param value: a record, a report or a list of them.
    :param indent: indent nested values by this many spaces; on one line if
        ``None``.
    """
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=indent)


def _awaiting_input() -> sa.ColumnElement[bool]:
    """Return the condition that a step waits for input."""
    return Step.cleared.is_not(True)


def task_stats() -> TaskStats:
    """Count the tasks by status, the tasks awaiting input and the rows per table."""
    session = _session()
    task = ProcessingTask
    unfinished = task.finished_at.is_(None)
    by_status = dict.fromkeys(STANDARD_STATUSES, 0)

    # Grouped by columns rather than by a CASE expression, which some databases
    # refuse to group by when it holds bound parameters.
    grouped = sa.select(
        unfinished.label("unfinished"), task.task_status, sa.func.count()
    ).group_by(unfinished, task.task_status)

    for is_unfinished, task_status, count in session.execute(grouped):
        status = status_of(not is_unfinished, task_status)
        by_status[status] = by_status.get(status, 0) + count

    oldest = _summaries(
        unfinished,
        task.started_at.is_not(None),
        order_by=(task.started_at, task.id),
        limit=1,
    )
    awaiting = session.scalar(
        sa.select(sa.func.count(sa.distinct(Step.id))).where(_awaiting_input())
    )
    rows = {}

    for model in MODELS:
        count_rows = sa.select(sa.func.count()).select_from(model)
        rows[model.__tablename__] = session.scalar(count_rows) or 0

    return TaskStats(by_status, oldest[0] if oldest else None, awaiting or 0, rows)


#: The most steps one ``UPDATE`` of :func:`_clear` names by their keys.
_CLEAR_CHUNK = 500


def _clear(which: sa.ColumnElement[bool], dry_run: bool) -> list[ClearedStep]:
    """Clear the steps awaiting input that match a condition.

    The steps are selected first, then updated by their keys: a step added
    between the two statements is neither cleared nor reported, and the tasks
    whose steps were cleared hear of it through ``task_steps_changed``.
    """
    session = _session()
    query = (
        sa.select(Step.id, Step.number, Step.step_id)
        .where(which, _awaiting_input())
        .order_by(Step.id, Step.number)
    )
    steps = [ClearedStep(*row) for row in session.execute(query)]

    if not steps or dry_run:
        return steps

    keys = sa.tuple_(Step.id, Step.number)

    for start in range(0, len(steps), _CLEAR_CHUNK):
        chunk = [
            (step.task_id, step.number) for step in steps[start : start + _CLEAR_CHUNK]
        ]
        update = (
            sa.update(Step)
            .where(keys.in_(chunk), _awaiting_input())
            .values(cleared=True)
        )
        session.execute(update, execution_options={"synchronize_session": False})

    record_changes(session, dict.fromkeys(step.task_id for step in steps), STEPS)
    session.commit()
    return steps


def clear_steps(task_ids: Iterable[int], *, dry_run: bool = False) -> list[ClearedStep]:
    """Mark every step of the given tasks that waits for input as cleared.

    Nothing changes unless every id has a task. The session is committed.

    :param task_ids: the ids of the tasks.
    :param dry_run: change nothing; return what would be cleared.
    :raises UnknownTaskError: an id has no task.
    :return: the steps cleared, by task and number.
    """
    ids = list(dict.fromkeys(task_ids))
    query = sa.select(ProcessingTask.id).where(ProcessingTask.id.in_(ids))
    found = set(_session().scalars(query))
    missing = [task_id for task_id in ids if task_id not in found]

    if missing:
        raise UnknownTaskError(missing)

    return _clear(Step.id.in_(ids), dry_run)


def clear_stale_steps(
    older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
) -> list[ClearedStep]:
    """Mark as cleared every step that has waited for input longer than a time.

    A step waits from when it was added. Steps recorded before
    :attr:`Step.created_at` existed count from when their task started. The
    session is committed.

    :param older_than: clear the steps that have waited longer than this.
    :param dry_run: change nothing; return what would be cleared.
    :param now: the time ``older_than`` counts back from; the current time if
        not given.
    :return: the steps cleared, by task and number.
    """
    cutoff = (now or utcnow()) - older_than
    started = (
        sa.select(ProcessingTask.started_at)
        .where(ProcessingTask.id == Step.id)
        .scalar_subquery()
    )
    return _clear(sa.func.coalesce(Step.created_at, started) < cutoff, dry_run)
