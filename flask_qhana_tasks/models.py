"""The task models.

The classes are mapped on a registry of this package, with a
:class:`~sqlalchemy.schema.MetaData` whose naming convention the package owns,
so that the shipped migrations never depend on the host application's settings.
:meth:`QHAnaTasks.init_app <flask_qhana_tasks.QHAnaTasks.init_app>` copies the
tables into the application's Flask-SQLAlchemy metadata and binds the models to
that ``db``'s session.

Table, column and constraint names are those of the QHAna plugin runner, so an
existing database can be adopted.
"""

from __future__ import annotations

import typing as t
from datetime import datetime
from types import EllipsisType
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.orderinglist import ordering_list
from sqlalchemy.ext.orderinglist import OrderingList
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import InstanceState
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import MappedAsDataclass
from sqlalchemy.orm import relationship
from sqlalchemy.orm import scoped_session
from sqlalchemy.orm import Session
from sqlalchemy.orm import UOWTransaction
from sqlalchemy.orm.attributes import set_committed_value

from ._changes import listen_to_transactions
from ._changes import record_change
from ._changes import record_deletion
from .signals import DETAILS
from .signals import STATUS
from .signals import STEPS
from .status import TaskStatus
from .types import LongText
from .types import track_json_changes
from .types import UTCDateTime
from .types import utcnow

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

#: The naming convention of every constraint and index the package creates. It
#: is the one the QHAna plugin runner uses, so adopted databases keep their names.
NAMING_CONVENTION: dict[str, str] = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

#: The ``file_type`` of a :class:`TaskFile` that is not a result of its task.
TEMP_FILE_TYPE = "temp-file"

_STEP_LIST: t.Callable[[], OrderingList[t.Any]] = ordering_list("number")


class ModelsNotRegisteredError(RuntimeError):
    """A model touched the database before any ``QHAnaTasks.init_app`` call."""


class StepNotClearedError(AssertionError):
    """A step was added while the task still waits for input on the previous one.

    It subclasses :class:`AssertionError`, which code written for the QHAna
    plugin runner catches.
    """


class WebhookRef(t.NamedTuple):
    """A webhook to call for a change of a task."""

    #: The URL to send the notification to.
    webhook_href: str

    #: The URL of the task resource the notification is about.
    task_href: str


class TaskProgress(t.NamedTuple):
    """The progress of a task, as returned by :attr:`ProcessingTask.progress`."""

    #: The progress reached.
    value: float

    #: The value progress starts from.
    start: float

    #: The value progress reaches when the task is done.
    target: float

    #: The unit of the values, for example ``"%"``.
    unit: str


class _Binding:
    """The Flask-SQLAlchemy instance the models were registered with."""

    db: SQLAlchemy | None = None


_binding = _Binding()


def _session() -> scoped_session[t.Any]:
    """Return the session of the ``db`` the models are registered with."""
    db = _binding.db

    if db is None:
        raise ModelsNotRegisteredError(
            "The flask_qhana_tasks models are not registered with a Flask-SQLAlchemy"
            " instance. Call 'QHAnaTasks(app)' or 'tasks.init_app(app)' after"
            " 'db.init_app(app)' before using them."
        )

    return db.session


class Base(MappedAsDataclass, DeclarativeBase):
    """The declarative base of the task models."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _task_filter(
    column: InstrumentedAttribute[t.Any], task_or_id: ProcessingTask | int
) -> t.Any:
    """Return the condition that ``column`` refers to the given task."""
    if isinstance(task_or_id, ProcessingTask):
        # A task that was never flushed has no id yet: flushing gives it one if it
        # is in the session; a task outside the session has no rows to match.
        if task_or_id.id is None:
            _session().flush()

        if task_or_id.id is None:
            return sa.false()

        return column == task_or_id.id

    if isinstance(task_or_id, bool) or not isinstance(task_or_id, int):
        raise TypeError(
            "Expected a 'ProcessingTask' or a task id ('int'), got"
            f" {type(task_or_id).__name__!r} ({task_or_id!r})."
        )

    return column == task_or_id


_M = t.TypeVar("_M", bound="_Saveable")


class _Saveable:
    """``save`` and ``get_by_id`` as the QHAna plugin runner's models offer them."""

    @classmethod
    def get_by_id(cls: type[_M], id_: int) -> _M | None:
        """Return the object with the given id, or ``None`` if there is none."""
        return _session().get(cls, id_)

    def save(self, commit: bool = False) -> None:
        """Add the object to the session.

        :param commit: also commit the session, persisting every pending change.
        """
        session = _session()
        session.add(self)

        if commit:
            session.commit()


