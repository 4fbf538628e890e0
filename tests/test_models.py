from __future__ import annotations

import inspect
import time
import typing as t
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import Step
from flask_qhana_tasks import StepNotClearedError
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskLink
from flask_qhana_tasks import TaskProgress
from flask_qhana_tasks import TaskStatus
from flask_qhana_tasks import TaskUpdateSubscription
from flask_qhana_tasks import WebhookRef

from .conftest import count_rows
from .conftest import db

EMPTY = inspect.Parameter.empty


def reload(task: ProcessingTask) -> ProcessingTask:
    """Forget every loaded object and load the task again from the database."""
    identity = sa.inspect(task).identity
    assert identity is not None
    (task_id,) = identity
    db.session.expunge_all()
    loaded = ProcessingTask.get_by_id(task_id)
    assert loaded is not None
    return loaded


def make_task(**kwargs: t.Any) -> ProcessingTask:
    task = ProcessingTask(task_name=kwargs.pop("task_name", "demo"), **kwargs)
    task.save(commit=True)
    return task


def add_file(task: ProcessingTask, name: str, file_type: str | None) -> TaskFile:
    task_file = TaskFile(task, "secret", "local", name, f"/files/{name}", file_type)
    task_file.save(commit=True)
    return task_file


def defaults(cls: type) -> list[tuple[str, t.Any]]:
    return [(p.name, p.default) for p in inspect.signature(cls).parameters.values()]


def test_processing_task_constructor_arguments() -> None:
    params = defaults(ProcessingTask)
    assert [name for name, _ in params] == [
        "task_name",
        "started_at",
        "finished_at",
        "parameters",
        "data",
        "multi_step",
        "steps",
        "current_step",
        "progress_value",
        "progress_start",
        "progress_target",
        "progress_unit",
        "task_status",
        "task_log",
        "outputs",
        "links",
        "subscriptions",
    ]
    assert [name for name, d in params if d is EMPTY] == ["task_name"]

    task = ProcessingTask("demo")
    assert {name: getattr(task, name) for name, _ in params} == {
        "task_name": "demo",
        "started_at": task.started_at,
        "finished_at": None,
        "parameters": "",
        "data": {},
        "multi_step": False,
        "steps": [],
        "current_step": -1,
        "progress_value": None,
        "progress_start": 0,
        "progress_target": 100,
        "progress_unit": "%",
        "task_status": None,
        "task_log": "",
        "outputs": [],
        "links": [],
        "subscriptions": [],
    }
    assert datetime.now(timezone.utc) - task.started_at < timedelta(seconds=5)
    assert task.id is None


def test_child_constructor_arguments() -> None:
    assert [n for n, _ in defaults(Step)] == [
        "id",
        "step_id",
        "href",
        "ui_href",
        "cleared",
    ]
    assert Step(1, "s", "https://api", "https://ui").cleared is False
    assert [n for n, _ in defaults(TaskFile)] == [
        "task",
        "security_tag",
        "storage_provider",
        "file_name",
        "file_storage_data",
        "file_type",
        "mimetype",
        "created_at",
    ]
    required = [n for n, d in defaults(TaskFile) if d is EMPTY]
    assert required == [n for n, _ in defaults(TaskFile)][:6]
    assert [n for n, _ in defaults(TaskLink)] == ["task", "type", "href"]
    assert [n for n, _ in defaults(TaskUpdateSubscription)] == [
        "task",
        "webhook_href",
        "task_href",
        "event_type",
    ]
    task = ProcessingTask("demo")
    task_file = TaskFile(task, "secret", "local", "a.txt", "/a.txt", None)
    assert (task_file.mimetype, task_file.created_at.tzinfo) == (None, timezone.utc)
    subscription = TaskUpdateSubscription(task, "https://hook", "https://task")
    assert subscription.event_type is None


def test_every_task_gets_its_own_start_time(app: Flask) -> None:
    first = make_task()
    time.sleep(0.01)
    second = make_task()

    assert second.started_at > first.started_at
    assert datetime.now(timezone.utc) - second.started_at < timedelta(seconds=5)


def test_every_file_gets_its_own_creation_time(app: Flask) -> None:
    task = make_task()
    first = add_file(task, "a.txt", "result")
    time.sleep(0.01)
    second = add_file(task, "b.txt", "result")

    assert second.created_at > first.created_at


