"""Collect the changes of tasks per transaction, and send the change signals
once the transaction has committed.

Changes are recorded in the frame of the innermost savepoint, or of the
session's transaction outside any savepoint. A released savepoint hands its
frame to the enclosing one; a savepoint or transaction that rolls back drops
its frame. When the session's outermost transaction has committed, its frame
is sent: each task's kinds of change once, through the signals of
:mod:`flask_qhana_tasks.signals`.

The signals are sent when the transaction has ended, so that receivers can use
the session again: what they do begins a new transaction.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import scoped_session
from sqlalchemy.orm import Session
from sqlalchemy.orm import SessionTransaction

from .signals import _send_changes

#: The key of the frames in :attr:`sqlalchemy.orm.Session.info`.
_INFO_KEY = "flask_qhana_tasks.changes"


class _Frame:
    """The changes recorded in one transaction or savepoint."""

    __slots__ = ("changed", "committed", "deleted")

    def __init__(self) -> None:
        #: The kinds of change of each task.
        self.changed: dict[int, set[str]] = {}

        #: The tasks deleted, of which nothing is sent.
        self.deleted: set[int] = set()

        #: Whether the transaction or savepoint has committed.
        self.committed = False

    def merge(self, other: _Frame) -> None:
        """Add the changes of ``other``, a savepoint released inside this one."""
        for task_id, kinds in other.changed.items():
            self.changed.setdefault(task_id, set()).update(kinds)

        self.deleted |= other.deleted


def _frames(session: Session) -> dict[SessionTransaction, _Frame]:
    """Return the frames of a session's open transactions and savepoints."""
    frames: dict[SessionTransaction, _Frame] | None = session.info.get(_INFO_KEY)

    if frames is None:
        frames = session.info[_INFO_KEY] = {}

    return frames


def _boundary(session: Session) -> SessionTransaction | None:
    """Return the innermost savepoint, or else the session's transaction."""
    return session.get_nested_transaction() or session.get_transaction()


#: A session, or the scoped session of the current one.
AnySession: t.TypeAlias = "Session | scoped_session[t.Any]"


def _current_frame(session: AnySession) -> _Frame:
    """Return the frame changes are recorded in now, beginning the transaction
    if the session has none."""
    current = session() if isinstance(session, scoped_session) else session
    transaction = _boundary(current) or current.begin()
    frames = _frames(current)
    frame = frames.get(transaction)

    if frame is None:
        frame = frames[transaction] = _Frame()

    return frame


def record_change(session: AnySession, task_id: int, kinds: Iterable[str]) -> None:
    """Record that a task changed in the session's current transaction.

    :param session: the session whose transaction made the change.
    :param task_id: the id of the task.
    :param kinds: the kinds of change: some of the events of
        :data:`~flask_qhana_tasks.signals.CHANGE_SIGNALS`.
    """
    changed = _current_frame(session).changed

    if task_id in changed:
        changed[task_id].update(kinds)
    else:
        changed[task_id] = set(kinds)


def record_changes(session: AnySession, task_ids: Iterable[int], kind: str) -> None:
    """Record one kind of change of several tasks.

    :param session: the session whose transaction made the change.
    :param task_ids: the ids of the tasks.
    :param kind: the kind of change: one of the events of
        :data:`~flask_qhana_tasks.signals.CHANGE_SIGNALS`.
    """
    changed = _current_frame(session).changed

    for task_id in task_ids:
        changed.setdefault(task_id, set()).add(kind)


def record_deletion(session: AnySession, task_id: int) -> None:
    """Record that a task was deleted: nothing is sent of it.

    :param session: the session whose transaction deleted it.
    :param task_id: the id of the task.
    """
    _current_frame(session).deleted.add(task_id)


def _after_commit(session: Session) -> None:
    """Mark the frame of the transaction or savepoint that committed."""
    transaction = _boundary(session)
    frames: dict[SessionTransaction, _Frame] | None = session.info.get(_INFO_KEY)

    if transaction is not None and frames:
        frame = frames.get(transaction)

        if frame is not None:
            frame.committed = True


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """Hand a released savepoint's changes on, send a committed transaction's,
    drop those of one that rolled back."""
    frames: dict[SessionTransaction, _Frame] | None = session.info.get(_INFO_KEY)

    if not frames:
        return

    frame = frames.pop(transaction, None)

    if frame is None or not frame.committed:
        return

    if transaction.nested:
        outer = transaction.parent

        # The flush's own subtransactions are no boundary: skip to the
        # enclosing savepoint or the session's transaction.
        while outer is not None and not (outer.nested or outer.parent is None):
            outer = outer.parent

        if outer is not None:
            frames.setdefault(outer, _Frame()).merge(frame)

        return

    if transaction.parent is None:
        _send_changes(frame.changed, frame.deleted)


def listen_to_transactions(target: t.Any) -> None:
    """Keep the frames of the transactions of a session, a sessionmaker or a
    scoped session, and send the changes of each that commits.

    :param target: what :func:`sqlalchemy.event.listen` takes for session
        events.
    """
    sa.event.listen(target, "after_commit", _after_commit)
    sa.event.listen(target, "after_transaction_end", _after_transaction_end)