class Step(Base):
    """One step of a multi-step task.

    Create steps with :meth:`ProcessingTask.add_next_step`; ``number`` counts from
    0 and is set when the step is appended to :attr:`ProcessingTask.steps`.
    """

    __tablename__ = "Step"

    #: The id of the task the step belongs to.
    id: Mapped[int] = mapped_column(
        sa.ForeignKey("ProcessingTask.id", ondelete="CASCADE"), primary_key=True
    )

    #: The name of the step, for example ``"step1"`` or ``"choose-parameters"``.
    step_id: Mapped[str] = mapped_column(sa.String(500), nullable=True)

    #: The URL of the REST resource that takes the step's input.
    href: Mapped[str] = mapped_column(sa.String(500), nullable=True)

    #: The URL of the micro-frontend that collects the step's input.
    ui_href: Mapped[str] = mapped_column(sa.String(500), nullable=True)

    #: ``False`` while the step waits for input.
    cleared: Mapped[bool] = mapped_column(nullable=True, default=False)

    #: The position of the step in its task, from 0.
    number: Mapped[int] = mapped_column(primary_key=True, init=False)

    #: When the step was added, and so since when it has waited for input.
    #: ``None`` for steps recorded before this column existed.
    created_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, init=False, default_factory=utcnow
    )


