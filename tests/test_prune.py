from __future__ import annotations

import contextlib
import io
import json
import re
import typing as t
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import prune as prune_module
from flask_qhana_tasks import TaskFile
from flask_qhana_tasks import TaskLink
from flask_qhana_tasks.maintenance import UnknownStatusError
from flask_qhana_tasks.prune import count_prunable
from flask_qhana_tasks.prune import NoRetentionError
from flask_qhana_tasks.prune import prune_cutoff
from flask_qhana_tasks.prune import prune_tasks
from flask_qhana_tasks.prune import PruneError
from flask_qhana_tasks.prune import PruneReport
from flask_qhana_tasks.prune import select_prunable
from flask_qhana_tasks.signals import task_files_pruned

from .conftest import add_old_tasks
from .conftest import add_task
from .conftest import count_orphans
from .conftest import count_rows
from .conftest import db
from .conftest import refuse_deleting_links_of
from .conftest import remaining_ids

NOW = datetime.now(timezone.utc)


def test_config_defaults(app: Flask) -> None:
    assert app.config["QHANA_TASKS_RETENTION"] is None
    assert app.config["QHANA_TASKS_PRUNE_BATCH_SIZE"] == 1000
    assert tuple(app.config["QHANA_TASKS_EXTRA_STATUSES"]) == ()


def test_select_and_count_prunable(app: Flask) -> None:
    old = add_old_tasks(2)
    failed = add_old_tasks(1, task_status="FAILURE")
    stuck = add_task(started=timedelta(days=60), finished=None, task_status=None)
    add_task(children=True)
    cutoff = NOW - timedelta(days=30)

    def selected(**kwargs: t.Any) -> list[int]:
        query = select_prunable(cutoff, **kwargs).order_by(ProcessingTask.id)
        return list(db.session.scalars(query))

    assert selected() == [*old, *failed]
    assert selected(statuses=["failure"]) == failed
    assert selected(include_unfinished=True) == [*old, *failed, stuck]
    assert selected(statuses=["PENDING"], include_unfinished=True) == [stuck]
    assert count_prunable(select_prunable(cutoff)) == dict.fromkeys(count_rows(), 3)

    with pytest.raises(UnknownStatusError, match="'OK' is not a task status"):
        select_prunable(cutoff, statuses=["OK"])


def test_prune_tasks_reports_each_batch(app: Flask) -> None:
    ids = add_old_tasks(5)
    seen: list[tuple[int, int, list[int]]] = []

    def on_batch(report: PruneReport) -> None:
        seen.append((report.batches, report.tasks, remaining_ids()))

    started = datetime.now(timezone.utc)
    report = prune_tasks(older_than=timedelta(days=30), batch_size=2, on_batch=on_batch)

    assert seen == [(1, 2, ids[2:]), (2, 4, ids[4:]), (3, 5, [])]
    assert report.deleted == dict.fromkeys(count_rows(), 5)
    assert (report.batches, report.dry_run) == (3, False)
    assert (
        timedelta(0)
        <= report.before - (started - timedelta(days=30))
        < timedelta(seconds=5)
    )
    assert report.elapsed > 0


def test_dry_run_reports_without_deleting(app: Flask) -> None:
    add_old_tasks(3)
    before = count_rows()

    report = prune_tasks(before=NOW, dry_run=True)

    assert report.deleted == dict.fromkeys(before, 3)
    assert (report.tasks, report.batches, report.dry_run) == (3, 0, True)
    assert count_rows() == before


def test_files_are_signalled_after_each_commit(app: Flask) -> None:
    ids = add_old_tasks(3) + add_old_tasks(1)
    db.session.execute(sa.delete(TaskFile).where(TaskFile.task_id == ids[2]))
    db.session.commit()
    received: list[tuple[object, list[tuple[int | None, str]], int]] = []

    def receiver(sender: object, files: list[t.Any], **extra: t.Any) -> None:
        # A connection of its own sees only what was committed.
        with db.engine.connect() as connection:
            left = connection.execute(
                sa.select(sa.func.count()).select_from(TaskFile.__table__)
            )
            received.append(
                (
                    sender,
                    [(row.task_id, row.file_name) for row in files],
                    left.scalar_one(),
                )
            )

    with task_files_pruned.connected_to(receiver, app):
        prune_tasks(older_than=timedelta(days=30), batch_size=2)
        prune_tasks(older_than=timedelta(days=30), dry_run=True)

    assert received == [
        (app, [(ids[0], "old-0.csv"), (ids[1], "old-1.csv")], 1),
        # The third task has no file left; the fourth has one.
        (app, [(ids[3], "old-0.csv")], 0),
    ]


