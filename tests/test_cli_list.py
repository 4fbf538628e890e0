from __future__ import annotations

import json
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from flask_qhana_tasks.maintenance import list_tasks
from flask_qhana_tasks.maintenance import UnknownStatusError

from .conftest import add_task


def listed_ids(output: str) -> list[int]:
    """Return the ids in the first column of a table, below its header."""
    lines = output.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "STATUS"]
    return [int(line.split()[0]) for line in lines[1:] if line[:1] in " 0123456789"]


def test_list_newest_first_in_aligned_columns(cli: FlaskCliRunner) -> None:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    old = add_task("import", started=started, finished=started + timedelta(minutes=10))
    new = add_task(
        "quantum-kernel-estimation",
        started=timedelta(hours=3),
        finished=None,
        task_status=None,
        steps=1,
        awaiting_input=True,
    )

    result = cli.invoke(args=["tasks", "list"])

    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "STATUS",
        "STARTED",
        "(UTC)",
        "ELAPSED",
        "STEP",
    ]
    assert first.split()[:3] == [str(new), "quantum-kernel-estimation", "PENDING"]
    assert first.split()[-4:] == ["3h", "s1", "(awaiting", "input)"]
    assert second.split() == [
        str(old),
        "import",
        "SUCCESS",
        "2026-01-02",
        "03:04:05",
        "10m",
        "-",
    ]
    # Every column starts at the same place on every line.
    assert {line.index(line.split()[2]) for line in (first, second)} == {
        header.index("STATUS")
    }


def test_list_without_tasks(cli: FlaskCliRunner) -> None:
    result = cli.invoke(args=["tasks", "list"])

    assert (result.exit_code, result.output) == (0, "No tasks match.\n")


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["PENDING"], ["running"]),
        (["pending", "Failure"], ["running", "failed"]),
        (["UNKNOWN"], ["blank", "silent"]),
        (["success"], ["done"]),
        (["CANCELLED"], ["cancelled"]),
        (["cancelled"], ["cancelled"]),
        (["Aborted"], ["aborted-upper", "aborted-lower"]),
    ],
)
def test_list_by_status(
    cli: FlaskCliRunner, statuses: list[str], expected: list[str]
) -> None:
    add_task("done", started=timedelta(hours=6))
    add_task("failed", started=timedelta(hours=5), task_status="FAILURE")
    add_task("silent", started=timedelta(hours=4), task_status=None)
    add_task("blank", started=timedelta(hours=3), task_status="")
    add_task("cancelled", started=timedelta(hours=2), task_status="CANCELLED")
    add_task("running", started=timedelta(hours=1), finished=None, task_status=None)
    # A custom status recorded in two spellings; both are found.
    add_task("aborted-lower", started=timedelta(hours=8), task_status="aborted")
    add_task("aborted-upper", started=timedelta(hours=7), task_status="ABORTED")
    options = [part for status in statuses for part in ("--status", status)]

    result = cli.invoke(args=["tasks", "list", "--json", *options])

    assert result.exit_code == 0, result.output
    assert [task["name"] for task in json.loads(result.output)["tasks"]] == expected


def test_list_by_name_pattern(cli: FlaskCliRunner) -> None:
    for name in ("qaoa", "qaoa-sim", "QAOA_2", "hello", "q%a"):
        add_task(name)

    def names(pattern: str) -> set[str]:
        result = cli.invoke(args=["tasks", "list", "--json", "--name", pattern])
        assert result.exit_code == 0, result.output
        return {task["name"] for task in json.loads(result.output)["tasks"]}

    assert names("qaoa*") == {"qaoa", "qaoa-sim", "QAOA_2"}
    assert names("qaoa") == {"qaoa"}
    assert names("qaoa?2") == {"QAOA_2"}
    assert names("*_*") == {"QAOA_2"}
    assert names("q%*") == {"q%a"}


def test_list_by_start_time(cli: FlaskCliRunner) -> None:
    add_task("january", started=datetime(2026, 1, 15, tzinfo=timezone.utc))
    add_task("february", started=datetime(2026, 2, 15, tzinfo=timezone.utc))
    add_task("today", started=timedelta(hours=2))

    def names(*options: str) -> list[str]:
        result = cli.invoke(args=["tasks", "list", "--json", *options])
        assert result.exit_code == 0, result.output
        return [task["name"] for task in json.loads(result.output)["tasks"]]

    assert names("--since", "1d") == ["today"]
    assert names("--before", "1d") == ["february", "january"]
    assert names("--since", "2026-02-01", "--before", "2026-02-16T00:00+01:00") == [
        "february"
    ]
    assert names("--before", "2026-01-15") == []


def test_list_pages(cli: FlaskCliRunner) -> None:
    ids = [add_task(started=timedelta(hours=10 - i)) for i in range(5)]

    first = cli.invoke(args=["tasks", "list", "--limit", "2"])
    last = cli.invoke(args=["tasks", "list", "--limit", "2", "--offset", "4"])

    assert listed_ids(first.output) == [ids[4], ids[3]]
    assert first.output.endswith(
        "More tasks match: add '--offset 2' to see the next 2.\n"
    )
    assert listed_ids(last.output) == [ids[0]]
    assert "More tasks" not in last.output


def test_list_json(cli: FlaskCliRunner) -> None:
    task_id = add_task(
        "demo", started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), steps=2
    )
    add_task()

    result = cli.invoke(
        args=["tasks", "list", "--json", "--limit", "1", "--offset", "1"]
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "tasks": [
            {
                "id": task_id,
                "name": "demo",
                "status": "SUCCESS",
                "started_at": "2026-01-02T03:04:05+00:00",
                "finished_at": json.loads(result.output)["tasks"][0]["finished_at"],
                "step": "s1",
                "awaiting_input": False,
            }
        ],
        "next_offset": None,
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--limit", "0"], "Invalid value for '--limit': 0 is not in the range x>=1."),
        (["--limit", "-3"], "Invalid value for '--limit': -3 is not in the range"),
        (["--offset", "-1"], "Invalid value for '--offset': -1 is not in the range"),
        (
            ["--status", "DONE"],
            "Invalid value for '--status': 'DONE' is not a task status: use one of"
            " PENDING, SUCCESS, FAILURE, UNKNOWN, or add it to",
        ),
        (["--since", "soon"], "Invalid value for '--since': 'soon' is neither"),
        (["--before", "1y"], "Invalid value for '--before': '1y' is neither"),
    ],
)
def test_list_rejects_bad_input(
    cli: FlaskCliRunner, options: list[str], message: str
) -> None:
    add_task()

    result = cli.invoke(args=["tasks", "list", *options])

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.count("Error") == 1


def test_extra_statuses_are_accepted_before_any_task_has_them(
    app: Flask, cli: FlaskCliRunner
) -> None:
    app.config["QHANA_TASKS_EXTRA_STATUSES"] = ["CANCELLED"]

    result = cli.invoke(args=["tasks", "list", "--status", "cancelled"])

    assert (result.exit_code, result.output) == (0, "No tasks match.\n")


def test_list_tasks_checks_its_arguments(app: Flask) -> None:
    with pytest.raises(UnknownStatusError, match="'RUNNING' is not a task status"):
        list_tasks(statuses=["RUNNING"])

    with pytest.raises(ValueError, match="at least 1, not 0"):
        list_tasks(limit=0)

    with pytest.raises(ValueError, match="at least 0, not -1"):
        list_tasks(offset=-1)