class ProcessingTask(_Saveable, Base):
    """The durable record of one task."""

    __tablename__ = "ProcessingTask"
    __table_args__ = (
        # Serves listing by status, newest first, in index order; its first
        # column also serves lookups by status alone.
        sa.Index(
            "ix_ProcessingTask_task_status_started_at",
            "task_status",
            "started_at",
            "id",
        ),
    )

    #: The id of the task, generated by the database.
    id: Mapped[int] = mapped_column(primary_key=True, init=False)

    #: The name of the task, for example the plugin that runs it.
    task_name: Mapped[str] = mapped_column(sa.String(500), nullable=True, index=True)

    #: When the task started; defaults to the time the task is created.
    started_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=True, index=True, default_factory=utcnow
    )

    #: When the task finished, successfully or not; ``None`` while it runs.
    finished_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, index=True, default=None
    )

    #: The parameters of the task, usually serialised as JSON.
    parameters: Mapped[str] = mapped_column(LongText, nullable=True, default="")

    #: A JSON store for lightweight task data. Changes inside nested dicts and
    #: lists are persisted on commit.
    data: Mapped[t.Any] = mapped_column(sa.JSON(), nullable=True, default_factory=dict)

    #: Whether the task has steps that wait for a user's input.
    multi_step: Mapped[bool] = mapped_column(nullable=True, default=False)

    #: The steps of a multi-step task, in order.
    steps: Mapped[list[Step]] = relationship(
        order_by=Step.number,
        collection_class=_STEP_LIST,
        cascade="all, delete-orphan",
        default_factory=_STEP_LIST,
    )

    #: The index of the last added step, ``-1`` before the first.
    current_step: Mapped[int] = mapped_column(nullable=True, default=-1)

    #: The progress reached, or ``None`` if the task reports no progress.
    progress_value: Mapped[float | None] = mapped_column(sa.Float(), default=None)

    #: The value progress starts from.
    progress_start: Mapped[float] = mapped_column(sa.Float(), nullable=True, default=0)

    #: The value progress reaches when the task is done.
    progress_target: Mapped[float] = mapped_column(
        sa.Float(), nullable=True, default=100
    )

    #: The unit of the progress values.
    progress_unit: Mapped[str] = mapped_column(
        sa.String(100), nullable=True, default="%"
    )

    #: The final status, one of the :class:`TaskStatus` values; see
    #: :attr:`status`.
    task_status: Mapped[str | None] = mapped_column(sa.String(100), default=None)

    #: The log of the task, one entry a line.
    task_log: Mapped[str] = mapped_column(LongText, default="")

    #: The files the task produced.
    outputs: Mapped[list[TaskFile]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        order_by="TaskFile.id",
        default_factory=list,
    )

    #: Links to resources of other services.
    links: Mapped[list[TaskLink]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        order_by="TaskLink.id",
        default_factory=list,
    )

    #: Webhooks to notify of changes.
    subscriptions: Mapped[list[TaskUpdateSubscription]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        order_by="TaskUpdateSubscription.id",
        default_factory=list,
    )

    @property
    def is_finished(self) -> bool:
        """Whether the task has finished, successfully or not."""
        return self.finished_at is not None

    @property
    def is_ok(self) -> bool:
        """Whether the task finished successfully."""
        return self.task_status == TaskStatus.SUCCESS

    @property
    def status(self) -> str:
        """The status of the task.

        ``"PENDING"`` while the task runs; once it has finished, ``task_status``,
        or ``"UNKNOWN"`` if none was recorded.
        """
        if not self.is_finished:
            return TaskStatus.PENDING.value

        return self.task_status or TaskStatus.UNKNOWN.value

    @property
    def progress(self) -> TaskProgress | None:
        """The progress of the task, or ``None`` if it reports none.

        A progress value of 0 is progress: only ``None`` means there is none.
        """
        if self.progress_value is None:
            return None

        return TaskProgress(
            self.progress_value,
            self.progress_start,
            self.progress_target,
            self.progress_unit,
        )

    @property
    def has_uncleared_step(self) -> bool:
        """Whether the last step still waits for input."""
        return bool(self.steps) and not self.steps[-1].cleared

    def add_next_step(
        self, href: str, ui_href: str, step_id: str, commit: bool = False
    ) -> Step:
        """Append a step that waits for input, and mark the task as multi-step.

        :param href: the URL of the REST resource that takes the step's input.
        :param ui_href: the URL of the micro-frontend for the step.
        :param step_id: the name of the step.
        :param commit: also commit the session.
        :raises StepNotClearedError: the previous step has not been cleared.
        :return: the new step.
        """
        self.lock()

        if self.has_uncleared_step:
            previous = self.steps[-1]
            raise StepNotClearedError(
                f"Task {self.id} still waits for input on step {previous.step_id!r}"
                f" (number {previous.number}). Call 'clear_previous_step()' before"
                f" adding step {step_id!r}."
            )

        step = Step(id=self.id, step_id=step_id, href=href, ui_href=ui_href)
        self.multi_step = True
        self.steps.append(step)
        self.current_step = step.number
        self.save(commit=commit)
        return step

    def clear_previous_step(self, commit: bool = False) -> None:
        """Mark the step that waits for input as cleared; none waiting is not an error.

        The database clears the step with one ``UPDATE``, which takes the step's
        row lock: a worker adding the next step at the same time, which locks the
        task, sees the step either waiting or cleared, never half-changed. Only
        the last step can wait for input; should older ones wait too, as in data
        written by other code, they are cleared as well.

        :param commit: also commit the session.
        """
        row_id = self._row_id()

        if row_id is None:
            if self.steps:
                self.steps[-1].cleared = True
        else:
            session = _session()
            session.flush()
            result = session.execute(
                sa.update(Step)
                .where(Step.id == row_id, Step.cleared.is_not(True))
                .values(cleared=True)
                .execution_options(synchronize_session="evaluate")
            )

            if result.rowcount:  # type: ignore[attr-defined]
                record_change(session, row_id, (STEPS,))

        self.save(commit=commit)

    def lock(self) -> None:
        """Lock the task's row until the transaction ends, and load it afresh.

        Other writers that call :meth:`lock`, add or clear a step, or write the
        row wait until this transaction commits or rolls back. Use it before a
        read-modify-write of :attr:`data` or any other column that several
        workers change::

            task = ProcessingTask.get_by_id(task_id)
            task.lock()
            task.data["seen"] = task.data.get("seen", 0) + 1
            db.session.commit()

        On PostgreSQL and MariaDB the lock is a row lock taken by
        ``SELECT ... FOR UPDATE``; on SQLite, which has no such statement, it is
        the database's write lock, taken by a write to the row
        (``UPDATE ... SET id = id``). A task not written yet needs no lock.
        """
        row_id = self._row_id()

        if row_id is None:
            return

        # Flush first: loading the row afresh discards changes not yet written.
        session = _session()
        session.flush()

        # SQLite has no SELECT ... FOR UPDATE: a write takes its database lock.
        if session.get_bind().dialect.name == "sqlite":
            session.execute(
                sa.update(ProcessingTask)
                .where(ProcessingTask.id == row_id)
                .values(id=ProcessingTask.id)
                .execution_options(synchronize_session=False)
            )

        # Locking reads return the latest committed rows. A plain read would
        # return the transaction's snapshot under MariaDB's default REPEATABLE
        # READ, and miss what other workers committed since it began.
        fresh = {"populate_existing": True}
        session.execute(
            sa.select(ProcessingTask)
            .where(ProcessingTask.id == row_id)
            .with_for_update()
            .execution_options(**fresh)
        ).scalar_one()

        # The steps are read by their whole keys, 0 to current_step: a range
        # read would also lock the gaps next to the task's steps in MariaDB's
        # index, where other tasks' new steps go, and deadlock with them.
        last = -1 if self.current_step is None else self.current_step
        numbers = list(range(last + 1))
        steps = session.scalars(
            sa.select(Step)
            .where(Step.id == row_id, Step.number.in_(numbers))
            .order_by(Step.number)
            .with_for_update()
            .execution_options(**fresh)
        ).all()
        set_committed_value(self, "steps", steps)

    def add_task_log_entry(self, task_log: str, commit: bool = False) -> None:
        """Append an entry to the log, on a line of its own.

        The database appends the entry in one ``UPDATE``, so the entries that
        several workers append to one task at once are all kept. The
        ``task_log`` attribute is loaded again when it is next read.

        :param task_log: the text to append.
        :param commit: also commit the session.
        """
        row_id = self._row_id()

        if row_id is not None:
            column = ProcessingTask.task_log
            appended = sa.case(
                (sa.func.coalesce(column, "") == "", task_log),
                else_=column + "\n" + task_log,
            )
            self._update_row(row_id, {"task_log": appended})
        elif self.task_log:
            self.task_log = f"{self.task_log}\n{task_log}"
        else:
            self.task_log = task_log

        self.save(commit=commit)

    def set_progress(
        self,
        value: float | None,
        *,
        start: float | None = None,
        target: float | None = None,
        unit: str | None = None,
        commit: bool = False,
    ) -> None:
        """Record the progress of the task, and optionally its scale, at once.

        :param value: the progress reached; ``None`` for no progress.
        :param start: the value progress starts from, if it changes.
        :param target: the value progress reaches when the task is done, if it
            changes.
        :param unit: the unit of the values, if it changes.
        :param commit: also commit the session.
        """
        changes: dict[str, t.Any] = {"progress_value": value}

        for key, given in (
            ("progress_start", start),
            ("progress_target", target),
            ("progress_unit", unit),
        ):
            if given is not None:
                changes[key] = given

        for key, given in changes.items():
            setattr(self, key, given)

        self.save(commit=commit)

    def advance_progress(self, amount: float = 1, commit: bool = False) -> None:
        """Add to the progress value.

        The database adds the amount in one ``UPDATE``, so workers that advance
        the progress of one task at once each add theirs. A task without
        progress so far counts from ``progress_start``.

        :param amount: what to add.
        :param commit: also commit the session.
        """
        row_id = self._row_id()

        if row_id is not None:
            current = sa.func.coalesce(
                ProcessingTask.progress_value, ProcessingTask.progress_start, 0
            )
            self._update_row(row_id, {"progress_value": current + amount})
        else:
            base = self.progress_value
            base = base if base is not None else self.progress_start or 0
            self.progress_value = base + amount

        self.save(commit=commit)

    def _row_id(self) -> int | None:
        """Add the task to the session; return the id of its row, if it has one.

        The id comes from the identity the session knows the task by, so that a
        task whose attributes expired at a commit is not loaded again for it.
        """
        _session().add(self)
        identity = sa.inspect(self).identity
        return None if identity is None else t.cast(int, identity[0])

    def _update_row(self, row_id: int, values: dict[str, t.Any]) -> None:
        """Write ``values``, SQL expressions over the row, with one ``UPDATE``.

        Pending changes are flushed first, so that they cannot overwrite the
        result; the changed attributes are loaded again when next read.
        """
        session = _session()
        session.flush()
        session.execute(
            sa.update(ProcessingTask)
            .where(ProcessingTask.id == row_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        session.expire(self, list(values))
        kinds = {_TASK_CHANGES.get(key, DETAILS) for key in values}
        record_change(session, row_id, [kind for kind in kinds if kind is not None])


class TaskFile(_Saveable, Base):
    """A file a task produced, kept in a storage outside the database."""

    __tablename__ = "TaskFile"

    #: The id of the file, generated by the database.
    id: Mapped[int] = mapped_column(primary_key=True, init=False)

    #: The task the file belongs to.
    task: Mapped[ProcessingTask] = relationship(back_populates="outputs")

    #: A secret that must be presented to download the file.
    security_tag: Mapped[str] = mapped_column(sa.String(64))

    #: The name of the storage provider that holds the file.
    storage_provider: Mapped[str] = mapped_column(sa.String(64))

    #: The name of the file.
    file_name: Mapped[str] = mapped_column(sa.String(500), index=True)

    #: What the storage provider needs to find the file.
    file_storage_data: Mapped[str] = mapped_column(LongText)

    #: The type of the file's content; ``"temp-file"`` marks a file that is not a
    #: result.
    file_type: Mapped[str | None] = mapped_column(sa.String(255))

    #: The media type of the file.
    mimetype: Mapped[str | None] = mapped_column(sa.String(255), default=None)

    #: When the file was recorded; defaults to the time the file is created.
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=True, default_factory=utcnow
    )

    task_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ProcessingTask.id", ondelete="CASCADE"),
        index=True,
        init=False,
        repr=False,
    )

    @classmethod
    def get_task_result_files(
        cls, task_or_id: ProcessingTask | int
    ) -> t.Sequence[TaskFile]:
        """Return the result files of a task: every file not typed ``"temp-file"``.

        Files without a type count as results.

        :param task_or_id: the task, or its id.
        """
        query = (
            sa.select(cls)
            .where(
                _task_filter(cls.task_id, task_or_id),
                sa.or_(cls.file_type.is_(None), cls.file_type != TEMP_FILE_TYPE),
            )
            .order_by(cls.id)
        )
        return _session().execute(query).scalars().all()


