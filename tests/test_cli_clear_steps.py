from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask.testing import FlaskCliRunner

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import Step
from flask_qhana_tasks.types import utcnow

from .conftest import add_task
from .conftest import db


def step_states() -> dict[tuple[int, int], bool]:
    """Return whether each step is cleared, by task id and number."""
    db.session.expire_all()
    query = sa.select(Step.id, Step.number, Step.cleared)
    return {
        (task_id, number): cleared
        for task_id, number, cleared in db.session.execute(query)
    }


def test_clear_steps_of_named_tasks(cli: FlaskCliRunner) -> None:
    waiting = add_task("waiting", steps=1, awaiting_input=True)
    done = add_task("done", steps=2)
    other = add_task("other", awaiting_input=True)

    result = cli.invoke(args=["tasks", "clear-steps", str(waiting), str(done)])

    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Cleared step 's1' (number 1) of task {waiting}.\n"
        f"Task {done} has no step awaiting input.\n"
        "Cleared 1 step of 1 task.\n"
    )
    assert step_states() == {
        (waiting, 0): True,
        (waiting, 1): True,
        (done, 0): True,
        (done, 1): True,
        (other, 0): False,
    }


def test_clear_steps_dry_run_changes_nothing(cli: FlaskCliRunner) -> None:
    first = add_task(awaiting_input=True)
    second = add_task(awaiting_input=True)
    before = step_states()

    result = cli.invoke(
        args=["tasks", "clear-steps", "--dry-run", str(first), str(second), str(first)]
    )

    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Would clear step 's0' (number 0) of task {first}.\n"
        f"Would clear step 's0' (number 0) of task {second}.\n"
        "Dry run: 2 steps of 2 tasks would be cleared; nothing was changed.\n"
    )
    assert step_states() == before


def test_clear_steps_that_waited_longer_than_a_duration(cli: FlaskCliRunner) -> None:
    stale = add_task(
        "stale", started=timedelta(days=10), finished=None, awaiting_input=True
    )
    also_stale = add_task(started=timedelta(days=8), steps=1, awaiting_input=True)
    recent = add_task("recent", started=timedelta(days=2), awaiting_input=True)

    result = cli.invoke(args=["tasks", "clear-steps", "--older-than", "1w"])

    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Cleared step 's0' (number 0) of task {stale}.\n"
        f"Cleared step 's1' (number 1) of task {also_stale}.\n"
        "Cleared 2 steps of 2 tasks.\n"
    )
    assert step_states() == {
        (stale, 0): True,
        (also_stale, 0): True,
        (also_stale, 1): True,
        (recent, 0): False,
    }


def test_a_step_waits_from_when_it_was_added(cli: FlaskCliRunner) -> None:
    long_running = add_task(
        "long", started=timedelta(days=30), finished=None, steps=1, awaiting_input=True
    )
    task = ProcessingTask.get_by_id(long_running)
    assert task is not None
    task.steps[-1].created_at = utcnow() - timedelta(hours=1)
    adopted = add_task("adopted", started=timedelta(days=9), awaiting_input=True)
    db.session.execute(
        sa.update(Step).where(Step.id == adopted).values(created_at=None)
    )
    db.session.commit()

    result = cli.invoke(args=["tasks", "clear-steps", "--older-than", "1w"])

    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Cleared step 's0' (number 0) of task {adopted}.\nCleared 1 step of 1 task.\n"
    )
    assert step_states()[(long_running, 1)] is False


def test_clear_stale_steps_dry_run(cli: FlaskCliRunner) -> None:
    add_task(started=timedelta(days=10), awaiting_input=True)
    before = step_states()

    result = cli.invoke(
        args=["tasks", "clear-steps", "--older-than", "3d", "--dry-run"]
    )

    assert result.exit_code == 0, result.output
    assert result.output.endswith(
        "Dry run: 1 step of 1 task would be cleared; nothing was changed.\n"
    )
    assert step_states() == before


def test_clear_steps_when_none_wait(cli: FlaskCliRunner) -> None:
    add_task(started=timedelta(days=10), steps=1)

    result = cli.invoke(args=["tasks", "clear-steps", "--older-than", "3d"])

    assert (result.exit_code, result.output) == (0, "Cleared 0 steps of 0 tasks.\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Error: Name the tasks whose steps to clear by their ids, or give"),
        (
            ["1", "--older-than", "1d"],
            "Error: Give task ids or '--older-than', not both.",
        ),
        (
            ["1", "998", "999"],
            "Invalid value for 'TASK_ID': No tasks have the ids 998, 999.",
        ),
        (["x"], "Invalid value for '[TASK_ID]...': 'x' is not a valid integer."),
        (["--older-than", "0d"], "Invalid value for '--older-than': '0d' is zero"),
        (
            ["--older-than", "7"],
            "Invalid value for '--older-than': '7' is not a duration",
        ),
    ],
)
def test_clear_steps_rejects_bad_input(
    cli: FlaskCliRunner, args: list[str], message: str
) -> None:
    add_task(started=timedelta(days=10), awaiting_input=True)
    before = step_states()

    result = cli.invoke(args=["tasks", "clear-steps", *args])

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert step_states() == before
