"""The signals the package sends, for applications to hook into.

The signals are blinker signals, like Flask's own. A receiver is called with the
application as the sender and the signal's data as keyword arguments; accept
``**extra`` so that arguments added later do not break it.

The three change signals, :data:`task_status_changed`, :data:`task_steps_changed`
and :data:`task_details_changed`, are sent after a transaction of the
extension's ``db`` has committed, once for each task it changed and each kind of
change, never for a change that was rolled back. :doc:`/signals` describes when
each is sent, and how to notify webhooks of changes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from collections.abc import Mapping

from blinker import Namespace
from blinker import Signal
from flask import current_app

logger = logging.getLogger(__name__)

_signals = Namespace()

#: Sent after each batch of :func:`~flask_qhana_tasks.prune.prune_tasks` has
#: committed, with the files of the deleted tasks, so the application can
#: delete what its storage holds for them.
#:
#: ``files`` is a list of the deleted ``TaskFile`` rows (one
#: :class:`sqlalchemy.engine.Row` each, with one attribute a column:
#: ``task_id``, ``file_name``, ``storage_provider``, ``file_storage_data``,
#: ``file_type`` and so on). The rows are gone from the database when the
#: signal is sent; a batch without files sends nothing. Dry runs send nothing.
#:
#: A receiver that raises stops the prune after the batch it was called for;
#: :class:`~flask_qhana_tasks.prune.PruneError` reports the batches committed
#: so far, this one included::
#:
#:     from flask_qhana_tasks.signals import task_files_pruned
#:
#:     @task_files_pruned.connect_via(app)
#:     def delete_stored_files(sender, files, **extra):
#:         for row in files:
#:             storage = STORAGE_PROVIDERS[row.storage_provider]
#:             storage.delete(row.file_storage_data)
#:
#: Connect with :meth:`~blinker.Signal.connect` instead of ``connect_via`` to
#: hear of every application in the process.
task_files_pruned = _signals.signal("task-files-pruned")

#: Sent when a committed transaction changed the status of a task: its
#: ``task_status`` or its ``finished_at``, or it added the task.
#:
#: ``task_id`` is the id of the task, ``event`` is ``"status"``. A receiver runs
#: after the commit, and may use the session::
#:
#:     from flask_qhana_tasks.signals import task_status_changed
#:
#:     @task_status_changed.connect_via(app)
#:     def log_status(sender, *, task_id, **extra):
#:         task = ProcessingTask.get_by_id(task_id)
#:         sender.logger.info("Task %s is %s.", task_id, task.status)
#:
#: A receiver that raises is logged, and the other receivers are called: the
#: change is committed already.
task_status_changed = _signals.signal("task-status-changed")

#: Sent when a committed transaction added, cleared or removed a step of a task,
#: including through :func:`~flask_qhana_tasks.maintenance.clear_steps` and
#: :func:`~flask_qhana_tasks.maintenance.clear_stale_steps`.
#:
#: ``task_id`` is the id of the task, ``event`` is ``"steps"``.
task_steps_changed = _signals.signal("task-steps-changed")

#: Sent when a committed transaction changed anything else of a task (its log,
#: progress, data, parameters, name, ...), or added, changed or deleted one of
#: its files or links. A new task is a change of its details too.
#:
#: ``task_id`` is the id of the task, ``event`` is ``"details"``.
task_details_changed = _signals.signal("task-details-changed")

#: The ``event`` of :data:`task_status_changed`.
STATUS = "status"

#: The ``event`` of :data:`task_steps_changed`.
STEPS = "steps"

#: The ``event`` of :data:`task_details_changed`.
DETAILS = "details"

#: The change signals by their events, in the order a task's are sent:
#: ``"status"``, ``"steps"``, ``"details"``. Connect a receiver to each to hear
#: of every change.
#:
#: :meta hide-value:
CHANGE_SIGNALS: dict[str, Signal] = {
    STATUS: task_status_changed,
    STEPS: task_steps_changed,
    DETAILS: task_details_changed,
}


def _send_changes(
    changes: Mapping[int, Collection[str]], skip: Collection[int]
) -> None:
    """Send the change signals of a committed transaction, in the order of the
    tasks' ids, each task's in the order of :data:`CHANGE_SIGNALS`.

    The changes are committed, so a receiver that raises is logged and the
    other receivers and signals are sent all the same.

    :param changes: the events of each changed task.
    :param skip: the ids of tasks deleted in the transaction, of which nothing
        is sent.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    for task_id in sorted(changes.keys() - skip):
        events = changes[task_id]

        for event, signal in CHANGE_SIGNALS.items():
            if event not in events or not signal.receivers:
                continue

            for receiver in signal.receivers_for(app):
                try:
                    receiver(app, task_id=task_id, event=event)
                except Exception:
                    logger.exception(
                        "A receiver of the %s change of task %s failed; the"
                        " change is committed, and the other receivers are called.",
                        event,
                        task_id,
                    )