class TaskLink(_Saveable, Base):
    """A link from a task to a resource of another service."""

    __tablename__ = "TaskLink"

    #: The id of the link, generated by the database.
    id: Mapped[int] = mapped_column(primary_key=True, init=False)

    #: The task the link belongs to.
    task: Mapped[ProcessingTask] = relationship(back_populates="links")

    #: What the linked resource is to the task.
    type: Mapped[str] = mapped_column(sa.String(64))

    #: The URL of the linked resource.
    href: Mapped[str] = mapped_column(sa.String(500))

    task_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ProcessingTask.id", ondelete="CASCADE"),
        index=True,
        init=False,
        repr=False,
    )


#: What :attr:`TaskUpdateSubscription.event_key` holds: ``""`` for a subscription
#: to every event (``event_type`` ``NULL``), the event type after a ``"="``
#: otherwise, so that no event type can take the place of ``NULL``.
_EVENT_KEY = sa.case(
    (sa.column("event_type", sa.String()).is_(None), ""),
    else_=sa.literal("=") + sa.column("event_type", sa.String()),
)


class TaskUpdateSubscription(_Saveable, Base):
    """A webhook that wants to hear of changes of a task.

    A webhook subscribes to one event of a task, or to every event, at most
    once: the database refuses a second row with the same task, webhook and
    event type, counting ``None`` as a value of its own, with an
    :class:`~sqlalchemy.exc.IntegrityError`.
    """

    __tablename__ = "TaskUpdateSubscription"
    __table_args__ = (
        # NULLs are distinct in unique indexes, so the index reads the event
        # through event_key, which is never NULL.
        sa.Index(
            "uq_TaskUpdateSubscription_task_id",
            "task_id",
            "webhook_href",
            "event_key",
            unique=True,
        ),
    )

    #: The id of the subscription, generated by the database.
    id: Mapped[int] = mapped_column(primary_key=True, init=False)

    #: The task subscribed to.
    task: Mapped[ProcessingTask] = relationship(back_populates="subscriptions")

    #: The URL to notify.
    webhook_href: Mapped[str] = mapped_column(sa.String(500))

    #: The URL of the task resource, sent along with each notification.
    task_href: Mapped[str] = mapped_column(sa.String(500))

    #: The event to notify of; ``None`` subscribes to every event.
    event_type: Mapped[str | None] = mapped_column(sa.String(64), default=None)

    #: ``event_type`` as the unique index of subscriptions reads it, computed by
    #: the database: ``""`` for ``None``, the event type after a ``"="``
    #: otherwise.
    event_key: Mapped[str | None] = mapped_column(
        sa.String(65),
        sa.Computed(_EVENT_KEY, persisted=True),
        init=False,
        repr=False,
    )

    task_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ProcessingTask.id", ondelete="CASCADE"),
        index=True,
        init=False,
        repr=False,
    )

    @classmethod
    def get_by_task_and_event(
        cls, task_or_id: ProcessingTask | int, event: str | None = None
    ) -> list[WebhookRef]:
        """Return the webhooks to notify of an event of a task, each once.

        :param task_or_id: the task, or its id.
        :param event: the event; subscriptions without an event type match every
            event. ``None`` returns the webhooks of every subscription of the task.
        """
        query = sa.select(cls.webhook_href, cls.task_href).where(
            _task_filter(cls.task_id, task_or_id)
        )

        if event is not None:
            query = query.where(
                sa.or_(cls.event_type.is_(None), cls.event_type == event)
            )

        query = query.distinct().order_by(cls.webhook_href, cls.task_href)
        return [WebhookRef(*row) for row in _session().execute(query)]

    @classmethod
    def get_by_task_and_subscriber(
        cls,
        task_or_id: ProcessingTask | int,
        webhook_href: str,
        event: str | EllipsisType | None = ...,
    ) -> t.Sequence[TaskUpdateSubscription]:
        """Return the subscriptions of one webhook to a task.

        :param task_or_id: the task, or its id.
        :param webhook_href: the webhook's URL.
        :param event: ``...`` (the default) for subscriptions to any event,
            ``None`` for those without an event type, a string for those to that
            event.
        """
        query = sa.select(cls).where(
            _task_filter(cls.task_id, task_or_id), cls.webhook_href == webhook_href
        )

        if event is None:
            query = query.where(cls.event_type.is_(None))
        elif event is not ...:
            query = query.where(cls.event_type == event)

        return _session().execute(query.order_by(cls.id)).scalars().all()


