from __future__ import annotations

import json
import re
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from .conftest import add_old_tasks
from .conftest import add_task
from .conftest import count_orphans
from .conftest import count_rows
from .conftest import refuse_deleting_links_of
from .conftest import remaining_ids


def prune(cli: FlaskCliRunner, options: str, *more: str, answer: str = "") -> Result:
    """Run ``flask tasks prune`` with the options in a string, then more of them,
    answering its question with ``answer``.
    """
    return cli.invoke(args=["tasks", "prune", *options.split(), *more], input=answer)


def counts_table(tasks: int, steps: int, children: int) -> str:
    """Return the table of rows per table that a prune prints."""
    counts = {
        "ProcessingTask": tasks,
        "Step": steps,
        "TaskFile": children,
        "TaskLink": children,
        "TaskUpdateSubscription": children,
    }
    lines = [f"  {'TABLE':<22}  ROWS"]
    lines.extend(f"  {table:<22}  {count:>4}" for table, count in counts.items())
    return "\n".join(lines) + "\n"


def test_dry_run_counts_and_deletes_nothing(cli: FlaskCliRunner) -> None:
    add_old_tasks(3)
    add_task(children=True)
    before = count_rows()

    result = prune(cli, "--older-than 30d --dry-run")

    assert result.exit_code == 0, result.output
    first, rest = result.output.split("\n", 1)
    assert first.startswith("Dry run: would delete 3 tasks that finished before ")
    assert first.endswith(" UTC. Nothing was changed.")
    assert rest == counts_table(3, 3, 3)
    assert count_rows() == before


def test_prune_older_than(cli: FlaskCliRunner) -> None:
    old = add_old_tasks(2)
    recent = add_task(
        started=timedelta(days=3), finished=timedelta(hours=12), children=True
    )
    unfinished = add_task(started=timedelta(days=90), finished=None, task_status=None)

    result = prune(cli, "--older-than 1d12h --yes")

    assert result.exit_code == 0, result.output
    first, rest = result.output.split("\n", 1)
    assert first.startswith("In 1 batch (")
    assert "s), deleted 2 tasks that finished before " in first
    assert rest == counts_table(2, 2, 2)
    assert remaining_ids() == [recent, unfinished]
    assert old[0] not in remaining_ids()
    assert count_rows() == {
        "ProcessingTask": 2,
        "Step": 0,
        "TaskFile": 1,
        "TaskLink": 1,
        "TaskUpdateSubscription": 1,
    }


def test_prune_before_a_date(cli: FlaskCliRunner) -> None:
    add_old_tasks(1)
    kept = add_task(
        started=datetime(2025, 6, 1, tzinfo=timezone.utc),
        finished=datetime(2025, 6, 2, tzinfo=timezone.utc),
    )

    result = prune(cli, "--before 2025-06-01T12:00+02:00 -y")

    assert result.exit_code == 0, result.output
    assert (
        "deleted 1 task that finished before 2025-06-01 10:00:00 UTC:" in result.output
    )
    assert remaining_ids() == [kept]


def test_prune_runs_several_batches(cli: FlaskCliRunner) -> None:
    add_old_tasks(25)
    kept = add_task(children=True)

    result = prune(cli, "--older-than 30d --yes --batch-size 10")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("In 3 batches (")
    assert result.output.endswith(counts_table(25, 25, 25))
    assert remaining_ids() == [kept]
    assert count_orphans() == 0


def test_batch_size_comes_from_the_config(app: Flask, cli: FlaskCliRunner) -> None:
    app.config["QHANA_TASKS_PRUNE_BATCH_SIZE"] = 2
    add_old_tasks(5)

    result = prune(cli, "--older-than 30d --yes")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("In 3 batches (")


@pytest.mark.parametrize("retention", ["30d", timedelta(days=30)])
def test_retention_comes_from_the_config(
    app: Flask, cli: FlaskCliRunner, retention: object
) -> None:
    app.config["QHANA_TASKS_RETENTION"] = retention
    add_old_tasks(2)
    kept = add_task(started=timedelta(days=20), finished=timedelta(days=20))

    result = prune(cli, "--yes")

    assert result.exit_code == 0, result.output
    assert remaining_ids() == [kept]


