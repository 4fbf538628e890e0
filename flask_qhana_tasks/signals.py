"""The signals the package sends, for applications to hook into.

The signals are blinker signals, like Flask's own. A receiver is called with the
application as the sender and the signal's data as keyword arguments; accept
``**extra`` so that arguments added later do not break it.
"""

from __future__ import annotations

from blinker import Namespace

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