#: The kind of change that a change of each attribute of a task is, where it is
#: not a change of the details; ``None`` where it is no change of the task.
#: ``multi_step`` and ``current_step`` change with the steps alone.
_TASK_CHANGES: dict[str, str | None] = {
    "task_status": STATUS,
    "finished_at": STATUS,
    "steps": STEPS,
    "multi_step": STEPS,
    "current_step": STEPS,
    "subscriptions": None,
}


def _record_deletions(
    session: Session, flush_context: UOWTransaction, instances: t.Any
) -> None:
    """Record the deletions the flush is about to write.

    They are recorded before the flush, while the rows still exist to load a
    file's or link's task id from.
    """
    for obj in session.deleted:
        if isinstance(obj, ProcessingTask):
            record_deletion(session, obj.id)
        elif isinstance(obj, Step):
            record_change(session, obj.id, (STEPS,))
        elif isinstance(obj, (TaskFile, TaskLink)) and obj.task_id is not None:
            record_change(session, obj.task_id, (DETAILS,))


def _record_flush(session: Session, flush_context: UOWTransaction) -> None:
    """Record the changes of tasks a flush has written.

    The session still lists the objects as new and changed, with their
    attribute history, and new rows have their ids.
    """
    for obj in session.new:
        if isinstance(obj, ProcessingTask):
            record_change(session, obj.id, (STATUS, DETAILS))
        elif isinstance(obj, Step):
            record_change(session, obj.id, (STEPS,))
        elif isinstance(obj, (TaskFile, TaskLink)) and obj.task_id is not None:
            record_change(session, obj.task_id, (DETAILS,))

    for obj in session.dirty:
        if isinstance(obj, ProcessingTask):
            kinds = _task_changes(obj)

            if kinds:
                record_change(session, obj.id, kinds)
        elif not session.is_modified(obj, include_collections=False):
            continue
        elif isinstance(obj, Step):
            record_change(session, obj.id, (STEPS,))
        elif isinstance(obj, (TaskFile, TaskLink)):
            for task_id in _owners(obj):
                record_change(session, task_id, (DETAILS,))