def test_prune_without_retention_is_a_usage_error(cli: FlaskCliRunner) -> None:
    add_old_tasks(1)

    result = prune(cli, "--yes")

    assert result.exit_code == 2
    assert (
        "Error: Say which tasks are old enough to prune: give '--older-than' or"
        " '--before', or set 'QHANA_TASKS_RETENTION' in the app's config.\n"
    ) in result.output
    assert count_rows()["ProcessingTask"] == 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "QHANA_TASKS_RETENTION",
            "30 days",
            "Error: 'QHANA_TASKS_RETENTION' is invalid: '30 days' is not a duration",
        ),
        (
            "QHANA_TASKS_RETENTION",
            30,
            "Error: 'QHANA_TASKS_RETENTION' is 30: set it to a 'timedelta'",
        ),
        (
            "QHANA_TASKS_RETENTION",
            timedelta(days=-1),
            "is datetime.timedelta(days=-1): set it",
        ),
        (
            "QHANA_TASKS_PRUNE_BATCH_SIZE",
            0,
            "Error: 'QHANA_TASKS_PRUNE_BATCH_SIZE' is 0: set it to a whole number",
        ),
        (
            "QHANA_TASKS_PRUNE_BATCH_SIZE",
            "100",
            "'QHANA_TASKS_PRUNE_BATCH_SIZE' is '100'",
        ),
    ],
)
def test_invalid_settings_are_reported(
    app: Flask, cli: FlaskCliRunner, key: str, value: object, message: str
) -> None:
    app.config[key] = value
    add_old_tasks(1)
    options = ["--older-than", "1d"] if "BATCH" in key else []

    result = prune(cli, "--yes", *options)

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert count_rows()["ProcessingTask"] == 1


def test_prune_by_status(cli: FlaskCliRunner) -> None:
    failed = add_old_tasks(2, task_status="FAILURE")
    succeeded = add_old_tasks(1)
    unknown = add_old_tasks(1, task_status=None)

    result = prune(cli, "--older-than 30d --status failure --status UNKNOWN --yes")

    assert result.exit_code == 0, result.output
    assert (
        "deleted 3 tasks with status FAILURE or UNKNOWN that finished before"
        in result.output
    )
    assert remaining_ids() == succeeded
    assert not set(failed + unknown) & set(remaining_ids())


def test_unfinished_tasks_are_pruned_only_when_included(cli: FlaskCliRunner) -> None:
    stuck = add_task(
        started=timedelta(days=60), finished=None, task_status=None, awaiting_input=True
    )
    running = add_task(started=timedelta(hours=1), finished=None, task_status=None)
    skipped = prune(cli, "--older-than 30d --yes")
    refused = prune(cli, "--older-than 30d --yes --status pending")
    included = prune(
        cli, "--older-than 30d --yes --include-unfinished --status PENDING"
    )

    assert (skipped.exit_code, refused.exit_code, included.exit_code) == (0, 2, 0)
    assert skipped.output.startswith("No tasks to prune: none that finished before ")
    assert (
        "Error: '--status PENDING' selects unfinished tasks, which are pruned only"
        " with '--include-unfinished'." in refused.output
    )
    assert "deleted 1 task with status PENDING that finished before" in included.output
    assert ", or are unfinished and started before it:" in included.output
    assert stuck not in remaining_ids()
    assert remaining_ids() == [running]


