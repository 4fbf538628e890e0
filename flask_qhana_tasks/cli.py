"""The ``flask tasks`` command group."""

from __future__ import annotations

from flask.cli import AppGroup

#: The ``flask tasks`` group; :meth:`QHAnaTasks.init_app` adds it to the app's CLI.
tasks_cli = AppGroup(
    "tasks",
    help="Inspect the recorded tasks, clear their steps and prune old ones.",
)