def _task_changes(task: ProcessingTask) -> set[str]:
    """Return the kinds of change the changed attributes of a task make."""
    state = sa.inspect(task)
    attrs = state.attrs
    kinds: set[str] = set()

    # Only the attributes written since the last flush can have changed.
    for key in set(attrs.keys()).difference(state.unmodified):
        if not attrs[key].history.has_changes():
            continue

        kind = _TASK_CHANGES.get(key, DETAILS)

        if kind is not None:
            kinds.add(kind)

    return kinds


def _owners(obj: TaskFile | TaskLink) -> set[int]:
    """Return the ids of the tasks a file or link belongs to and belonged to."""
    state: InstanceState[TaskFile | TaskLink] = sa.inspect(obj)
    attrs = state.attrs
    owners = {obj.task_id, *attrs.task_id.history.deleted}
    owners.update(task.id for task in attrs.task.history.deleted if task is not None)
    owners.discard(None)
    return t.cast(set[int], owners)


def _watch(target: t.Any) -> None:
    """Record the changes of tasks made through the sessions of ``target`` and
    send the change signals after each commit; once per target.

    :param target: a session, sessionmaker or scoped session.
    """
    if event.contains(target, "after_flush", _record_flush):
        return

    event.listen(target, "before_flush", _record_deletions)
    event.listen(target, "after_flush", _record_flush)
    listen_to_transactions(target)


