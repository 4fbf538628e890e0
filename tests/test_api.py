"""The task-status resource, through the test client and through a real server."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import typing as t
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import QHAnaTasks
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskLink
from flask_qhana_tasks import TaskUpdateSubscription
from flask_qhana_tasks.types import utcnow

from .conftest import BACKEND
from .conftest import database_uri
from .conftest import db
from .conftest import drop_everything

HOOK = "https://client.example/hook"

#: The answer for a task that the documentation shows.
DOCUMENTED_EXAMPLE = Path(__file__).parents[1] / "docs" / "task-status-example.json"


def file_url(file: TaskFile) -> str:
    return f"https://files.example/{file.file_name}?tag={file.security_tag}"


def create_app(
    tmp_path: Path, extension: QHAnaTasks | None = None, **config: t.Any
) -> Flask:
    """Return an application with the resource switched on, unless ``config``
    says otherwise, and an extension with :func:`file_url` as its resolver."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = Flask("tests", instance_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_uri(BACKEND, tmp_path)
    app.config["QHANA_TASKS_API"] = True
    app.config.update(config)
    db.init_app(app)

    if extension is None:
        extension = QHAnaTasks(output_url_resolver=file_url)

    extension.init_app(app)
    return app


@contextlib.contextmanager
def with_tables(app: Flask) -> Iterator[Flask]:
    """Run the body in the application's context, with the task tables and
    nothing else in its database."""
    with app.app_context():
        drop_everything(db.engine)
        db.create_all()

        try:
            yield app
        finally:
            db.session.remove()
            drop_everything(db.engine)
            db.engine.dispose()


@pytest.fixture
def api_app(tmp_path: Path) -> Iterator[Flask]:
    """An application serving the resource at /tasks, inside its context."""
    with with_tables(create_app(tmp_path)) as app:
        yield app


@pytest.fixture
def client(api_app: Flask) -> FlaskClient:
    return api_app.test_client()


def add_task(
    *,
    finished: bool = False,
    log: str = "",
    files: t.Sequence[tuple[str, str | None, str | None]] = (),
    links: t.Sequence[tuple[str, str]] = (),
) -> int:
    """Add a task and return its id.

    :param files: the name, type and media type of each file.
    :param links: the type and href of each link.
    """
    task = ProcessingTask("demo")

    if log:
        task.task_log = log

    for name, file_type, mimetype in files:
        TaskFile(task, "s3cret", "local", name, f"/files/{name}", file_type, mimetype)

    for link_type, href in links:
        TaskLink(task, link_type, href)

    if finished:
        task.task_status = "SUCCESS"
        task.finished_at = utcnow()

    task.save(commit=True)
    return task.id


def subscriptions() -> list[tuple[int | None, str, str | None, str]]:
    """Return the subscriptions in the database: task, webhook, event, task URL."""
    db.session.commit()
    table = TaskUpdateSubscription
    query = sa.select(
        table.task_id, table.webhook_href, table.event_type, table.task_href
    ).order_by(table.id)
    return [tuple(row) for row in db.session.execute(query)]  # type: ignore[misc]


def body_of(response: TestResponse) -> t.Any:
    """Return the JSON body of a response, which must have one."""
    body = response.get_json()
    assert body is not None
    return body


def post(client: FlaskClient, task_id: int, **body: t.Any) -> TestResponse:
    return client.post(f"/tasks/{task_id}/", json=body)


# -- GET ---------------------------------------------------------------------


def test_a_running_task(client: FlaskClient) -> None:
    task_id = add_task(
        log="Read 10 rows.",
        files=[("result.csv", "entity/list", "text/csv")],
        links=[("plugin", "https://other.example/1")],
    )

    response = client.get(f"/tasks/{task_id}/")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert body_of(response) == {
        "status": "PENDING",
        "log": "Read 10 rows.",
        "outputs": [],
        "links": [
            {"type": "subscribe", "href": f"http://localhost/tasks/{task_id}/"},
            {"type": "plugin", "href": "https://other.example/1"},
        ],
    }


def test_a_finished_task_lists_its_result_files(client: FlaskClient) -> None:
    task_id = add_task(
        finished=True,
        log="Done.",
        files=[
            ("result.csv", "entity/list", "text/csv"),
            ("scratch.bin", "temp-file", "application/octet-stream"),
            ("untyped.txt", None, "text/plain"),
            ("no-media-type.json", "entity/list", None),
            ("plot.svg", "plot", "image/svg+xml"),
        ],
    )

    response = client.get(f"/tasks/{task_id}/")

    assert response.status_code == 200
    assert body_of(response) == {
        "status": "SUCCESS",
        "log": "Done.",
        "outputs": [
            {
                "dataType": "entity/list",
                "contentType": "text/csv",
                "href": "https://files.example/result.csv?tag=s3cret",
                "name": "result.csv",
            },
            {
                "dataType": "plot",
                "contentType": "image/svg+xml",
                "href": "https://files.example/plot.svg?tag=s3cret",
                "name": "plot.svg",
            },
        ],
        "links": [{"type": "subscribe", "href": f"http://localhost/tasks/{task_id}/"}],
    }