def test_a_failing_receiver_stops_the_prune(app: Flask) -> None:
    ids = add_old_tasks(4)

    def receiver(sender: object, **extra: t.Any) -> None:
        raise OSError("storage is offline")

    with (
        task_files_pruned.connected_to(receiver, app),
        pytest.raises(PruneError) as info,
    ):
        prune_tasks(older_than=timedelta(days=30), batch_size=2)

    assert str(info.value) == (
        "Batch 1 was deleted, but a receiver of 'task_files_pruned' raised OSError:"
        " storage is offline; the stored files of its tasks may remain."
    )
    assert (info.value.report.batches, info.value.report.tasks) == (1, 2)
    assert remaining_ids() == ids[2:]


@pytest.mark.usefixtures("without_cascade")
def test_a_database_error_rolls_back_its_batch_only(app: Flask) -> None:
    ids = add_old_tasks(6)
    refuse_deleting_links_of(ids[4])
    archive = io.StringIO()

    with pytest.raises(PruneError) as info:
        prune_tasks(older_than=timedelta(days=30), batch_size=2, archive=archive)

    # The driver's error class and wording around the message differ by database.
    assert re.fullmatch(
        r"Batch 3 failed and was rolled back: \w+: .*disk I/O error.*\.",
        str(info.value),
    )
    assert isinstance(info.value.__cause__, sa.exc.DBAPIError)
    assert info.value.report.batches == 2
    assert info.value.report.deleted == dict.fromkeys(count_rows(), 4)
    assert remaining_ids() == ids[4:]
    assert count_rows() == dict.fromkeys(count_rows(), 2)
    assert count_orphans() == 0
    # Each batch is archived before it is deleted, the failed one too.
    archived = [json.loads(line)["id"] for line in archive.getvalue().splitlines()]
    assert archived == ids


def test_a_batch_is_archived_a_few_tasks_at_a_time(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prune_module, "_ARCHIVE_CHUNK", 2)
    ids = add_old_tasks(5)
    archive = io.StringIO()

    report = prune_tasks(older_than=timedelta(days=30), archive=archive)

    records = [json.loads(line) for line in archive.getvalue().splitlines()]
    assert [record["id"] for record in records] == ids
    assert [len(record["steps"]) for record in records] == [1] * 5
    assert (report.batches, report.tasks) == (1, 5)


@pytest.mark.usefixtures("without_cascade")
def test_children_are_deleted_without_database_cascades(app: Flask) -> None:
    add_old_tasks(3)
    kept = add_task(children=True, steps=2)

    prune_tasks(older_than=timedelta(days=30), batch_size=2)

    assert remaining_ids() == [kept]
    assert count_orphans() == 0
    assert count_rows()["Step"] == 2


@contextlib.contextmanager
def after_first_read(change: sa.Executable) -> Iterator[list[bool]]:
    """Commit ``change`` on a connection of its own just after a prune read the
    ids of its first batch, before the prune's next statement; yield a list
    that holds ``True`` once it ran."""
    other = sa.create_engine(db.engine.url)
    state = {"read": False}
    done: list[bool] = []

    def hook(*args: t.Any) -> None:
        if done:
            return

        if not state["read"]:
            state["read"] = "LIMIT" in args[2]
            return

        with other.begin() as connection:
            connection.execute(change)

        done.append(True)

    sa.event.listen(db.engine, "before_cursor_execute", hook)

    try:
        yield done
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", hook)
        other.dispose()