def test_timestamps_come_back_aware_utc(app: Flask) -> None:
    berlin = timezone(timedelta(hours=1))
    task = make_task(finished_at=datetime(2026, 1, 2, 13, 0, 0, 123456, tzinfo=berlin))
    add_file(task, "a.txt", None)

    task = reload(task)

    assert task.started_at.tzinfo is timezone.utc
    assert task.finished_at == datetime(
        2026, 1, 2, 12, 0, 0, 123456, tzinfo=timezone.utc
    )
    assert task.finished_at.tzinfo is timezone.utc
    assert task.outputs[0].created_at.tzinfo is timezone.utc


def test_naive_timestamps_are_taken_as_utc(app: Flask) -> None:
    task = make_task(finished_at=datetime(2026, 1, 2, 12, 30))

    assert reload(task).finished_at == datetime(2026, 1, 2, 12, 30, tzinfo=timezone.utc)


def test_timestamp_comparison_in_queries(app: Flask) -> None:
    old = make_task(started_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    make_task()
    cutoff = datetime(2021, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))

    found = db.session.scalars(
        sa.select(ProcessingTask.id).where(ProcessingTask.started_at < cutoff)
    ).all()

    assert found == [old.id]


def test_timestamp_column_refuses_other_types(app: Flask) -> None:
    task = ProcessingTask("demo", finished_at="yesterday")  # type: ignore[arg-type]

    with pytest.raises(sa.exc.StatementError, match="takes a 'datetime', not 'str'"):
        task.save(commit=True)


MUTATIONS: list[tuple[str, t.Callable[[t.Any], None], t.Any]] = [
    ("nested append", lambda d: d["a"]["b"].append(1), {"a": {"b": [1]}, "c": []}),
    (
        "nested set",
        lambda d: d["a"].__setitem__("x", 2),
        {"a": {"b": [], "x": 2}, "c": []},
    ),
    ("nested delete", lambda d: d["a"].pop("b"), {"a": {}, "c": []}),
    (
        "top set",
        lambda d: d.__setitem__("n", None),
        {"a": {"b": []}, "c": [], "n": None},
    ),
    ("top delete", lambda d: d.__delitem__("c"), {"a": {"b": []}}),
    ("update", lambda d: d.update(c=[{"k": 1}]), {"a": {"b": []}, "c": [{"k": 1}]}),
    (
        "setdefault",
        lambda d: d.setdefault("z", []).append(3),
        {"a": {"b": []}, "c": [], "z": [3]},
    ),
    ("extend", lambda d: d["c"].extend([1, 2]), {"a": {"b": []}, "c": [1, 2]}),
    (
        "insert",
        lambda d: d["c"].insert(0, {"q": []}),
        {"a": {"b": []}, "c": [{"q": []}]},
    ),
    ("clear", lambda d: d.clear(), {}),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [(m, e) for _, m, e in MUTATIONS],
    ids=[name for name, _, _ in MUTATIONS],
)
def test_nested_data_changes_are_persisted(
    app: Flask, mutate: t.Callable[[t.Any], None], expected: t.Any
) -> None:
    task = make_task(data={"a": {"b": []}, "c": []})

    loaded = reload(task)
    mutate(loaded.data)
    db.session.commit()

    assert reload(task).data == expected


def test_values_added_to_data_are_tracked_too(app: Flask) -> None:
    task = make_task()

    task.data["list"] = [{"inner": []}]
    db.session.commit()
    task.data["list"][0]["inner"].append("x")
    db.session.commit()

    assert reload(task).data == {"list": [{"inner": ["x"]}]}


@pytest.mark.parametrize("value", ["text", 3, 2.5, True, None, [1, [2]]])
def test_data_holds_any_json_value(app: Flask, value: t.Any) -> None:
    task = make_task(data=value)

    assert reload(task).data == value


def test_steps_are_numbered_in_order(app: Flask) -> None:
    task = make_task()

    for name in ("one", "two", "three"):
        task.add_next_step(f"https://api/{name}", f"https://ui/{name}", name)
        task.clear_previous_step(commit=True)

    task = reload(task)
    assert [(s.number, s.step_id, s.cleared) for s in task.steps] == [
        (0, "one", True),
        (1, "two", True),
        (2, "three", True),
    ]
    assert task.current_step == 2
    assert task.multi_step is True
    assert [s.id for s in task.steps] == [task.id] * 3


def test_add_next_step_before_clearing_raises(app: Flask) -> None:
    task = make_task()
    task.add_next_step("https://api/1", "https://ui/1", "first", commit=True)

    with pytest.raises(StepNotClearedError, match="waits for input on step 'first'"):
        task.add_next_step("https://api/2", "https://ui/2", "second")

    assert issubclass(StepNotClearedError, AssertionError)
    assert [s.step_id for s in reload(task).steps] == ["first"]