def test_a_multi_step_task_lists_its_steps(client: FlaskClient) -> None:
    task = ProcessingTask("wizard")
    task.add_next_step("https://api.example/1", "https://ui.example/1", "choose")
    task.clear_previous_step()
    task.add_next_step("https://api.example/2", "https://ui.example/2", "confirm")
    task.save(commit=True)

    body = body_of(client.get(f"/tasks/{task.id}/"))

    assert body["steps"] == [
        {
            "href": "https://api.example/1",
            "uiHref": "https://ui.example/1",
            "stepId": "choose",
            "cleared": True,
        },
        {
            "href": "https://api.example/2",
            "uiHref": "https://ui.example/2",
            "stepId": "confirm",
            "cleared": False,
        },
    ]


def test_the_example_of_the_documentation(client: FlaskClient) -> None:
    task = ProcessingTask("clustering-wizard")
    task.add_task_log_entry("Loaded 150 entities.")
    task.add_task_log_entry("Clustered into 3 groups.")
    task.set_progress(2, start=0, target=2, unit="steps")
    task.add_next_step(
        "https://plugins.example/kmeans/step/choose/",
        "https://plugins.example/kmeans/step/choose/ui/",
        "choose-k",
    )
    task.clear_previous_step()
    TaskFile(
        task,
        "s3cret",
        "local",
        "clusters.json",
        "/f/1",
        "entity/label",
        "application/json",
    )
    TaskLink(task, "dashboard", "https://dashboard.example/runs/7")
    task.task_status = "SUCCESS"
    task.finished_at = utcnow()
    task.save(commit=True)

    body = body_of(client.get(f"/tasks/{task.id}/"))

    # docs/api-resource.rst shows this answer, for the task with the id 1.
    shown = json.dumps(body, indent=4).replace(f"/tasks/{task.id}/", "/tasks/1/")
    assert f"{shown}\n" == DOCUMENTED_EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, {"value": 0, "start": 0, "target": 100, "unit": "%"}),
        (12.5, {"value": 12.5, "start": 0, "target": 100, "unit": "%"}),
        (100, {"value": 100, "start": 0, "target": 100, "unit": "%"}),
    ],
)
def test_progress_is_shown_when_set(
    client: FlaskClient, value: float, shown: dict[str, t.Any]
) -> None:
    task = ProcessingTask("demo")
    task.set_progress(value)
    task.save(commit=True)

    assert body_of(client.get(f"/tasks/{task.id}/"))["progress"] == shown


def test_progress_with_its_own_scale(client: FlaskClient) -> None:
    task = ProcessingTask("demo")
    task.set_progress(3, start=1, target=7, unit="files")
    task.save(commit=True)

    assert body_of(client.get(f"/tasks/{task.id}/"))["progress"] == {
        "value": 3,
        "start": 1,
        "target": 7,
        "unit": "files",
    }


def test_no_progress_and_no_steps_leave_their_keys_out(client: FlaskClient) -> None:
    task_id = add_task()

    body = body_of(client.get(f"/tasks/{task_id}/"))

    assert "progress" not in body
    assert "steps" not in body


def test_failed_and_unknown_statuses(client: FlaskClient) -> None:
    failed = ProcessingTask("demo", task_status="FAILURE", finished_at=utcnow())
    unknown = ProcessingTask("demo", finished_at=utcnow())
    failed.save()
    unknown.save(commit=True)

    assert body_of(client.get(f"/tasks/{failed.id}/"))["status"] == "FAILURE"
    assert body_of(client.get(f"/tasks/{unknown.id}/"))["status"] == "UNKNOWN"


@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_task(client: FlaskClient, method: str) -> None:
    response = getattr(client, method)("/tasks/404/", json={"command": "subscribe"})

    assert response.status_code == 404
    assert body_of(response) == {
        "code": 404,
        "status": "Not Found",
        "message": "There is no task 404.",
    }


def test_ids_that_are_not_numbers_are_not_found(client: FlaskClient) -> None:
    assert client.get("/tasks/abc/").status_code == 404


