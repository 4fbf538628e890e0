"""The Alembic revisions of the task tables, and their wiring into Flask-Migrate.

The files in ``versions/`` form the ``qhana_tasks`` branch. They run in the host
application's Alembic environment, as a second head beside the application's
own history: ``flask db upgrade heads`` applies both. A revision that has
shipped is never edited; changes come as new revisions.
"""

from __future__ import annotations

import logging
import os
import re
import typing as t
from pathlib import Path

from alembic.util import CommandError
from flask import current_app

if t.TYPE_CHECKING:
    from alembic.config import Config
    from alembic.operations.ops import MigrationScript
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask import Flask

logger = logging.getLogger(__name__)

#: The folder of the package's Alembic revisions.
VERSIONS_DIR = Path(__file__).parent / "versions"

#: The branch label of the package's revisions.
BRANCH_LABEL = "qhana_tasks"

#: The characters Alembic's ``path_separator`` option names.
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}

#: How an environment passes its own hook to ``context.configure``.
_EXPLICIT_HOOK = re.compile(
    r"process_revision_directives\s*=\s*process_revision_directives"
)

_RevisionHook = t.Callable[[t.Any, t.Any, list[t.Any]], None]


def add_migrations_to(app: Flask) -> None:
    """Wire the package's revisions into the application's Flask-Migrate setup.

    Adds the package's ``versions`` folder to Alembic's version locations, so that
    ``flask db upgrade heads`` creates and updates the task tables, and makes
    ``flask db migrate`` base the application's new revisions on the
    application's own head and write them into its own folder.

    :meth:`QHAnaTasks.init_app <flask_qhana_tasks.QHAnaTasks.init_app>` calls
    this when Flask-Migrate is registered before it; call it yourself after
    ``migrate.init_app(app, db)`` otherwise. Calling it again does nothing.

    :param app: the application, with Flask-Migrate registered.
    :raises RuntimeError: Flask-Migrate is not registered on ``app``.
    """
    migrate_config = app.extensions.get("migrate")

    if migrate_config is None:
        raise RuntimeError(
            f"Flask-Migrate is not registered on the application {app.name!r}."
            " Call 'migrate.init_app(app, db)' before 'add_migrations_to(app)'."
        )

    migrate = migrate_config.migrate

    if _configure not in migrate.configure_callbacks:
        migrate.configure(_configure)


def _configure(config: Config) -> Config:
    """The Flask-Migrate configure callback: runs before each ``flask db`` command."""
    _add_version_location(config)
    _install_revision_guard(config)
    return config


def _add_version_location(config: Config) -> None:
    """Add :data:`VERSIONS_DIR` to the version locations of an Alembic config."""
    ours = str(VERSIONS_DIR)
    separator = _separator(config)
    raw = config.get_main_option("version_locations")

    if raw:
        # Alembic splits on spaces and commas when no separator is configured.
        parts = raw.split(separator) if separator else re.split(r", *| +", raw)
        locations = [part.strip() for part in parts if part.strip()]
    else:
        script_location = config.get_main_option("script_location") or ""
        locations = [os.path.join(script_location, "versions")]

    if ours not in locations:
        locations.append(ours)

    if separator is None:
        # Name a separator, so that paths with spaces survive: "path_separator"
        # for current Alembic, "version_path_separator" for older releases.
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_path_separator", "os")
        separator = os.pathsep

    # The value passes through ConfigParser interpolation, which reads "%".
    joined = separator.join(locations).replace("%", "%%")
    config.set_main_option("version_locations", joined)


def _separator(config: Config) -> str | None:
    """Return the character configured to separate version locations, if any."""
    for option in ("path_separator", "version_path_separator"):
        name = config.get_main_option(option)

        if name is not None:
            return _SEPARATORS.get(name, os.pathsep)

    return None


def _install_revision_guard(config: Config) -> None:
    """Add :func:`_revision_guard` to the application's Flask-Migrate arguments.

    Environments that Flask-Migrate generated before 4.0.5 pass a hook of their
    own to Alembic and fail on a second one; they are left as they are, and
    ``flask db migrate`` behaves there as Alembic's own.
    """
    env_py = Path(config.get_main_option("script_location") or "") / "env.py"

    try:
        source = env_py.read_text(encoding="utf-8")
    except OSError:
        return

    if _EXPLICIT_HOOK.search(source):
        return

    configure_args = current_app.extensions["migrate"].configure_args
    hook = configure_args.get("process_revision_directives")

    if not getattr(hook, "_qhana_tasks", False):
        configure_args["process_revision_directives"] = _revision_guard(hook)


def _revision_guard(previous: _RevisionHook | None) -> _RevisionHook:
    """Return a ``process_revision_directives`` hook that keeps new revisions out
    of the package.

    :param previous: the hook the application configured, if any; it runs first.
    """

    def hook(
        context: MigrationContext, revision: t.Any, directives: list[t.Any]
    ) -> None:
        if previous is not None:
            previous(context, revision, directives)
        else:
            _skip_empty_autogenerate(context, directives)

        if context.script is None:
            return

        for directive in directives:
            _base_on_application_history(context.script, directive)

    hook._qhana_tasks = True  # type: ignore[attr-defined]
    return hook


def _skip_empty_autogenerate(
    context: MigrationContext, directives: list[MigrationScript]
) -> None:
    """Write no revision when autogenerate found no change.

    This is what Flask-Migrate's environment does when no hook is configured;
    installing this package's hook must not change it.
    """
    config = context.config
    autogenerate = getattr(getattr(config, "cmd_opts", None), "autogenerate", False)

    upgrade_ops = directives[0].upgrade_ops if directives else None

    if autogenerate and upgrade_ops is not None and upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def _is_ours(script: ScriptDirectory, revision_id: str) -> bool:
    revision = script.get_revision(revision_id)
    return (
        revision is not None
        and Path(revision.path).parent.resolve() == VERSIONS_DIR.resolve()
    )


def _base_on_application_history(
    script: ScriptDirectory, directive: MigrationScript
) -> None:
    """Point a new revision at the application's own head and folder.

    Alembic bases a new revision on the only head there is, and writes it into
    that head's folder. With the package's branch beside the application's
    history, that would put the application's revision into the installed
    package, or fail for want of a single head.
    """
    own_folders = [
        location
        for location in script.version_locations
        if Path(location).resolve() != VERSIONS_DIR.resolve()
    ]

    if directive.version_path is not None and (
        Path(directive.version_path).resolve() == VERSIONS_DIR.resolve()
    ):
        raise CommandError(
            f"New revisions cannot be written into {VERSIONS_DIR}, the folder of"
            " flask-qhana-tasks' own migrations. Choose a folder of the"
            " application with '--version-path'."
        )

    if directive.head == "head":
        own_heads = [head for head in script.get_heads() if not _is_ours(script, head)]

        if len(own_heads) == 1:
            directive.head = own_heads[0]
        elif not own_heads:
            directive.head = "base"

    if directive.head in (None, "base"):
        if directive.version_path is None and own_folders:
            directive.version_path = own_folders[0]

        return

    for parent in script.get_revisions(directive.head):
        if parent is not None and _is_ours(script, parent.revision):
            raise CommandError(
                f"The new revision would follow {parent.revision!r}, a revision of"
                f" flask-qhana-tasks' '{BRANCH_LABEL}' branch. Base it on the"
                " application's own history with '--head <revision>'."
            )