def test_a_task_that_finishes_while_its_batch_is_read_is_kept(app: Flask) -> None:
    stuck = [
        add_task(started=timedelta(days=60), finished=None, task_status=None)
        for _ in range(3)
    ]
    finish = (
        sa.update(ProcessingTask)
        .where(ProcessingTask.id == stuck[1])
        .values(finished_at=NOW, task_status="SUCCESS")
    )

    with after_first_read(finish) as done:
        report = prune_tasks(older_than=timedelta(days=30), include_unfinished=True)

    assert done == [True]
    assert remaining_ids() == [stuck[1]]
    assert report.tasks == 2
    assert count_orphans() == 0


def test_a_link_added_while_its_batch_is_read_is_archived_and_deleted(
    app: Flask,
) -> None:
    ids = add_old_tasks(2)
    late = sa.insert(TaskLink).values(task_id=ids[0], type="late", href="https://l")
    archive = io.StringIO()

    with after_first_read(late) as done:
        report = prune_tasks(older_than=timedelta(days=30), archive=archive)

    assert done == [True]
    records = [json.loads(line) for line in archive.getvalue().splitlines()]
    assert [len(record["links"]) for record in records] == [2, 1]
    assert report.deleted["TaskLink"] == 3
    assert remaining_ids() == []
    assert count_orphans() == 0


@pytest.mark.usefixtures("without_cascade")
def test_a_batch_of_tasks_none_of_which_is_still_due(app: Flask) -> None:
    ids = add_old_tasks(3)
    reopen = (
        sa.update(ProcessingTask)
        .where(ProcessingTask.id.in_(ids[:2]))
        .values(finished_at=NOW)
    )

    with after_first_read(reopen) as done:
        report = prune_tasks(older_than=timedelta(days=30), batch_size=2)

    assert done == [True]
    assert remaining_ids() == ids[:2]
    assert (report.batches, report.tasks) == (1, 1)
    assert report.deleted == dict.fromkeys(count_rows(), 1)
    assert count_rows() == dict.fromkeys(count_rows(), 2)
    assert count_orphans() == 0


def test_prune_refuses_a_session_with_pending_changes(app: Flask) -> None:
    add_old_tasks(1)
    db.session.add(ProcessingTask("unsaved"))

    with pytest.raises(RuntimeError, match="changes that are not committed"):
        prune_tasks(older_than=timedelta(days=30))

    db.session.rollback()
    assert count_rows()["ProcessingTask"] == 1


@pytest.mark.parametrize(
    ("kwargs", "config", "error", "message"),
    [
        ({}, None, NoRetentionError, "No retention is given"),
        (
            {"older_than": timedelta(1), "before": NOW},
            None,
            ValueError,
            "Give 'older_than' or 'before', not both.",
        ),
        ({}, "a month", ValueError, "'a month' is not a duration"),
        ({}, timedelta(0), ValueError, "set it to a 'timedelta' longer than zero"),
    ],
)
def test_prune_cutoff_errors(
    app: Flask,
    kwargs: dict[str, t.Any],
    config: object,
    error: type[Exception],
    message: str,
) -> None:
    app.config["QHANA_TASKS_RETENTION"] = config

    with pytest.raises(error, match=message):
        prune_cutoff(**kwargs)


def test_prune_cutoff(app: Flask) -> None:
    app.config["QHANA_TASKS_RETENTION"] = "2w"

    assert prune_cutoff(now=NOW) == NOW - timedelta(weeks=2)
    assert prune_cutoff(older_than=timedelta(days=1), now=NOW) == NOW - timedelta(1)
    assert prune_cutoff(before=NOW) == NOW


def test_prune_tasks_checks_the_batch_size(app: Flask) -> None:
    with pytest.raises(ValueError, match="at least 1, not 0"):
        prune_tasks(before=NOW, batch_size=0)


def test_a_batch_may_hold_more_tasks_than_a_statement_takes_parameters(
    app: Flask,
) -> None:
    # psycopg sends at most 65535 parameters with a statement, and SQLite
    # builds may take as few as 32766.
    count = 70_000
    finished = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = [{"task_name": f"bulk-{n}", "finished_at": finished} for n in range(count)]
    db.session.execute(sa.insert(ProcessingTask), rows)
    add_task(children=True)
    db.session.commit()

    report = prune_tasks(before=finished + timedelta(days=1), batch_size=count)

    assert (report.tasks, report.batches) == (count, 1)
    assert count_rows()["ProcessingTask"] == 1
