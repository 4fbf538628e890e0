"""Timestamps come back timezone-aware in UTC, to the microsecond, on every database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import TaskFile

from .conftest import BACKEND
from .conftest import db
from .conftest import empty_database_app
from .conftest import load_task

#: Each database, and PostgreSQL once more with a session in another time zone.
SETUPS: dict[str, tuple[str, dict[str, object]]] = {
    "sqlite": ("sqlite", {}),
    "postgresql": ("postgresql", {}),
    "postgresql-new-york": (
        "postgresql",
        {"connect_args": {"options": "-c timezone=America/New_York"}},
    ),
    "mariadb": ("mariadb", {}),
}

if BACKEND != "sqlite":
    SETUPS = {name: setup for name, setup in SETUPS.items() if setup[0] == BACKEND}


@pytest.fixture(params=list(SETUPS))
def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    backend, engine_options = SETUPS[request.param]

    with empty_database_app(
        backend, tmp_path, SQLALCHEMY_ENGINE_OPTIONS=engine_options
    ) as app:
        yield app


def test_round_trip_keeps_zone_and_microseconds(any_app: Flask) -> None:
    berlin = timezone(timedelta(hours=1))
    finished = datetime(2026, 7, 1, 23, 30, 15, 123456, tzinfo=berlin)
    task = ProcessingTask("t", finished_at=finished)
    task.save()
    TaskFile(task, "s", "local", "a.txt", "/a", None).save(commit=True)
    started = task.started_at

    task = load_task(task.id)

    assert task.finished_at == finished
    assert task.finished_at.tzinfo is timezone.utc
    assert task.finished_at.hour == 22
    assert task.started_at == started
    assert task.started_at.microsecond == started.microsecond
    assert task.outputs[0].created_at.tzinfo is timezone.utc


def test_comparisons_in_queries_use_utc(any_app: Flask) -> None:
    ids = []

    for hour in (10, 11, 12):
        task = ProcessingTask(
            f"h{hour}", started_at=datetime(2026, 1, 1, hour, tzinfo=timezone.utc)
        )
        task.save(commit=True)
        ids.append(task.id)

    # 12:30 in New York is 17:30 UTC; 07:00 there is 12:00 UTC.
    new_york = timezone(timedelta(hours=-5))
    query = sa.select(ProcessingTask.id).where(
        ProcessingTask.started_at < datetime(2026, 1, 1, 7, 0, 0, 1, tzinfo=new_york)
    )

    assert sorted(db.session.scalars(query)) == ids


def test_naive_datetimes_are_utc(any_app: Flask) -> None:
    task = ProcessingTask("t", finished_at=datetime(2026, 3, 29, 1, 30, 0, 500))
    task.save(commit=True)

    assert load_task(task.id).finished_at == datetime(
        2026, 3, 29, 1, 30, 0, 500, tzinfo=timezone.utc
    )


def test_far_future_timestamps(any_app: Flask) -> None:
    # MariaDB's TIMESTAMP would end in 2038.
    moment = datetime(2100, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc)
    task = ProcessingTask("t", finished_at=moment)
    task.save(commit=True)

    assert load_task(task.id).finished_at == moment
