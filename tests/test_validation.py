"""Bad values are refused when they are assigned, before the database sees them."""

from __future__ import annotations

import math
import typing as t

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskLink
from flask_qhana_tasks import TaskUpdateSubscription

from .conftest import db


def count_tasks() -> int:
    return (
        db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingTask)) or 0
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ProcessingTask("x" * 501),
            "ProcessingTask.task_name takes at most 500",
        ),
        (
            lambda: ProcessingTask("t", progress_unit="u" * 101),
            "progress_unit takes at most 100",
        ),
        (
            lambda: ProcessingTask("t", task_status="S" * 101),
            "task_status takes at most 100",
        ),
        (
            lambda: TaskLink(ProcessingTask("t"), "plugin", "https://x/" + "a" * 500),
            "TaskLink.href takes at most 500 characters, got 510",
        ),
        (
            lambda: TaskFile(ProcessingTask("t"), "s" * 65, "local", "a", "/a", None),
            "TaskFile.security_tag takes at most 64",
        ),
        (
            lambda: TaskFile(ProcessingTask("t"), "s", None, "a", "/a", None),  # type: ignore[arg-type]
            "TaskFile.storage_provider must not be None",
        ),
    ],
)
def test_strings_longer_than_their_column(
    app: Flask, make: t.Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make()

    db.session.commit()
    assert count_tasks() == 0


def test_strings_of_another_type(app: Flask) -> None:
    with pytest.raises(
        TypeError, match=r"ProcessingTask.task_name takes a 'str', got 'int' \(5\)"
    ):
        ProcessingTask(5)  # type: ignore[arg-type]

    task = ProcessingTask("ok")

    with pytest.raises(
        TypeError, match=r"ProcessingTask\.task_log takes a 'str', got 'bytes'"
    ):
        task.task_log = b"log"  # type: ignore[assignment]


def test_a_string_of_full_length_is_kept(app: Flask) -> None:
    task = ProcessingTask("n" * 500)
    task.save(commit=True)

    assert db.session.scalar(sa.select(ProcessingTask.task_name)) == "n" * 500


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({1, 2}, TypeError, r"got 'set' \(\{1, 2\}\) at the top"),
        ({"a": [1, object()]}, TypeError, r"got 'object' .* at \['a'\]\[1\]"),
        ({"n": math.nan}, ValueError, r"cannot represent the number nan at \['n'\]"),
        ({1: "one"}, TypeError, "keys must be strings, got 'int'"),
    ],
)
def test_data_that_is_not_json(
    app: Flask, value: t.Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"ProcessingTask.data: .*{message}"):
        ProcessingTask("t", data=value)


def test_nested_data_that_is_not_json(app: Flask) -> None:
    task = ProcessingTask("t", data={"a": {"b": []}})
    task.save(commit=True)

    with pytest.raises(TypeError, match="got 'bytes'"):
        task.data["a"]["b"].append(b"raw")

    with pytest.raises(TypeError, match="keys must be strings, got 'tuple'"):
        task.data["a"][(1, 2)] = 3

    with pytest.raises(ValueError, match="number inf"):
        task.data.update(x=math.inf)

    db.session.commit()
    db.session.expire_all()
    assert task.data == {"a": {"b": []}}


def test_tuples_are_stored_as_lists(app: Flask) -> None:
    task = ProcessingTask("t", data={"pair": (1, 2)})
    task.save(commit=True)
    db.session.expire_all()

    assert task.data == {"pair": [1, 2]}


@pytest.mark.parametrize(
    "href",
    [
        "ftp://hooks.example/x",
        "/relative/path",
        "hooks.example/x",
        "https://",
        "mailto:a@b",
    ],
)
def test_webhook_href_must_be_an_absolute_http_url(app: Flask, href: str) -> None:
    with pytest.raises(ValueError, match="must be an absolute http or https URL"):
        TaskUpdateSubscription(ProcessingTask("t"), href, "https://api/tasks/1")


@pytest.mark.parametrize(
    "href", ["http://localhost:8080/hook", "https://hooks.example/a?b=1"]
)
def test_webhook_href_accepted(app: Flask, href: str) -> None:
    task = ProcessingTask("t")
    TaskUpdateSubscription(task, href, "https://api/tasks/1").save(commit=True)

    assert [s.webhook_href for s in task.subscriptions] == [href]
