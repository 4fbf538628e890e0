"""The ``flask tasks`` command group.

Each command parses its options, calls a function of
:mod:`flask_qhana_tasks.maintenance` or :mod:`flask_qhana_tasks.prune`, and
prints what it returns. Bad input ends a command with exit status 2, a failure
with exit status 1, each with a one-line message.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import typing as t
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import click
from flask.cli import AppGroup

from .maintenance import clear_stale_steps
from .maintenance import clear_steps
from .maintenance import ClearedStep
from .maintenance import list_tasks
from .maintenance import resolve_statuses
from .maintenance import task_details
from .maintenance import task_stats
from .maintenance import TaskSummary
from .maintenance import to_json
from .maintenance import UnknownStatusError
from .maintenance import UnknownTaskError
from .prune import configured_batch_size
from .prune import NoRetentionError
from .prune import prune_cutoff
from .prune import prune_tasks
from .prune import PruneError
from .prune import PruneReport
from .status import TaskStatus
from .timeparse import format_datetime
from .timeparse import format_duration
from .timeparse import parse_duration
from .timeparse import parse_moment
from .types import utcnow

#: The ``flask tasks`` group; :meth:`QHAnaTasks.init_app` adds it to the app's CLI.
tasks_cli = AppGroup(
    "tasks",
    help="Inspect the recorded tasks, clear their steps and prune old ones.",
)


_T = t.TypeVar("_T")


def _read_with(
    parse: Callable[[str], _T],
) -> Callable[[click.Context, click.Parameter, str | None], _T | None]:
    """Return an option callback that reads the option's value with ``parse``.

    The :class:`ValueError` of a value ``parse`` rejects becomes a usage error.
    """

    def read(
        ctx: click.Context, param: click.Parameter, value: str | None
    ) -> _T | None:
        if value is None:
            return None

        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return read


_JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
)


def _can_prompt() -> bool:
    """Whether standard input is a terminal that can answer a question."""
    return sys.stdin is not None and sys.stdin.isatty()


def _shows_progress() -> bool:
    """Whether standard output is a terminal that can show a progress bar."""
    return sys.stdout is not None and sys.stdout.isatty()


def _statuses(values: Iterable[str]) -> list[str]:
    """Resolve the values of ``--status``, or fail with a usage error."""
    try:
        return resolve_statuses(values)
    except UnknownStatusError as exc:
        raise click.BadParameter(str(exc), param_hint="'--status'") from None


def _cell(value: t.Any) -> str:
    """Return a value as a table or a field list shows it."""
    if value is None:
        return "-"

    if isinstance(value, bool):
        return "yes" if value else "no"

    if isinstance(value, datetime):
        return format_datetime(value)

    if isinstance(value, timedelta):
        return format_duration(value)

    return str(value)


def _is_number(value: t.Any) -> bool:
    """Whether a table aligns a value to the right."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _echo_table(
    headers: Sequence[str], rows: Iterable[Sequence[t.Any]], indent: int = 0
) -> None:
    """Print rows under headers in aligned columns; numbers align right."""
    rows = list(rows)
    cells = [list(headers), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        bool(rows) and all(_is_number(row[i]) for row in rows)
        for i in range(len(headers))
    ]

    for row in cells:
        parts = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, right in zip(row, widths, numeric, strict=True)
        ]
        click.echo(" " * indent + "  ".join(parts).rstrip())


def _echo_counts(counts: dict[str, int]) -> None:
    """Print the number of rows of each table."""
    _echo_table(("TABLE", "ROWS"), counts.items(), indent=2)


def _describe_task(task: TaskSummary, now: datetime) -> str:
    """Return a task's id, name and start, as a sentence refers to it."""
    elapsed = task.elapsed(now)
    age = "" if elapsed is None else f", {format_duration(elapsed)} ago"
    return (
        f"{task.id} {task.name!r}, started {format_datetime(task.started_at)} UTC{age}"
    )


