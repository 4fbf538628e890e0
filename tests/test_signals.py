from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import types
import typing as t
from collections.abc import Callable
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import Step
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskLink
from flask_qhana_tasks import TaskStatus
from flask_qhana_tasks import TaskUpdateSubscription
from flask_qhana_tasks import WebhookRef
from flask_qhana_tasks.maintenance import clear_stale_steps
from flask_qhana_tasks.maintenance import clear_steps
from flask_qhana_tasks.prune import prune_tasks
from flask_qhana_tasks.signals import task_details_changed
from flask_qhana_tasks.signals import task_status_changed
from flask_qhana_tasks.signals import task_steps_changed
from flask_qhana_tasks.types import utcnow
from flask_qhana_tasks.webhooks import notification_url
from flask_qhana_tasks.webhooks import webhooks_for

from .conftest import add_task
from .conftest import db
from .conftest import load_task

SIGNALS = {
    "status": task_status_changed,
    "steps": task_steps_changed,
    "details": task_details_changed,
}


class Heard(list[tuple[str, int]]):
    """The signals a receiver heard, as ``(event, task_id)`` in order."""

    def take(self) -> list[tuple[str, int]]:
        """Return what was heard so far and forget it."""
        heard = list(self)
        self.clear()
        return heard


@pytest.fixture
def heard(app: Flask) -> Iterator[Heard]:
    """Record every change signal sent for the app, checking that each carries
    its own event."""
    heard = Heard()

    def hear(signal_event: str) -> Callable[..., None]:
        def receiver(
            sender: Flask, *, task_id: int, event: str, **extra: t.Any
        ) -> None:
            assert sender is app
            assert event == signal_event
            heard.append((event, task_id))

        return receiver

    # Blinker holds receivers weakly: keep them until the test is done.
    receivers = {event: hear(event) for event in SIGNALS}

    for event, signal in SIGNALS.items():
        signal.connect(receivers[event], sender=app)

    yield heard

    for event, signal in SIGNALS.items():
        signal.disconnect(receivers[event], sender=app)


def new_task(name: str = "demo") -> int:
    task = ProcessingTask(name)
    task.save(commit=True)
    return task.id


def test_new_task_is_a_status_and_a_details_change(heard: Heard) -> None:
    task = ProcessingTask("demo")
    db.session.add(task)
    db.session.flush()

    assert heard == []

    db.session.commit()

    assert heard == [("status", task.id), ("details", task.id)]


def test_receivers_get_the_app_and_the_task_id(app: Flask) -> None:
    calls: list[tuple[Flask, dict[str, t.Any]]] = []

    def receiver(sender: Flask, **kwargs: t.Any) -> None:
        calls.append((sender, kwargs))

    task_status_changed.connect(receiver, sender=app)

    try:
        task_id = new_task()
    finally:
        task_status_changed.disconnect(receiver, sender=app)

    assert calls == [(app, {"task_id": task_id, "event": "status"})]