def test_clear_previous_step_without_steps_is_harmless(app: Flask) -> None:
    task = make_task()

    task.clear_previous_step(commit=True)

    loaded = reload(task)
    assert list(loaded.steps) == []
    assert loaded.has_uncleared_step is False


def test_has_uncleared_step(app: Flask) -> None:
    task = make_task()
    task.add_next_step("https://api/1", "https://ui/1", "first", commit=True)

    assert reload(task).has_uncleared_step is True

    task = reload(task)
    task.clear_previous_step(commit=True)

    assert reload(task).has_uncleared_step is False


def test_cleared_step_shows_before_commit(app: Flask) -> None:
    task = make_task()
    task.add_next_step("https://api/1", "https://ui/1", "first", commit=True)
    step = task.steps[0]

    task.clear_previous_step()

    assert step.cleared is True
    assert task.has_uncleared_step is False
    db.session.rollback()
    assert reload(task).has_uncleared_step is True


def test_clear_previous_step_clears_every_waiting_step(app: Flask) -> None:
    # Steps written without add_next_step can leave an older step waiting.
    task = make_task(multi_step=True, current_step=1)
    task.steps.extend(
        [Step(id=task.id, step_id=name, href="", ui_href="") for name in "ab"]
    )
    db.session.commit()

    task.clear_previous_step(commit=True)

    assert [s.cleared for s in reload(task).steps] == [True, True]


def count_statements(action: t.Callable[[], object]) -> list[str]:
    """Run ``action`` and return the SQL statements it sent, first words only."""
    statements: list[str] = []

    def record(*args: t.Any) -> None:
        words = args[2].replace('"', "").replace("`", "").split()
        statements.append(" ".join(words[:3]))

    sa.event.listen(db.engine, "before_cursor_execute", record)

    try:
        action()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)

    return statements


def test_committed_task_is_not_loaded_again_to_be_written(app: Flask) -> None:
    task = make_task()
    task.add_next_step("https://api/1", "https://ui/1", "first", commit=True)

    def write() -> None:
        task.clear_previous_step(commit=True)
        task.add_task_log_entry("entry", commit=True)
        task.advance_progress(commit=True)

    statements = count_statements(write)

    assert statements == [
        "UPDATE Step SET",
        "UPDATE ProcessingTask SET",
        "UPDATE ProcessingTask SET",
    ]


def test_add_task_log_entry(app: Flask) -> None:
    task = make_task()

    task.add_task_log_entry("started")
    task.add_task_log_entry("done", commit=True)

    assert reload(task).task_log == "started\ndone"


def test_save_and_get_by_id(app: Flask) -> None:
    task = ProcessingTask("demo", parameters='{"x": 1}')

    task.save()
    assert task.id is None
    db.session.commit()

    task_id = task.id
    loaded = reload(task)
    assert loaded.parameters == '{"x": 1}'
    assert ProcessingTask.get_by_id(task_id + 1) is None


@pytest.mark.parametrize(
    ("finished", "task_status", "status", "is_ok"),
    [
        (False, None, "PENDING", False),
        (False, "SUCCESS", "PENDING", True),
        (True, None, "UNKNOWN", False),
        (True, TaskStatus.SUCCESS, "SUCCESS", True),
        (True, "FAILURE", "FAILURE", False),
    ],
)
def test_status(
    app: Flask, finished: bool, task_status: str | None, status: str, is_ok: bool
) -> None:
    finished_at = datetime.now(timezone.utc) if finished else None
    task = reload(make_task(finished_at=finished_at, task_status=task_status))

    assert task.is_finished is finished
    assert task.status == status
    assert task.is_ok is is_ok


def test_status_values_are_strings() -> None:
    assert TaskStatus.FAILURE == "FAILURE"
    assert str(TaskStatus.SUCCESS) == "SUCCESS"
    assert f"{TaskStatus.PENDING}" == "PENDING"
    assert [s.value for s in TaskStatus] == ["PENDING", "SUCCESS", "FAILURE", "UNKNOWN"]


def test_progress_zero_is_progress(app: Flask) -> None:
    assert reload(make_task()).progress is None

    task = reload(make_task(progress_value=0))

    assert task.progress == TaskProgress(0, 0, 100, "%")