def test_prune_refuses_without_a_terminal_or_yes(cli: FlaskCliRunner) -> None:
    add_old_tasks(2)

    result = prune(cli, "--older-than 30d")

    assert result.exit_code == 2
    assert (
        "Error: Pruning asks for confirmation, but standard input is not a terminal."
        " Add '--yes' to prune without asking, or '--dry-run' to see what would be"
        " deleted.\n"
    ) in result.output
    assert count_rows()["ProcessingTask"] == 2


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the prune command believe that a user sits at a terminal."""
    monkeypatch.setattr("flask_qhana_tasks.cli._can_prompt", lambda: True)
    monkeypatch.setattr("flask_qhana_tasks.cli._shows_progress", lambda: True)


@pytest.mark.usefixtures("terminal")
def test_prune_asks_first(cli: FlaskCliRunner) -> None:
    add_old_tasks(2)

    declined = prune(cli, "--older-than 30d", answer="n\n")

    assert declined.exit_code == 1
    assert declined.output.startswith("This deletes 2 tasks that finished before ")
    assert (
        counts_table(2, 2, 2) + "Delete them? [y/N]: n\nAborted!\n" in declined.output
    )
    assert count_rows()["ProcessingTask"] == 2

    accepted = prune(cli, "--older-than 30d", answer="y\n")

    assert accepted.exit_code == 0, accepted.output
    assert "Delete them? [y/N]: y\nDeleting tasks\n" in accepted.output
    assert "deleted 2 tasks that finished" in accepted.output
    assert count_rows()["ProcessingTask"] == 0


@pytest.mark.usefixtures("terminal")
def test_prune_with_nothing_to_delete_asks_nothing(cli: FlaskCliRunner) -> None:
    add_task()

    result = prune(cli, "--older-than 30d")

    assert result.exit_code == 0
    assert result.output.startswith("No tasks to prune: none that finished before ")


def test_prune_archives_before_deleting(cli: FlaskCliRunner, tmp_path: Path) -> None:
    ids = add_old_tasks(3)
    archive = tmp_path / "pruned.jsonl"
    archive.write_text('{"earlier": true}\n', encoding="utf-8")

    result = prune(cli, "--older-than 30d --yes --batch-size 2 --archive", str(archive))

    assert result.exit_code == 0, result.output
    first, *lines = archive.read_text(encoding="utf-8").splitlines()
    assert first == '{"earlier": true}'
    records = [json.loads(line) for line in lines]
    assert [record["id"] for record in records] == ids
    record = records[0]
    assert record["task_name"] == "old-0"
    assert record["started_at"] == "2025-01-01T00:00:00+00:00"
    assert record["finished_at"] == "2025-01-01T00:05:00+00:00"
    assert [
        len(record[key]) for key in ("steps", "outputs", "links", "subscriptions")
    ] == [1, 1, 1, 1]
    assert record["outputs"][0]["security_tag"] == "secret"
    step = dict(record["steps"][0])
    assert datetime.fromisoformat(step.pop("created_at")).tzinfo is not None
    assert step == {
        "step_id": "s0",
        "href": "https://api/0",
        "ui_href": "https://ui/0",
        "cleared": True,
        "number": 0,
    }
    assert count_rows()["ProcessingTask"] == 0


def test_prune_fails_cleanly_when_the_archive_cannot_be_opened(
    cli: FlaskCliRunner, tmp_path: Path
) -> None:
    add_old_tasks(1)
    archive = tmp_path / "missing" / "pruned.jsonl"

    result = prune(cli, "--older-than 30d --yes --archive", str(archive))

    assert result.exit_code == 1
    assert (
        f"Error: Cannot open the archive '{archive}': No such file or directory.\n"
        in result.output
    )
    assert count_rows()["ProcessingTask"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--older-than", "30x"],
            "Invalid value for '--older-than': '30x' is not a duration: use a whole"
            " number",
        ),
        (
            ["--older-than", "-5d"],
            "Invalid value for '--older-than': '-5d' is not a duration",
        ),
        (
            ["--before", "last week"],
            "Invalid value for '--before': 'last week' is neither a duration nor a"
            " date-time",
        ),
        (
            ["--older-than", "1d", "--before", "2026-01-01"],
            "Error: Give '--older-than' or '--before', not both.",
        ),
        (
            ["--older-than", "1d", "--batch-size", "0"],
            "Invalid value for '--batch-size': 0 is not in the range x>=1.",
        ),
        (
            ["--older-than", "1d", "--status", "DONE"],
            "Invalid value for '--status': 'DONE' is not a task status",
        ),
        (
            ["--older-than", "1d", "--dry-run", "--archive", "a.jsonl"],
            "Error: '--dry-run' deletes nothing, so '--archive' would have nothing to"
            " write",
        ),
    ],
)
def test_prune_rejects_bad_input(
    cli: FlaskCliRunner, options: list[str], message: str
) -> None:
    add_old_tasks(2)

    result = prune(cli, "--yes", *options)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert count_rows()["ProcessingTask"] == 2


@pytest.mark.usefixtures("without_cascade")
def test_prune_interrupted_by_a_database_error(cli: FlaskCliRunner) -> None:
    ids = add_old_tasks(25)
    # The database refuses to delete a link of the first task of the third batch.
    refuse_deleting_links_of(ids[20])

    result = prune(cli, "--older-than 30d --yes --batch-size 10")

    assert result.exit_code == 1
    assert "In 2 batches (" in result.output
    assert (
        "s), deleted 20 tasks before the failure:\n" + counts_table(20, 20, 20)
        in result.output
    )
    last_line = result.output.splitlines()[-1]
    assert re.fullmatch(
        r"Error: Batch 3 failed and was rolled back: \w+: .*disk I/O error.*\."
        r" Run the command again to prune the rest\.",
        last_line,
    )
    assert "Traceback" not in result.output
    assert remaining_ids() == ids[20:]
    assert count_rows() == dict.fromkeys(count_rows(), 5)
    assert count_orphans() == 0