def test_status_change_sent_once_per_commit(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()
    task = load_task(task_id)

    task.task_status = TaskStatus.SUCCESS
    db.session.flush()
    task.finished_at = utcnow()
    db.session.commit()

    assert heard.take() == [("status", task_id)]

    db.session.commit()

    assert heard == []


def test_setting_the_same_value_is_no_change(heard: Heard) -> None:
    task = ProcessingTask("demo", task_status="FAILURE")
    task.save(commit=True)
    heard.clear()

    assert task.task_status == "FAILURE"
    task.task_status = "FAILURE"
    task.task_name = "demo"
    db.session.commit()

    assert heard == []


def test_writing_an_attribute_not_loaded_is_a_change(heard: Heard) -> None:
    task = ProcessingTask("demo", task_status="FAILURE")
    task.save(commit=True)
    heard.clear()

    # Expired by the commit: the session cannot tell the value is the same.
    task.task_status = "FAILURE"
    db.session.commit()

    assert heard == [("status", task.id)]


@pytest.mark.parametrize(
    ("change", "event"),
    [
        (lambda task: setattr(task, "task_name", "other"), "details"),
        (lambda task: setattr(task, "parameters", '{"rows": 3}'), "details"),
        (lambda task: task.set_progress(50), "details"),
        (lambda task: task.advance_progress(5), "details"),
        (lambda task: task.add_task_log_entry("Read."), "details"),
        (lambda task: task.data.update(rows=3), "details"),
        (lambda task: task.data["nested"].append(1), "details"),
        (lambda task: setattr(task, "finished_at", utcnow()), "status"),
        (lambda task: setattr(task, "task_status", "FAILURE"), "status"),
        (lambda task: task.clear_previous_step(), "steps"),
        (lambda task: task.steps[0].__setattr__("cleared", True), "steps"),
    ],
    ids=[
        "name",
        "parameters",
        "set_progress",
        "advance_progress",
        "log entry",
        "data",
        "nested data",
        "finished_at",
        "task_status",
        "clear_previous_step",
        "step cleared",
    ],
)
def test_each_change_and_its_signal(
    heard: Heard, change: Callable[[ProcessingTask], None], event: str
) -> None:
    task = ProcessingTask("demo", data={"nested": []})
    task.add_next_step("https://api/0", "https://ui/0", "s0")
    task.save(commit=True)
    heard.clear()

    change(load_task(task.id))
    db.session.flush()

    assert heard == []

    db.session.commit()

    assert heard == [(event, task.id)]


def test_adding_a_step_is_a_steps_change(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()

    step = load_task(task_id).add_next_step("https://api/0", "https://ui/0", "s0")

    assert heard == []

    db.session.commit()

    assert heard == [("steps", task_id)]
    assert (step.id, step.number) == (task_id, 0)


def test_log_entries_and_progress_in_one_transaction_send_one_signal(
    heard: Heard,
) -> None:
    task_id = new_task()
    heard.clear()
    task = load_task(task_id)

    for n in range(3):
        task.add_task_log_entry(f"Part {n}.")
        task.advance_progress(10)

    db.session.commit()

    assert heard == [("details", task_id)]
    assert load_task(task_id).task_log == "Part 0.\nPart 1.\nPart 2."


def test_status_and_steps_changed_together_send_both_once(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()
    task = load_task(task_id)

    task.add_next_step("https://api/0", "https://ui/0", "s0")
    task.add_task_log_entry("Waiting for input.")
    task.task_status = "WAITING"
    task.clear_previous_step()
    task.add_next_step("https://api/1", "https://ui/1", "s1")
    db.session.commit()

    assert heard == [("status", task_id), ("steps", task_id), ("details", task_id)]


def test_several_tasks_send_one_signal_each(heard: Heard) -> None:
    first, second, third = new_task("a"), new_task("b"), new_task("c")
    heard.clear()
    db.session.expunge_all()
    query = sa.select(ProcessingTask).where(ProcessingTask.id.in_([first, second]))
    tasks = {task.id: task for task in db.session.scalars(query)}
    tasks[third] = ProcessingTask.get_by_id(third)  # type: ignore[assignment]

    for task_id in (third, first, second, first):
        tasks[task_id].add_task_log_entry("Seen.")

    tasks[second].task_status = "FAILURE"
    db.session.commit()

    assert heard == [
        ("details", first),
        ("status", second),
        ("details", second),
        ("details", third),
    ]


def test_rollback_sends_nothing(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()
    task = load_task(task_id)

    task.add_task_log_entry("Lost.")
    task.task_status = "FAILURE"
    TaskFile(task, "secret", "local", "a.csv", "/files/a.csv", "entity/list").save()
    db.session.flush()
    db.session.rollback()

    assert heard == []

    db.session.commit()

    assert heard == []
    assert load_task(task_id).task_log == ""


def test_a_new_task_rolled_back_sends_nothing(heard: Heard) -> None:
    db.session.add(ProcessingTask("lost"))
    db.session.flush()
    db.session.rollback()
    kept = new_task("kept")

    assert heard == [("status", kept), ("details", kept)]


def test_rolled_back_savepoint_drops_only_its_changes(heard: Heard) -> None:
    outer_id, inner_id = new_task("outer"), new_task("inner")
    heard.clear()
    db.session.expunge_all()
    outer = ProcessingTask.get_by_id(outer_id)
    inner = ProcessingTask.get_by_id(inner_id)
    assert outer is not None and inner is not None

    # Written before the savepoint, by the flush that begins it.
    outer.task_status = "WAITING"
    savepoint = db.session.begin_nested()
    outer.add_task_log_entry("Lost.")
    inner.task_status = "FAILURE"
    inner.add_next_step("https://api/0", "https://ui/0", "s0")
    db.session.flush()
    savepoint.rollback()
    db.session.commit()

    assert heard == [("status", outer_id)]
    assert load_task(outer_id).task_status == "WAITING"
    assert load_task(outer_id).task_log == ""
    assert load_task(inner_id).task_status is None
    assert load_task(inner_id).steps == []


def test_released_savepoint_is_sent_with_its_transaction(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()
    task = load_task(task_id)

    task.add_task_log_entry("Before.")

    with db.session.begin_nested():
        task.task_status = "FAILURE"

        with db.session.begin_nested():
            task.add_next_step("https://api/0", "https://ui/0", "s0")

    assert heard == []

    db.session.commit()

    assert heard == [("status", task_id), ("steps", task_id), ("details", task_id)]


def test_failed_flush_sends_nothing(heard: Heard) -> None:
    task_id = add_task(awaiting_input=True)
    heard.clear()
    task = load_task(task_id)

    task.add_task_log_entry("Lost.")
    task.task_status = "FAILURE"
    # A second step number 0: the database refuses it.
    duplicate = Step(id=task_id, step_id="again", href="h", ui_href="u")
    duplicate.number = 0
    db.session.add(duplicate)

    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()

    db.session.rollback()

    assert heard == []

    load_task(task_id).task_name = "renamed"
    db.session.commit()

    assert heard == [("details", task_id)]
    assert load_task(task_id).task_log == ""


def test_failed_commit_sends_nothing(app: Flask, heard: Heard) -> None:
    task_id = new_task()
    heard.clear()

    def refuse(connection: sa.Connection) -> None:
        raise OSError("disk I/O error")

    load_task(task_id).add_task_log_entry("Lost.")
    sa.event.listen(db.engine, "commit", refuse)

    try:
        with pytest.raises(OSError, match="disk I/O error"):
            db.session.commit()
    finally:
        sa.event.remove(db.engine, "commit", refuse)

    db.session.rollback()

    assert heard == []
    assert load_task(task_id).task_log == ""


def test_lock_alone_is_no_change(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()

    load_task(task_id).lock()
    db.session.commit()

    assert heard == []


def test_read_modify_write_under_lock_is_a_details_change(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()
    task = load_task(task_id)

    task.lock()
    task.data["seen"] = task.data.get("seen", 0) + 1
    db.session.commit()

    assert heard == [("details", task_id)]


def test_files_and_links_are_details_of_their_task(heard: Heard) -> None:
    task_id, other_id = new_task(), new_task("other")
    heard.clear()
    task = load_task(task_id)

    TaskFile(task, "secret", "local", "a.csv", "/files/a.csv", "entity/list").save()
    TaskLink(task, "plugin", "https://other/1").save()
    db.session.commit()

    assert heard.take() == [("details", task_id)]

    load_task(task_id).links[0].href = "https://other/2"
    db.session.commit()

    assert heard.take() == [("details", task_id)]

    task = load_task(task_id)
    task.links[0].task = ProcessingTask.get_by_id(other_id)  # type: ignore[assignment]
    db.session.commit()

    assert heard.take() == [("details", task_id), ("details", other_id)]

    db.session.expunge_all()
    output = db.session.scalars(sa.select(TaskFile)).one()
    db.session.commit()
    db.session.delete(output)
    db.session.commit()

    assert heard.take() == [("details", task_id)]

    other = load_task(other_id)
    other.links.clear()
    db.session.commit()

    assert heard.take() == [("details", other_id)]
    assert db.session.scalars(sa.select(TaskLink)).all() == []


def test_subscriptions_are_no_change_of_the_task(heard: Heard) -> None:
    task_id = new_task()
    heard.clear()

    subscription = TaskUpdateSubscription(
        load_task(task_id), "https://hook", "https://api/tasks/1", "status"
    )
    subscription.save(commit=True)
    subscription.event_type = None
    db.session.commit()
    db.session.delete(subscription)
    db.session.commit()

    assert heard == []


def test_deleted_task_sends_nothing(heard: Heard) -> None:
    task_id = add_task(steps=1, children=True)
    heard.clear()
    task = load_task(task_id)

    task.add_task_log_entry("Last words.")
    db.session.delete(task)
    db.session.commit()

    assert heard == []
    assert ProcessingTask.get_by_id(task_id) is None


def test_clear_steps_command_sends_steps_once_per_task(
    cli: FlaskCliRunner, heard: Heard
) -> None:
    waiting = add_task("waiting", steps=1, awaiting_input=True)
    done = add_task("done", steps=2)
    other = add_task("other", awaiting_input=True)
    heard.clear()

    result = cli.invoke(args=["tasks", "clear-steps", str(waiting), str(done)])

    assert result.exit_code == 0, result.output
    assert heard.take() == [("steps", waiting)]

    result = cli.invoke(args=["tasks", "clear-steps", "--dry-run", str(other)])

    assert result.exit_code == 0, result.output
    assert heard == []


def test_clear_stale_steps_sends_steps_once_per_task(heard: Heard) -> None:
    stale = [add_task(f"stale-{n}", started=timedelta(days=2)) for n in range(3)]
    fresh = add_task("fresh", started=timedelta(minutes=1), awaiting_input=True)

    for task_id in stale:
        task = load_task(task_id)

        for n in range(2):
            task.add_next_step(f"https://api/{n}", f"https://ui/{n}", f"s{n}")
            task.steps[-1].created_at = utcnow() - timedelta(days=2)
            db.session.commit()

            if n == 0:
                task.clear_previous_step(commit=True)

    db.session.execute(sa.update(Step).where(Step.id == stale[0]).values(cleared=True))
    db.session.commit()
    heard.clear()

    cleared = clear_stale_steps(timedelta(days=1))

    assert [(step.task_id, step.number) for step in cleared] == [
        (stale[1], 1),
        (stale[2], 1),
    ]
    assert heard == [("steps", stale[1]), ("steps", stale[2])]
    assert fresh not in dict(heard).values()


def test_clear_steps_of_many_tasks_in_several_statements(
    heard: Heard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_qhana_tasks.maintenance._CLEAR_CHUNK", 2)
    ids = [add_task(f"t{n}", awaiting_input=True) for n in range(5)]
    heard.clear()

    cleared = clear_steps(ids)

    assert [(step.task_id, step.number) for step in cleared] == [
        (task_id, 0) for task_id in ids
    ]
    assert heard == [("steps", task_id) for task_id in ids]
    query = sa.select(Step.id).where(Step.cleared.is_not(True))
    assert db.session.scalars(query).all() == []


def test_clear_steps_leaves_a_step_added_meanwhile_waiting(heard: Heard) -> None:
    task_id = add_task(awaiting_input=True)
    heard.clear()
    added: list[int] = []

    def add_step_elsewhere(state: sa.orm.ORMExecuteState) -> None:
        if not state.is_update or added:
            return

        # Another worker adds a step between the query and the update.
        with db.engine.begin() as connection:
            connection.execute(
                sa.insert(Step).values(
                    id=task_id, number=1, step_id="s1", cleared=False
                )
            )

        added.append(task_id)

    sa.event.listen(db.session, "do_orm_execute", add_step_elsewhere)

    try:
        cleared = clear_steps([task_id])
    finally:
        sa.event.remove(db.session, "do_orm_execute", add_step_elsewhere)

    assert added == [task_id]
    assert [(step.task_id, step.number) for step in cleared] == [(task_id, 0)]
    assert heard == [("steps", task_id)]
    query = sa.select(Step.number, Step.cleared).where(Step.id == task_id)
    assert db.session.execute(query.order_by(Step.number)).all() == [
        (0, True),
        (1, False),
    ]


def test_prune_sends_no_change_signal(heard: Heard) -> None:
    task_id = add_task(started=timedelta(days=40), finished=timedelta(days=39))
    heard.clear()

    report = prune_tasks(older_than=timedelta(days=30))

    assert report.tasks == 1
    assert ProcessingTask.get_by_id(task_id) is None
    assert heard == []


def test_other_sessions_send_nothing(heard: Heard) -> None:
    with Session(db.engine) as session:
        task = ProcessingTask("elsewhere")
        session.add(task)
        session.commit()

    assert heard == []


def test_a_raising_receiver_is_logged_and_the_others_still_called(
    app: Flask, heard: Heard, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Flask, **extra: t.Any) -> None:
        raise RuntimeError("receiver failed")

    task_status_changed.connect(broken, sender=app)

    try:
        with caplog.at_level(logging.ERROR, "flask_qhana_tasks"):
            task_id = new_task()
    finally:
        task_status_changed.disconnect(broken, sender=app)

    assert heard == [("status", task_id), ("details", task_id)]
    assert [record.getMessage() for record in caplog.records] == [
        f"A receiver of the status change of task {task_id} failed; the change is"
        " committed, and the other receivers are called."
    ]
    assert caplog.records[0].exc_info is not None
    assert str(caplog.records[0].exc_info[1]) == "receiver failed"
    assert load_task(task_id).task_name == "demo"


def test_receivers_can_use_the_session(app: Flask) -> None:
    statuses: list[str] = []

    def receiver(sender: Flask, *, task_id: int, **extra: t.Any) -> None:
        task = ProcessingTask.get_by_id(task_id)
        assert task is not None
        statuses.append(task.status)

    task_status_changed.connect(receiver, sender=app)

    try:
        task = ProcessingTask("demo")
        task.save(commit=True)
        task.task_status = "SUCCESS"
        task.finished_at = utcnow()
        task.save(commit=True)
        task.add_task_log_entry("Done.", commit=True)
    finally:
        task_status_changed.disconnect(receiver, sender=app)

    assert statuses == ["PENDING", "SUCCESS"]


def test_a_receiver_that_commits_sends_its_own_signals(
    app: Flask, heard: Heard
) -> None:
    def note_finish(sender: Flask, *, task_id: int, **extra: t.Any) -> None:
        task = ProcessingTask.get_by_id(task_id)
        assert task is not None

        if task.is_finished:
            task.add_task_log_entry("Finished.", commit=True)

    task_status_changed.connect(note_finish, sender=app)

    try:
        task_id = new_task()
        heard.clear()
        task = load_task(task_id)
        task.task_status = "SUCCESS"
        task.finished_at = utcnow()
        db.session.commit()
    finally:
        task_status_changed.disconnect(note_finish, sender=app)

    assert heard == [("status", task_id), ("details", task_id)]
    assert load_task(task_id).task_log == "Finished."


def subscribe(task_id: int, webhook: str, event: str | None) -> None:
    task = load_task(task_id)
    subscription = TaskUpdateSubscription(
        task, webhook, f"https://api/tasks/{task_id}/", event
    )
    subscription.save(commit=True)


def test_webhooks_for_an_event(app: Flask) -> None:
    task_id, other_id = new_task(), new_task("other")
    subscribe(task_id, "https://b/status", "status")
    subscribe(task_id, "https://a/all", None)
    subscribe(task_id, "https://c/steps", "steps")
    subscribe(task_id, "https://a/all", "status")
    subscribe(other_id, "https://d/status", "status")
    source = f"https://api/tasks/{task_id}/"

    assert webhooks_for(task_id, "status") == [
        WebhookRef("https://a/all", source),
        WebhookRef("https://b/status", source),
    ]
    assert webhooks_for(task_id, "steps") == [
        WebhookRef("https://a/all", source),
        WebhookRef("https://c/steps", source),
    ]
    assert webhooks_for(task_id, "details") == [WebhookRef("https://a/all", source)]
    assert webhooks_for(12345, "status") == []


def test_webhooks_for_an_unknown_event(app: Flask) -> None:
    with pytest.raises(ValueError) as info:
        webhooks_for(1, "finished")

    assert str(info.value) == (
        "'finished' is not a task event: use one of status, steps, details."
    )


@pytest.mark.parametrize(
    ("webhook", "expected"),
    [
        (
            "https://hooks.example/task-changed",
            "https://hooks.example/task-changed?source=https%3A%2F%2Fapi%2Ftasks"
            "%2F7%2F%3Fx%3D1&event=status",
        ),
        (
            "https://hooks.example/hook?token=a+b&empty=",
            "https://hooks.example/hook?token=a+b&empty=&source=https%3A%2F%2Fapi"
            "%2Ftasks%2F7%2F%3Fx%3D1&event=status",
        ),
    ],
)
def test_notification_url(webhook: str, expected: str) -> None:
    ref = WebhookRef(webhook, "https://api/tasks/7/?x=1")

    url = notification_url(ref, "status")

    assert url == expected
    assert dict(parse_qsl(urlsplit(url).query))["source"] == ref.task_href


class Requests(list[tuple[str, str, bytes]]):
    """The requests a test server received: method, path with query, body."""


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, Requests]]:
    """An HTTP server on a free local port that answers every POST with 204."""
    received = Requests()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(("POST", self.path, self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: t.Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def load_celery_example(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Import ``examples/webhooks.py`` with a stand-in for Celery that runs each
    task at once when it is enqueued."""
    celery = types.ModuleType("celery")

    def shared_task(**options: t.Any) -> Callable[[t.Any], t.Any]:
        def decorate(function: t.Any) -> t.Any:
            function.delay = function
            return function

        return decorate

    celery.shared_task = shared_task  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "celery", celery)
    path = Path(__file__).parent.parent / "examples" / "webhooks.py"
    spec = importlib.util.spec_from_file_location("webhooks_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_celery_example_posts_to_the_subscribed_webhooks(
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
    webhook_server: tuple[str, Requests],
) -> None:
    base, received = webhook_server
    example = load_celery_example(monkeypatch)
    example.init_app(app)

    try:
        task_id = new_task()
        subscribe(task_id, f"{base}/status", "status")
        subscribe(task_id, f"{base}/all?ui=1", None)

        assert received == []

        task = load_task(task_id)
        task.add_task_log_entry("Done.")
        task.task_status = "SUCCESS"
        task.finished_at = utcnow()
        db.session.commit()
    finally:
        for signal in SIGNALS.values():
            signal.disconnect(example.notify_webhooks, sender=app)

    source = f"https%3A%2F%2Fapi%2Ftasks%2F{task_id}%2F"
    assert received == [
        ("POST", f"/all?ui=1&source={source}&event=status", b""),
        ("POST", f"/status?source={source}&event=status", b""),
        ("POST", f"/all?ui=1&source={source}&event=details", b""),
    ]
