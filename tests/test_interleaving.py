"""Two workers change one task; each one's change survives the other's.

The second worker runs in an application context of its own, so it has a
session and a database connection of its own, and commits in between the first
worker's steps, where a read-modify-write in Python would lose its change.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from flask_qhana_tasks import ProcessingTask

from .conftest import db
from .conftest import load_task


def new_task(**kwargs: object) -> int:
    task = ProcessingTask("shared", **kwargs)  # type: ignore[arg-type]
    task.save(commit=True)
    return task.id


def meanwhile(
    app: Flask, change: Callable[[ProcessingTask], None], task_id: int
) -> None:
    """Let another worker change the task and commit."""
    with app.app_context():
        task = ProcessingTask.get_by_id(task_id)
        assert task is not None
        change(task)
        db.session.commit()


def test_log_entries_of_two_workers_are_kept(app: Flask) -> None:
    task = load_task(new_task(task_log="first"))
    assert task.task_log == "first"

    meanwhile(app, lambda other: other.add_task_log_entry("from the other"), task.id)
    task.add_task_log_entry("from this one", commit=True)

    assert load_task(task.id).task_log == "first\nfrom the other\nfrom this one"


def test_log_entry_of_a_new_task(app: Flask) -> None:
    task = ProcessingTask("new")
    task.add_task_log_entry("one")
    task.add_task_log_entry("two", commit=True)

    assert load_task(task.id).task_log == "one\ntwo"


def test_log_entry_after_a_pending_change(app: Flask) -> None:
    task = load_task(new_task())
    task.task_log = "replaced"

    task.add_task_log_entry("appended", commit=True)

    assert load_task(task.id).task_log == "replaced\nappended"


def test_progress_advanced_by_two_workers(app: Flask) -> None:
    task = load_task(new_task(progress_value=2))
    assert task.progress_value == 2

    meanwhile(app, lambda other: other.advance_progress(3), task.id)
    task.advance_progress(5, commit=True)

    assert load_task(task.id).progress_value == 10


def test_progress_of_a_task_without_progress(app: Flask) -> None:
    task = ProcessingTask("new", progress_start=10)
    task.advance_progress(1)
    task.save(commit=True)
    task.advance_progress(1, commit=True)

    assert load_task(task.id).progress_value == 12


def test_set_progress(app: Flask) -> None:
    task = load_task(new_task())

    task.set_progress(3, target=20, unit="epochs", commit=True)

    loaded = load_task(task.id)
    assert (loaded.progress_value, loaded.progress_target, loaded.progress_unit) == (
        3,
        20,
        "epochs",
    )


def add_cleared_step(task: ProcessingTask) -> None:
    task.add_next_step("https://api/other", "https://ui/other", "other")
    task.clear_previous_step()


def test_steps_added_by_two_workers_get_distinct_numbers(app: Flask) -> None:
    task = load_task(new_task())
    assert list(task.steps) == []

    meanwhile(app, add_cleared_step, task.id)
    task.add_next_step("https://api/mine", "https://ui/mine", "mine", commit=True)

    steps = load_task(task.id).steps
    assert [(s.number, s.step_id) for s in steps] == [(0, "other"), (1, "mine")]
    assert load_task(task.id).current_step == 1


def test_step_added_meanwhile_is_the_one_cleared(app: Flask) -> None:
    task = load_task(new_task())
    task.add_next_step("https://api/0", "https://ui/0", "zero", commit=True)
    task = load_task(task.id)
    assert [s.step_id for s in task.steps] == ["zero"]

    def clear_and_add(other: ProcessingTask) -> None:
        other.clear_previous_step()
        other.add_next_step("https://api/1", "https://ui/1", "one")

    meanwhile(app, clear_and_add, task.id)
    task.clear_previous_step(commit=True)

    assert [(s.step_id, s.cleared) for s in load_task(task.id).steps] == [
        ("zero", True),
        ("one", True),
    ]


def test_lock_loads_data_afresh_before_a_change(app: Flask) -> None:
    task = load_task(new_task(data={"seen": 0, "by": []}))
    assert task.data["seen"] == 0

    def see(other: ProcessingTask) -> None:
        other.lock()
        other.data["seen"] += 1
        other.data["by"].append("other")

    meanwhile(app, see, task.id)
    task.lock()
    task.data["seen"] += 1
    task.data["by"].append("this")
    db.session.commit()

    assert load_task(task.id).data == {"seen": 2, "by": ["other", "this"]}


def test_lock_of_a_new_task_does_nothing(app: Flask) -> None:
    task = ProcessingTask("new", data={"a": 1})
    task.lock()
    task.save(commit=True)

    assert load_task(task.id).data == {"a": 1}