def test_without_a_resolver_tasks_without_outputs_are_served(
    tmp_path: Path,
) -> None:
    with with_tables(create_app(tmp_path, QHAnaTasks())) as app:
        running = add_task(files=[("a.csv", "entity/list", "text/csv")])
        finished = add_task(finished=True, files=[("b.bin", "temp-file", "x/y")])

        for task_id in (running, finished):
            response = app.test_client().get(f"/tasks/{task_id}/")
            assert response.status_code == 200


def test_without_a_resolver_outputs_fail_with_a_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with with_tables(create_app(tmp_path, QHAnaTasks())) as app:
        task_id = add_task(finished=True, files=[("a.csv", "entity/list", "text/csv")])

        with caplog.at_level(logging.ERROR):
            response = app.test_client().get(f"/tasks/{task_id}/")

        assert response.status_code == 500
        assert (
            f"Task {task_id} has the result file 'a.csv', but no output URL resolver"
            " is registered" in caplog.text
        )


def test_resolver_registered_with_the_decorator(tmp_path: Path) -> None:
    extension = QHAnaTasks()

    @extension.output_url_resolver
    def url(file: TaskFile) -> str:
        return f"https://store.example/{file.id}"

    with with_tables(create_app(tmp_path, extension)) as app:
        task_id = add_task(finished=True, files=[("a.csv", "entity/list", "text/csv")])
        file_id = TaskFile.get_task_result_files(task_id)[0].id

        body = body_of(app.test_client().get(f"/tasks/{task_id}/"))

        assert url.__name__ == "url"
        assert [o["href"] for o in body["outputs"]] == [
            f"https://store.example/{file_id}"
        ]


# -- Configuration -----------------------------------------------------------


def test_off_by_default(tmp_path: Path) -> None:
    with with_tables(create_app(tmp_path, QHANA_TASKS_API=False)) as app:
        task_id = add_task()

        assert app.config["QHANA_TASKS_API_PREFIX"] == "/tasks"
        assert "qhana_tasks" not in app.blueprints
        assert app.test_client().get(f"/tasks/{task_id}/").status_code == 404


