"""Several processes write to the same tasks at once, on every database."""

from __future__ import annotations

import multiprocessing
import typing as t
from datetime import datetime
from datetime import timezone
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks.prune import prune_tasks

from .conftest import count_orphans
from .conftest import db
from .stress_workers import change_tasks
from .stress_workers import record_tasks

WORKERS = 4
ROUNDS = 15

#: The writers' old tasks finished in 2020: a prune before this takes them all.
CUTOFF = datetime(2021, 1, 1, tzinfo=timezone.utc)

_spawn = multiprocessing.get_context("spawn")


def run_workers(
    target: t.Callable[..., None],
    argument_lists: list[tuple[t.Any, ...]],
    tmp_path: Path,
) -> None:
    """Run one process per argument list at once; fail with any worker's error."""
    errors = [tmp_path / f"worker-{n}.err" for n in range(len(argument_lists))]
    processes = [
        _spawn.Process(target=target, args=(*arguments, error))
        for arguments, error in zip(argument_lists, errors, strict=True)
    ]

    for process in processes:
        process.start()

    for process in processes:
        process.join(timeout=300)

    failures = [error.read_text() for error in errors if error.exists()]
    assert not failures, failures[0]
    assert [process.exitcode for process in processes] == [0] * len(processes)


def test_concurrent_workers_lose_nothing(backend_app: Flask, tmp_path: Path) -> None:
    uri = str(db.engine.url.render_as_string(hide_password=False))
    shared = ProcessingTask(
        "shared", data={"count": 0, "entries": []}, progress_value=0
    )
    shared.save()
    own = [ProcessingTask(f"own-{n}") for n in range(WORKERS)]

    for task in own:
        task.save()

    db.session.commit()
    shared_id, own_ids = shared.id, [task.id for task in own]
    # End this session's transaction: under MariaDB's REPEATABLE READ it would
    # go on showing the rows as they were before the workers ran.
    db.session.remove()

    run_workers(
        change_tasks,
        [(uri, n, shared_id, own_ids[n], ROUNDS) for n in range(WORKERS)],
        tmp_path,
    )

    loaded = ProcessingTask.get_by_id(shared_id)
    assert loaded is not None
    expected = sorted(
        f"worker {w} entry {n}" for w in range(WORKERS) for n in range(ROUNDS)
    )
    assert sorted(loaded.task_log.split("\n")) == expected
    assert loaded.progress_value == WORKERS * ROUNDS
    assert loaded.data["count"] == WORKERS * ROUNDS
    assert sorted(loaded.data["entries"]) == sorted(
        f"{w}.{n}" for w in range(WORKERS) for n in range(ROUNDS)
    )

    for task_id in own_ids:
        own_task = ProcessingTask.get_by_id(task_id)
        assert own_task is not None
        assert [s.number for s in own_task.steps] == list(range(ROUNDS))
        assert all(s.cleared for s in own_task.steps)
        assert own_task.current_step == ROUNDS - 1


def test_prune_while_workers_write(backend_app: Flask, tmp_path: Path) -> None:
    uri = str(db.engine.url.render_as_string(hide_password=False))
    per_worker = 30
    writers = [
        _spawn.Process(
            target=record_tasks, args=(uri, n, per_worker, tmp_path / f"rec-{n}.err")
        )
        for n in range(WORKERS - 1)
    ]

    for process in writers:
        process.start()

    # Prune over and over while the writers run, then once more after them.
    while any(process.is_alive() for process in writers):
        prune_tasks(before=CUTOFF, batch_size=5)

    for process in writers:
        process.join(timeout=300)

    errors = [p.read_text() for p in tmp_path.glob("rec-*.err")]
    assert not errors, errors[0]
    assert [process.exitcode for process in writers] == [0] * len(writers)
    prune_tasks(before=CUTOFF, batch_size=5)

    names = db.session.scalars(sa.select(ProcessingTask.task_name)).all()
    unfinished = db.session.scalars(sa.select(ProcessingTask)).all()
    assert all(len(task.outputs) == 1 and len(task.steps) == 1 for task in unfinished)
    assert sorted(names) == sorted(
        f"unfinished-{w}-{n}"
        for w in range(WORKERS - 1)
        for n in range(per_worker)
        if n % 2
    )
    assert count_orphans() == 0