def test_result_files(app: Flask) -> None:
    task = make_task()
    other = make_task()
    result = add_file(task, "result.csv", "entity/list")
    untyped = add_file(task, "untyped.bin", None)
    add_file(task, "scratch.tmp", "temp-file")
    add_file(other, "other.csv", "entity/list")

    expected = [result.id, untyped.id]
    assert [f.id for f in TaskFile.get_task_result_files(task)] == expected
    assert [f.id for f in TaskFile.get_task_result_files(task.id)] == expected
    assert TaskFile.get_by_id(result.id) is result


def test_result_files_of_a_task_not_yet_flushed(app: Flask) -> None:
    task = ProcessingTask("demo")
    TaskFile(task, "secret", "local", "a.txt", "/files/a.txt", "x").save()

    assert [f.file_name for f in TaskFile.get_task_result_files(task)] == ["a.txt"]


def test_result_files_reject_other_arguments(app: Flask) -> None:
    with pytest.raises(TypeError, match="a task id \\('int'\\), got 'str'"):
        TaskFile.get_task_result_files("1")  # type: ignore[arg-type]


def subscribe(task: ProcessingTask, webhook: str, event: str | None) -> None:
    TaskUpdateSubscription(task, webhook, f"https://api/tasks/{task.id}", event).save()


def test_webhooks_for_an_event(app: Flask) -> None:
    task = make_task()
    other = make_task()
    subscribe(task, "https://a", None)
    subscribe(task, "https://a", "status")
    subscribe(task, "https://b", "status")
    subscribe(task, "https://c", "steps")
    subscribe(other, "https://d", None)
    db.session.commit()
    href = f"https://api/tasks/{task.id}"

    assert TaskUpdateSubscription.get_by_task_and_event(task, "status") == [
        WebhookRef("https://a", href),
        WebhookRef("https://b", href),
    ]
    assert TaskUpdateSubscription.get_by_task_and_event(task.id, "details") == [
        WebhookRef("https://a", href)
    ]
    assert [
        r.webhook_href for r in TaskUpdateSubscription.get_by_task_and_event(task)
    ] == [
        "https://a",
        "https://b",
        "https://c",
    ]


def test_subscriptions_of_one_webhook(app: Flask) -> None:
    task = make_task()
    subscribe(task, "https://a", None)
    subscribe(task, "https://a", "status")
    subscribe(task, "https://a", "steps")
    subscribe(task, "https://b", "status")
    db.session.commit()

    def events(**kwargs: t.Any) -> list[str | None]:
        found = TaskUpdateSubscription.get_by_task_and_subscriber(
            task, "https://a", **kwargs
        )
        return [s.event_type for s in found]

    assert events() == [None, "status", "steps"]
    assert events(event=None) == [None]
    assert events(event="steps") == ["steps"]
    assert events(event="details") == []


def fill_task() -> ProcessingTask:
    task = make_task()
    task.add_next_step("https://api/1", "https://ui/1", "first")
    add_file(task, "a.txt", "result")
    db.session.add(TaskLink(task, "plugin", "https://other/1"))
    subscribe(task, "https://hook", None)
    db.session.commit()
    return task


CHILD_TABLES = ("Step", "TaskFile", "TaskLink", "TaskUpdateSubscription")


def test_deleting_a_task_deletes_its_children(app: Flask) -> None:
    kept = fill_task()
    task = reload(fill_task())

    db.session.delete(task)
    db.session.commit()

    assert count_rows() == dict.fromkeys(count_rows(), 1)
    assert len(reload(kept).outputs) == 1


def test_schema_deletes_children_on_delete(app: Flask) -> None:
    kept_id = fill_task().id
    task_id = fill_task().id
    db.session.expunge_all()

    db.session.execute(sa.delete(ProcessingTask).where(ProcessingTask.id == task_id))
    db.session.commit()

    assert count_rows() == dict.fromkeys(count_rows(), 1)
    assert ProcessingTask.get_by_id(kept_id) is not None


def test_lookup_columns_are_indexed(app: Flask) -> None:
    inspector = sa.inspect(db.engine)

    def indexed(table: str) -> set[str]:
        return {str(ix["column_names"][0]) for ix in inspector.get_indexes(table)}

    assert {"task_name", "started_at", "finished_at", "task_status"} <= indexed(
        "ProcessingTask"
    )

    for table in CHILD_TABLES[1:]:
        assert "task_id" in indexed(table)

    # The steps' task id leads their primary key, which serves as its index.
    assert inspector.get_pk_constraint("Step")["constrained_columns"][0] == "id"

    for table in CHILD_TABLES:
        (foreign_key,) = inspector.get_foreign_keys(table)
        assert foreign_key["options"].get("ondelete") == "CASCADE"