def test_not_switched_on_unless_configured(tmp_path: Path) -> None:
    app = Flask("tests", instance_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_uri(BACKEND, tmp_path)
    db.init_app(app)
    QHAnaTasks(app)

    assert app.config["QHANA_TASKS_API"] is False
    assert "qhana_tasks" not in app.blueprints


@pytest.mark.parametrize("prefix", ["/api/v1/tasks", "/api/v1/tasks/"])
def test_custom_prefix(tmp_path: Path, prefix: str) -> None:
    with with_tables(create_app(tmp_path, QHANA_TASKS_API_PREFIX=prefix)) as app:
        task_id = add_task()
        client = app.test_client()

        response = client.get(f"/api/v1/tasks/{task_id}/")

        assert response.status_code == 200
        assert body_of(response)["links"][0] == {
            "type": "subscribe",
            "href": f"http://localhost/api/v1/tasks/{task_id}/",
        }
        assert client.get(f"/tasks/{task_id}/").status_code == 404


def test_prefix_at_the_root(tmp_path: Path) -> None:
    with with_tables(create_app(tmp_path, QHANA_TASKS_API_PREFIX="/")) as app:
        task_id = add_task()

        assert app.test_client().get(f"/{task_id}/").status_code == 200


@pytest.mark.parametrize(
    "prefix", ["tasks", "", "/a//b", "/tasks/<int:x>", "/my tasks", "/t?x=1", None, 5]
)
def test_bad_prefix(tmp_path: Path, prefix: t.Any) -> None:
    with pytest.raises(ValueError) as info:
        create_app(tmp_path, QHANA_TASKS_API_PREFIX=prefix)

    assert str(info.value).startswith(
        "QHANA_TASKS_API_PREFIX must be a path that starts with '/'"
    )
    assert str(info.value).endswith(f"got {prefix!r}.")


# -- POST --------------------------------------------------------------------


def test_subscribe(client: FlaskClient) -> None:
    task_id = add_task(log="Started.")

    response = post(client, task_id, command="subscribe", webhookHref=HOOK)

    assert response.status_code == 200
    assert body_of(response) == body_of(client.get(f"/tasks/{task_id}/"))
    assert subscriptions() == [
        (task_id, HOOK, None, f"http://localhost/tasks/{task_id}/")
    ]


def test_subscribe_twice_keeps_one_subscription(client: FlaskClient) -> None:
    task_id = add_task()

    for _ in range(2):
        for event in (None, "status"):
            response = post(
                client, task_id, command="subscribe", webhookHref=HOOK, event=event
            )
            assert response.status_code == 200

    assert [row[2] for row in subscriptions()] == [None, "status"]


def test_subscribe_with_the_snake_case_field(client: FlaskClient) -> None:
    task_id = add_task()

    response = post(client, task_id, command="subscribe", webhook_href=HOOK)

    assert response.status_code == 200
    assert [row[1] for row in subscriptions()] == [HOOK]


def test_each_webhook_and_event_is_a_subscription_of_its_own(
    client: FlaskClient,
) -> None:
    task_id = add_task()
    other_id = add_task()

    for target, webhook, event in [
        (task_id, HOOK, None),
        (task_id, HOOK, "status"),
        (task_id, HOOK, ""),
        (task_id, "https://other.example/hook", None),
        (other_id, HOOK, None),
    ]:
        post(client, target, command="subscribe", webhookHref=webhook, event=event)

    assert [(row[0], row[1], row[2]) for row in subscriptions()] == [
        (task_id, HOOK, None),
        (task_id, HOOK, "status"),
        (task_id, HOOK, ""),
        (task_id, "https://other.example/hook", None),
        (other_id, HOOK, None),
    ]


def test_unsubscribe(client: FlaskClient) -> None:
    task_id = add_task()

    for event in (None, "status", "steps"):
        post(client, task_id, command="subscribe", webhookHref=HOOK, event=event)

    # Without an event, or with null, the subscription to every event goes.
    response = post(client, task_id, command="unsubscribe", webhookHref=HOOK)

    assert response.status_code == 200
    assert [row[2] for row in subscriptions()] == ["status", "steps"]

    post(client, task_id, command="unsubscribe", webhookHref=HOOK, event="status")

    assert [row[2] for row in subscriptions()] == ["steps"]


def test_unsubscribe_what_was_never_subscribed(client: FlaskClient) -> None:
    task_id = add_task()

    response = post(client, task_id, command="unsubscribe", webhookHref=HOOK)

    assert response.status_code == 200
    assert subscriptions() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "The request body must be a JSON object, such as {"),
        ("subscribe", "The request body must be a JSON object, such as {"),
        (None, "The request body must be a JSON object, such as {"),
        (
            {"command": "subscribe", "webhookHref": HOOK, "events": "status"},
            "The request body has the unknown field 'events'. The fields are"
            " 'command', 'webhookHref' and 'event'.",
        ),
        (
            {"webhookHref": HOOK},
            "'command' must be 'subscribe' or 'unsubscribe', got None.",
        ),
        (
            {"command": "cancel", "webhookHref": HOOK},
            "'command' must be 'subscribe' or 'unsubscribe', got 'cancel'.",
        ),
        (
            {"command": "subscribe"},
            "'webhookHref' must be the webhook's URL as a string, got None.",
        ),
        (
            {"command": "subscribe", "webhookHref": ["https://a.example"]},
            "'webhookHref' must be the webhook's URL as a string, got"
            " ['https://a.example'].",
        ),
        (
            {"command": "subscribe", "webhookHref": HOOK, "webhook_href": HOOK},
            "Give the webhook as 'webhookHref' or as 'webhook_href', not both.",
        ),
        (
            {"command": "subscribe", "webhookHref": HOOK, "event": 3},
            "'event' must be a string, or null for every event, got 3.",
        ),
        (
            {"command": "subscribe", "webhookHref": "https://a.example/" + "x" * 500},
            "TaskUpdateSubscription.webhook_href takes at most 500 characters, got 518",
        ),
        (
            {"command": "subscribe", "webhookHref": HOOK, "event": "e" * 65},
            "TaskUpdateSubscription.event_type takes at most 64 characters, got 65",
        ),
    ],
)
def test_malformed_bodies(client: FlaskClient, body: t.Any, message: str) -> None:
    task_id = add_task()

    response = client.post(
        f"/tasks/{task_id}/", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    assert body_of(response)["code"] == 400
    assert body_of(response)["message"].startswith(message)
    assert subscriptions() == []


@pytest.mark.parametrize(
    "href",
    [
        "hook",
        "/hook",
        "//client.example/hook",
        "ftp://client.example/hook",
        "mailto:someone@client.example",
        "https://",
        "javascript:alert(1)",
    ],
)
@pytest.mark.parametrize("command", ["subscribe", "unsubscribe"])
def test_webhook_urls_must_be_absolute_http_urls(
    client: FlaskClient, href: str, command: str
) -> None:
    task_id = add_task()

    response = post(client, task_id, command=command, webhookHref=href)

    assert response.status_code == 400
    assert body_of(response)["message"] == (
        f"'webhookHref' must be an absolute http or https URL, got {href!r}."
    )
    assert subscriptions() == []


def test_bodies_that_are_not_json(client: FlaskClient) -> None:
    task_id = add_task()

    as_form = client.post(f"/tasks/{task_id}/", data={"command": "subscribe"})
    broken = client.post(
        f"/tasks/{task_id}/", data="{", content_type="application/json"
    )

    assert as_form.status_code == 400
    assert body_of(as_form)["message"] == (
        "The request body must be JSON, sent with the header"
        " 'Content-Type: application/json'."
    )
    assert broken.status_code == 400
    assert body_of(broken)["message"] == "The request body is not valid JSON."


# -- Uniqueness --------------------------------------------------------------


@pytest.mark.parametrize("event", [None, "status", ""])
def test_the_database_refuses_a_second_subscription(
    api_app: Flask, event: str | None
) -> None:
    task = ProcessingTask("demo")
    TaskUpdateSubscription(task, HOOK, "https://api/tasks/1", event).save()
    task.save(commit=True)

    TaskUpdateSubscription(task, HOOK, "https://api/tasks/1", event).save()

    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()

    db.session.rollback()
    assert [row[2] for row in subscriptions()] == [event]


def test_a_subscription_added_after_the_check_counts_as_subscribed(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = add_task()
    post(client, task_id, command="subscribe", webhookHref=HOOK)

    # As if another request had inserted the row between the check and the insert.
    monkeypatch.setattr(
        TaskUpdateSubscription,
        "get_by_task_and_subscriber",
        classmethod(lambda cls, *args, **kwargs: []),
    )
    response = post(client, task_id, command="subscribe", webhookHref=HOOK)

    assert response.status_code == 200
    assert body_of(response)["status"] == "PENDING"
    assert [row[1] for row in subscriptions()] == [HOOK]


# -- A real server -----------------------------------------------------------


@pytest.fixture
def server(api_app: Flask) -> Iterator[str]:
    """Serve the application on a free port of the loopback interface; return
    its base URL."""
    http_server = make_server("127.0.0.1", 0, api_app, threaded=True)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()

    try:
        yield f"http://127.0.0.1:{http_server.server_port}"
    finally:
        http_server.shutdown()
        thread.join(timeout=10)
        http_server.server_close()


def request_json(url: str, body: t.Any = None) -> tuple[int, t.Any]:
    """Send a GET, or a POST of ``body`` as JSON; return the status and the JSON
    answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data)

    if data is not None:
        request.add_header("Content-Type", "application/json")

    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_over_http(server: str) -> None:
    task_id = add_task(
        finished=True, log="Done.", files=[("a.csv", "entity/list", "text/csv")]
    )
    url = f"{server}/tasks/{task_id}/"

    status, body = request_json(url)

    assert status == 200
    assert body == {
        "status": "SUCCESS",
        "log": "Done.",
        "outputs": [
            {
                "dataType": "entity/list",
                "contentType": "text/csv",
                "href": "https://files.example/a.csv?tag=s3cret",
                "name": "a.csv",
            }
        ],
        "links": [{"type": "subscribe", "href": url}],
    }

    status, answer = request_json(url, {"command": "subscribe", "webhookHref": HOOK})

    assert status == 200
    assert answer == body
    assert subscriptions() == [(task_id, HOOK, None, url)]

    status, answer = request_json(url, {"command": "unsubscribe", "webhookHref": HOOK})

    assert status == 200
    assert subscriptions() == []


def test_errors_over_http(server: str) -> None:
    task_id = add_task()

    missing = request_json(f"{server}/tasks/{task_id + 1}/")
    bad = request_json(f"{server}/tasks/{task_id}/", {"command": "subscribe"})

    assert missing == (
        404,
        {
            "code": 404,
            "status": "Not Found",
            "message": f"There is no task {task_id + 1}.",
        },
    )
    assert bad[0] == 400
    assert bad[1]["message"] == (
        "'webhookHref' must be the webhook's URL as a string, got None."
    )


def test_concurrent_subscriptions_of_one_webhook(server: str) -> None:
    task_id = add_task()
    url = f"{server}/tasks/{task_id}/"
    count = 8
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def subscribe() -> None:
        barrier.wait()
        status, _ = request_json(url, {"command": "subscribe", "webhookHref": HOOK})
        statuses.append(status)

    threads = [threading.Thread(target=subscribe) for _ in range(count)]

    for thread in threads:
        thread.start()

    for thread in threads:
        thread.join(timeout=60)

    assert statuses == [200] * count
    assert subscriptions() == [(task_id, HOOK, None, url)]
