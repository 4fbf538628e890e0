from __future__ import annotations

import json
from datetime import datetime
from datetime import timezone

import pytest
from flask.testing import FlaskCliRunner

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks.maintenance import task_details
from flask_qhana_tasks.maintenance import UnknownTaskError

from .conftest import add_task
from .conftest import db

STARTED = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def full_task(log_lines: int = 30) -> int:
    """Add a finished task with a cleared and an awaiting step, children, data and
    a log.
    """
    task_id = add_task(
        "qaoa",
        started=STARTED,
        finished=STARTED.replace(hour=9),
        steps=1,
        awaiting_input=True,
        children=True,
    )
    task = db.session.get(ProcessingTask, task_id)
    assert task is not None
    task.parameters = '{"p": 2}'
    task.data = {"graph": {"nodes": [1, 2]}, "note": "größer"}
    task.task_log = "\n".join(f"line {n}" for n in range(1, log_lines + 1))
    db.session.commit()
    return task_id


def section(output: str, title: str) -> list[str]:
    """Return the lines of a section of ``flask tasks show``, title first."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def test_show_every_field_and_child(cli: FlaskCliRunner) -> None:
    task_id = full_task()

    result = cli.invoke(args=["tasks", "show", str(task_id)])

    assert result.exit_code == 0, result.output
    fields = section(result.output, f"Task {task_id}")
    assert [line.split()[0] for line in fields[1:]] == [
        "task_name",
        "status",
        "started_at",
        "finished_at",
        "parameters",
        "multi_step",
        "current_step",
        "progress_value",
        "progress_start",
        "progress_target",
        "progress_unit",
        "task_status",
        "elapsed",
    ]
    assert "  started_at       2026-03-01 08:00:00 UTC" in fields
    assert "  elapsed          1h" in fields
    assert section(result.output, "Steps") == [
        "Steps (2)",
        "  NUMBER  STEP  STATE           HREF           UI HREF",
        "       0  s0    cleared         https://api/0  https://ui/0",
        "       1  s1    awaiting input  https://api/1  https://ui/1",
    ]
    assert section(result.output, "Outputs")[2].split()[1:6] == [
        "qaoa.csv",
        "entity/list",
        "-",
        "local",
        "/files/qaoa",
    ]
    assert section(result.output, "Links")[2].split()[1:] == [
        "plugin",
        "https://other/1",
    ]
    assert section(result.output, "Subscriptions")[2].split()[1:] == [
        "status",
        "https://hook",
        "https://api/tasks/1",
    ]
    assert section(result.output, "Data") == [
        "Data",
        "  {",
        '    "graph": {',
        '      "nodes": [',
        "        1,",
        "        2",
        "      ]",
        "    },",
        '    "note": "größer"',
        "  }",
    ]
    assert "secret" not in result.output


def test_show_tails_the_log(cli: FlaskCliRunner) -> None:
    task_id = full_task(log_lines=30)

    tail = cli.invoke(args=["tasks", "show", str(task_id)])
    short = cli.invoke(args=["tasks", "show", str(task_id), "--tail", "2"])
    whole = cli.invoke(args=["tasks", "show", str(task_id), "--full-log"])

    assert section(tail.output, "Log") == [
        "Log (the last 20 of 30 lines; '--full-log' shows all)",
        *(f"  line {n}" for n in range(11, 31)),
    ]
    assert section(short.output, "Log")[1:] == ["  line 29", "  line 30"]
    assert section(whole.output, "Log")[0] == "Log (30 lines)"
    assert len(section(whole.output, "Log")) == 31


def test_show_a_bare_task(cli: FlaskCliRunner) -> None:
    task_id = add_task(finished=None, task_status=None)

    result = cli.invoke(args=["tasks", "show", str(task_id)])

    assert result.exit_code == 0, result.output
    assert result.output.endswith(
        "\nSteps: none\n\nOutputs: none\n\nLinks: none\n\nSubscriptions: none\n"
        "\nData\n  {}\n\nLog: empty\n"
    )
    assert "  status           PENDING" in result.output
    # An empty value, such as the parameters here, leaves no trailing spaces.
    assert [line for line in result.output.splitlines() if line.endswith(" ")] == []


def test_show_json(cli: FlaskCliRunner) -> None:
    task_id = full_task(log_lines=30)

    result = cli.invoke(args=["tasks", "show", "--json", str(task_id)])

    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["id"] == task_id
    assert record["status"] == "SUCCESS"
    assert record["started_at"] == "2026-03-01T08:00:00+00:00"
    assert record["data"] == {"graph": {"nodes": [1, 2]}, "note": "größer"}
    assert record["task_log"].count("\n") == 29
    assert [step["cleared"] for step in record["steps"]] == [True, False]
    assert "security_tag" not in record["outputs"][0]
    assert record["outputs"][0]["file_storage_data"] == "/files/qaoa"
    assert [len(record[key]) for key in ("links", "subscriptions")] == [1, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999"], "Invalid value for 'TASK_ID': No task has the id 999."),
        (["abc"], "Invalid value for 'TASK_ID': 'abc' is not a valid integer."),
        (["1", "--tail", "0"], "Invalid value for '--tail': 0 is not in the range"),
    ],
)
def test_show_rejects_bad_input(
    cli: FlaskCliRunner, args: list[str], message: str
) -> None:
    add_task()

    result = cli.invoke(args=["tasks", "show", *args])

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_task_details_can_include_secrets(cli: FlaskCliRunner) -> None:
    task_id = full_task()

    assert task_details(task_id, secrets=True)["outputs"][0]["security_tag"] == (
        "secret"
    )

    with pytest.raises(UnknownTaskError, match=r"^No task has the id 0\.$") as info:
        task_details(0)

    assert info.value.task_ids == [0]


def test_show_json_leaves_out_generated_columns(cli: FlaskCliRunner) -> None:
    task_id = full_task()

    result = cli.invoke(args=["tasks", "show", "--json", str(task_id)])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["subscriptions"] == [
        {
            "id": 1,
            "webhook_href": "https://hook",
            "task_href": "https://api/tasks/1",
            "event_type": "status",
        }
    ]