@tasks_cli.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="Show only tasks with this status; repeat the option for several."
    " 'PENDING' means unfinished. Case is ignored.",
)
@click.option(
    "--name",
    metavar="PATTERN",
    help="Show only tasks whose name matches this pattern, in which '*' stands for"
    " any text and '?' for one character. Case is ignored.",
)
@click.option(
    "--since",
    callback=_read_with(parse_moment),
    metavar="WHEN",
    help="Show only tasks started at or after this time: an ISO 8601 date-time"
    " (UTC unless it names a zone), or a duration ago, like '12h'.",
)
@click.option(
    "--before",
    callback=_read_with(parse_moment),
    metavar="WHEN",
    help="Show only tasks started before this time, given like '--since'.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show at most this many tasks.",
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Skip this many tasks first; the end of a full page says which offset"
    " shows the next.",
)
@_JSON_OPTION
def list_command(
    statuses: tuple[str, ...],
    name: str | None,
    since: datetime | None,
    before: datetime | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List the tasks, newest first.

    Each line shows a task's id, name, status, start time, how long it ran (or
    has run so far, if it has not finished) and its current step.
    """
    page = list_tasks(
        statuses=_statuses(statuses),
        name=name,
        since=since,
        before=before,
        limit=limit,
        offset=offset,
    )

    if as_json:
        click.echo(to_json(page, indent=2))
        return

    if not page.tasks:
        click.echo("No tasks match.")
        return

    now = utcnow()
    rows = []

    for task in page.tasks:
        step = task.step

        if step is not None and task.awaiting_input:
            step = f"{step} (awaiting input)"

        rows.append(
            (task.id, task.name, task.status, task.started_at, task.elapsed(now), step)
        )

    headers = ("ID", "NAME", "STATUS", "STARTED (UTC)", "ELAPSED", "STEP")
    _echo_table(headers, rows)

    if page.next_offset is not None:
        click.echo(
            f"More tasks match: add '--offset {page.next_offset}' to see the next"
            f" {limit}."
        )


#: The tables ``flask tasks show`` prints: each a title, the key of the rows in
#: the task record, and each column's header and key.
_SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Steps",
        "steps",
        (
            ("NUMBER", "number"),
            ("STEP", "step_id"),
            ("STATE", "cleared"),
            ("HREF", "href"),
            ("UI HREF", "ui_href"),
        ),
    ),
    (
        "Outputs",
        "outputs",
        (
            ("ID", "id"),
            ("NAME", "file_name"),
            ("TYPE", "file_type"),
            ("MIMETYPE", "mimetype"),
            ("STORAGE", "storage_provider"),
            ("STORAGE DATA", "file_storage_data"),
            ("CREATED (UTC)", "created_at"),
        ),
    ),
    ("Links", "links", (("ID", "id"), ("TYPE", "type"), ("HREF", "href"))),
    (
        "Subscriptions",
        "subscriptions",
        (
            ("ID", "id"),
            ("EVENT", "event_type"),
            ("WEBHOOK", "webhook_href"),
            ("TASK HREF", "task_href"),
        ),
    ),
)

#: The record keys ``flask tasks show`` prints in sections of their own.
_OWN_SECTIONS = frozenset({"data", "task_log", *(key for _, key, _ in _SECTIONS)})


def _echo_fields(record: dict[str, t.Any]) -> None:
    """Print the columns of a task, one a line, with its elapsed time."""
    fields = {key: value for key, value in record.items() if key not in _OWN_SECTIONS}
    started, finished = record["started_at"], record["finished_at"]

    if started is not None:
        fields["elapsed"] = (finished or utcnow()) - started

    width = max(map(len, fields))

    for key, value in fields.items():
        text = _cell(value)

        if isinstance(value, datetime):
            text = f"{text} UTC"

        click.echo(f"  {key.ljust(width)}  {text}".rstrip())


def _field(row: dict[str, t.Any], key: str) -> t.Any:
    """Return a value of a child row as its table shows it."""
    if key == "cleared":
        return "cleared" if row[key] else "awaiting input"

    return row[key]


def _echo_sections(record: dict[str, t.Any]) -> None:
    """Print the child rows of a task, a table for each kind."""
    for title, key, columns in _SECTIONS:
        rows = record[key]
        click.echo()

        if not rows:
            click.echo(f"{title}: none")
            continue

        click.echo(f"{title} ({len(rows)})")
        table = [[_field(row, column) for _, column in columns] for row in rows]
        _echo_table([header for header, _ in columns], table, indent=2)


def _echo_log(log: str, tail: int, full: bool) -> None:
    """Print the log of a task, or its last ``tail`` lines."""
    lines = log.splitlines()
    click.echo()

    if not lines:
        click.echo("Log: empty")
        return

    if full or len(lines) <= tail:
        click.echo(f"Log ({len(lines)} lines)")
    else:
        click.echo(
            f"Log (the last {tail} of {len(lines)} lines; '--full-log' shows all)"
        )
        lines = lines[-tail:]

    for line in lines:
        click.echo(f"  {line}")


@tasks_cli.command("show")
@click.argument("task_id", type=int)
@click.option(
    "--tail",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show this many lines from the end of the log.",
)
@click.option("--full-log", is_flag=True, help="Show the whole log.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the task as JSON, with the whole log.",
)
def show_command(task_id: int, tail: int, full_log: bool, as_json: bool) -> None:
    """Show everything recorded about one task.

    That is every field of the task, its steps, outputs, links, subscriptions
    and data, and the end of its log. The secret that downloads a file (its
    security tag) is left out.
    """
    try:
        record = task_details(task_id)
    except UnknownTaskError as exc:
        raise click.BadParameter(str(exc), param_hint="'TASK_ID'") from None

    if as_json:
        click.echo(to_json(record, indent=2))
        return

    click.echo(f"Task {record.pop('id')}")
    _echo_fields(record)
    _echo_sections(record)
    click.echo("\nData")

    for line in to_json(record["data"], indent=2).splitlines():
        click.echo(f"  {line}")

    _echo_log(record["task_log"] or "", tail, full_log)


@tasks_cli.command("stats")
@_JSON_OPTION
def stats_command(as_json: bool) -> None:
    """Count the tasks and the rows of each table.

    The tasks are counted by status; the oldest unfinished task and the number
    of tasks awaiting input are shown too.
    """
    stats = task_stats()

    if as_json:
        click.echo(to_json(stats, indent=2))
        return

    click.echo("Tasks by status")
    _echo_table(("STATUS", "TASKS"), stats.by_status.items(), indent=2)
    click.echo()
    oldest = stats.oldest_unfinished

    if oldest is None:
        click.echo("Oldest unfinished task: none")
    else:
        click.echo(f"Oldest unfinished task: {_describe_task(oldest, utcnow())}")

    click.echo(f"Tasks awaiting input: {stats.awaiting_input}")
    click.echo("\nRows per table")
    _echo_counts(stats.rows)


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    """Return a count with its noun, like ``1 step`` or ``3 steps``."""
    if count == 1:
        return f"{count} {noun}"

    return f"{count} {plural or noun + 's'}"


def _echo_cleared(steps: list[ClearedStep], dry_run: bool) -> None:
    """Print the steps cleared, or those that would be."""
    verb = "Would clear" if dry_run else "Cleared"

    for step in steps:
        click.echo(
            f"{verb} step {step.step_id!r} (number {step.number}) of task"
            f" {step.task_id}."
        )


@tasks_cli.command("clear-steps")
@click.argument("task_ids", nargs=-1, type=int, metavar="[TASK_ID]...")
@click.option(
    "--older-than",
    callback=_read_with(parse_duration),
    metavar="DURATION",
    help="Instead of naming tasks, clear every step that has waited for input"
    " longer than this, like '7d'. A step waits from when it was added; one"
    " recorded before steps kept that time counts from when its task started.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the steps that would be cleared, and change nothing.",
)
def clear_steps_command(
    task_ids: tuple[int, ...], older_than: timedelta | None, dry_run: bool
) -> None:
    """Clear the steps that wait for input.

    Name the tasks by their ids, or give '--older-than' to clear every step
    that has waited longer. Use it for a multi-step task whose user never came
    back. Each step cleared is listed.
    """
    if task_ids and older_than is not None:
        raise click.UsageError("Give task ids or '--older-than', not both.")

    if not task_ids and older_than is None:
        raise click.UsageError(
            "Name the tasks whose steps to clear by their ids, or give"
            " '--older-than' to clear the steps of every older task."
        )

    if older_than is None:
        try:
            steps = clear_steps(task_ids, dry_run=dry_run)
        except UnknownTaskError as exc:
            raise click.BadParameter(str(exc), param_hint="'TASK_ID'") from None

        _echo_cleared(steps, dry_run)
        touched = {step.task_id for step in steps}

        for task_id in dict.fromkeys(task_ids):
            if task_id not in touched:
                click.echo(f"Task {task_id} has no step awaiting input.")
    else:
        steps = clear_stale_steps(older_than, dry_run=dry_run)
        _echo_cleared(steps, dry_run)

    tasks = _plural(len({step.task_id for step in steps}), "task")

    if dry_run:
        click.echo(
            f"Dry run: {_plural(len(steps), 'step')} of {tasks} would be cleared;"
            " nothing was changed."
        )
    else:
        click.echo(f"Cleared {_plural(len(steps), 'step')} of {tasks}.")


def _prune_cutoff(older_than: timedelta | None, before: datetime | None) -> datetime:
    """Return the cutoff of ``flask tasks prune`` from its options or the config."""
    if older_than is not None and before is not None:
        raise click.UsageError("Give '--older-than' or '--before', not both.")

    try:
        return prune_cutoff(older_than=older_than, before=before)
    except NoRetentionError:
        raise click.UsageError(
            "Say which tasks are old enough to prune: give '--older-than' or"
            " '--before', or set 'QHANA_TASKS_RETENTION' in the app's config."
        ) from None
    except ValueError as exc:
        # The only other error of a single cutoff is an invalid retention setting.
        raise click.ClickException(str(exc)) from None


def _describe_selection(
    cutoff: datetime, statuses: Sequence[str], include_unfinished: bool
) -> str:
    """Return which tasks a prune selects, as the end of a sentence."""
    when = f"{format_datetime(cutoff)} UTC"
    text = f"that finished before {when}"

    if include_unfinished:
        text = f"{text}, or are unfinished and started before it"

    if statuses:
        text = f"with status {' or '.join(statuses)} {text}"

    return text


def _echo_report(report: PruneReport, which: str) -> None:
    """Print what a prune deleted, and how long it took."""
    batches = _plural(report.batches, "batch", "batches")
    tasks = _plural(report.tasks, "task")
    click.echo(f"In {batches} ({report.elapsed:.1f}s), deleted {tasks} {which}:")
    _echo_counts(report.deleted)


@tasks_cli.command("prune")
@click.option(
    "--older-than",
    callback=_read_with(parse_duration),
    metavar="DURATION",
    help="Prune tasks that finished longer ago than this, like '30d', '12h', '90m'"
    " or '2w'.",
)
@click.option(
    "--before",
    callback=_read_with(parse_moment),
    metavar="WHEN",
    help="Prune tasks that finished before this time: an ISO 8601 date-time (UTC"
    " unless it names a zone), or a duration ago.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="Prune only tasks with this status; repeat the option for several.",
)
@click.option(
    "--include-unfinished",
    is_flag=True,
    help="Also prune unfinished tasks, judged by when they started.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Count what would be deleted in each table, and delete nothing.",
)
@click.option("--yes", "-y", is_flag=True, help="Delete without asking first.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Delete this many tasks per transaction. Defaults to"
    " 'QHANA_TASKS_PRUNE_BATCH_SIZE', or 1000.",
)
@click.option(
    "--archive",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Before deleting, append each task with its rows to this file as a line"
    " of JSON.",
)
def prune_command(
    older_than: timedelta | None,
    before: datetime | None,
    statuses: tuple[str, ...],
    include_unfinished: bool,
    dry_run: bool,
    yes: bool,
    batch_size: int | None,
    archive: Path | None,
) -> None:
    """Delete old tasks with all their rows.

    A task that finished before the cutoff is deleted with its steps, files,
    links and subscriptions. Without '--older-than' or '--before', the app's
    'QHANA_TASKS_RETENTION' sets the cutoff. Tasks are deleted in batches, each
    committed on its own; the app hears of each batch's files through the
    'task_files_pruned' signal, to delete them from its storage.
    """
    cutoff = _prune_cutoff(older_than, before)
    wanted = _statuses(statuses)

    if TaskStatus.PENDING in wanted and not include_unfinished:
        raise click.UsageError(
            "'--status PENDING' selects unfinished tasks, which are pruned only with"
            " '--include-unfinished'."
        )

    if dry_run and archive is not None:
        raise click.UsageError(
            "'--dry-run' deletes nothing, so '--archive' would have nothing to"
            " write: leave one of them out."
        )

    try:
        size = configured_batch_size() if batch_size is None else batch_size
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    selection = _describe_selection(cutoff, wanted, include_unfinished)
    run = functools.partial(
        prune_tasks, cutoff, statuses=wanted, include_unfinished=include_unfinished
    )

    if dry_run:
        report = run(dry_run=True)
        click.echo(
            f"Dry run: would delete {_plural(report.tasks, 'task')} {selection}."
            " Nothing was changed."
        )
        _echo_counts(report.deleted)
        return

    if not yes and not _can_prompt():
        raise click.UsageError(
            "Pruning asks for confirmation, but standard input is not a terminal."
            " Add '--yes' to prune without asking, or '--dry-run' to see what"
            " would be deleted."
        )

    progress = _shows_progress()
    bar_length = None

    # The count serves the question and the progress bar; a job that runs with
    # '--yes' and no terminal needs neither.
    if not yes or progress:
        planned = run(dry_run=True)

        if not planned.tasks:
            click.echo(f"No tasks to prune: none {selection}.")
            return

        if not yes:
            click.echo(f"This deletes {_plural(planned.tasks, 'task')} {selection}:")
            _echo_counts(planned.deleted)
            click.confirm("Delete them?", abort=True)

        if progress:
            bar_length = planned.tasks

    report = _run_prune(functools.partial(run, batch_size=size), archive, bar_length)

    if not report.tasks:
        click.echo(f"No tasks to prune: none {selection}.")
        return

    _echo_report(report, selection)


def _run_prune(
    run: Callable[..., PruneReport], archive: Path | None, bar_length: int | None
) -> PruneReport:
    """Prune, writing to the archive and showing a progress bar if asked to.

    A failure prints what was deleted before it, then ends the command.
    """
    with contextlib.ExitStack() as stack:
        stream = None
        on_batch = None

        if archive is not None:
            try:
                stream = stack.enter_context(archive.open("a", encoding="utf-8"))
            except OSError as exc:
                raise click.ClickException(
                    f"Cannot open the archive '{archive}': {exc.strerror or exc}."
                ) from None

        if bar_length is not None:
            bar = stack.enter_context(
                click.progressbar(length=bar_length, label="Deleting tasks")
            )

            def on_batch(report: PruneReport) -> None:
                bar.update(report.tasks - bar.pos)

        try:
            return run(archive=stream, on_batch=on_batch)
        except PruneError as exc:
            failure = exc

    _echo_report(failure.report, "before the failure")
    raise click.ClickException(f"{failure} Run the command again to prune the rest.")
