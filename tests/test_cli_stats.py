from __future__ import annotations

import json
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from flask.testing import FlaskCliRunner

from .conftest import add_task


def add_mixed_tasks() -> int:
    """Add tasks of every status; return the id of the oldest unfinished one."""
    add_task(children=True)
    add_task(steps=1)
    add_task(task_status="FAILURE")
    add_task(task_status=None)
    add_task(task_status="CANCELLED")
    add_task(finished=None, task_status=None, steps=1, awaiting_input=True)
    oldest = add_task(
        "stuck",
        started=datetime(2026, 1, 2, tzinfo=timezone.utc),
        finished=None,
        task_status=None,
        awaiting_input=True,
    )
    add_task(started=timedelta(minutes=5), finished=None, task_status=None)
    return oldest


def test_stats(cli: FlaskCliRunner) -> None:
    oldest = add_mixed_tasks()

    result = cli.invoke(args=["tasks", "stats"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:8] == [
        "Tasks by status",
        "  STATUS     TASKS",
        "  PENDING        3",
        "  SUCCESS        2",
        "  FAILURE        1",
        "  UNKNOWN        1",
        "  CANCELLED      1",
        "",
    ]
    assert lines[8].startswith(
        f"Oldest unfinished task: {oldest} 'stuck', started 2026-01-02 00:00:00 UTC, "
    )
    assert lines[8].endswith(" ago")
    assert lines[9:] == [
        "Tasks awaiting input: 2",
        "",
        "Rows per table",
        "  TABLE                   ROWS",
        "  ProcessingTask             8",
        "  Step                       4",
        "  TaskFile                   1",
        "  TaskLink                   1",
        "  TaskUpdateSubscription     1",
    ]


def test_stats_of_an_empty_database(cli: FlaskCliRunner) -> None:
    result = cli.invoke(args=["tasks", "stats"])

    assert result.exit_code == 0, result.output
    assert "  PENDING      0\n" in result.output
    assert "Oldest unfinished task: none\nTasks awaiting input: 0\n" in result.output


def test_stats_json(cli: FlaskCliRunner) -> None:
    oldest = add_mixed_tasks()

    result = cli.invoke(args=["tasks", "stats", "--json"])

    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["by_status"] == {
        "PENDING": 3,
        "SUCCESS": 2,
        "FAILURE": 1,
        "UNKNOWN": 1,
        "CANCELLED": 1,
    }
    assert stats["oldest_unfinished"] == {
        "id": oldest,
        "name": "stuck",
        "status": "PENDING",
        "started_at": "2026-01-02T00:00:00+00:00",
        "finished_at": None,
        "step": "s0",
        "awaiting_input": True,
    }
    assert stats["awaiting_input"] == 2
    assert stats["rows"]["Step"] == 4