def _check_string(column: sa.Column[t.Any], name: str) -> t.Callable[..., None]:
    """Return an attribute listener that checks values for a string column."""
    length = getattr(column.type, "length", None)

    def check(target: t.Any, value: t.Any, oldvalue: t.Any, initiator: t.Any) -> None:
        if value is None:
            if not column.nullable:
                raise ValueError(f"{name} must not be None.")

            return

        if not isinstance(value, str):
            raise TypeError(
                f"{name} takes a 'str', got {type(value).__name__!r} ({value!r})."
            )

        if length is not None and len(value) > length:
            raise ValueError(
                f"{name} takes at most {length} characters, got {len(value)}"
                f" ({value[:40]!r}...)."
            )

    return check


def check_http_url(
    value: str, name: str = "TaskUpdateSubscription.webhook_href"
) -> None:
    """Check that ``value`` is an absolute ``http`` or ``https`` URL.

    :param value: the URL.
    :param name: what holds the URL, for the error message.
    :raises ValueError: ``value`` is relative, or of another scheme.
    """
    parts = urlsplit(value)

    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{name} must be an absolute http or https URL, got {value!r}."
        )


def _check_webhook_href(
    target: t.Any, value: t.Any, oldvalue: t.Any, initiator: t.Any
) -> None:
    """Refuse webhook URLs that are not absolute http(s) URLs."""
    if isinstance(value, str):
        check_http_url(value)


def _add_validators() -> None:
    """Check values as they are assigned, before the database sees them."""
    for mapper in Base.registry.mappers:
        for column in mapper.columns:
            if isinstance(column.type, sa.String) and column.key:
                name = f"{mapper.class_.__name__}.{column.key}"
                attribute = getattr(mapper.class_, column.key)
                event.listen(attribute, "set", _check_string(column, name))

    event.listen(TaskUpdateSubscription.webhook_href, "set", _check_webhook_href)
    track_json_changes(ProcessingTask.data)


_add_validators()
