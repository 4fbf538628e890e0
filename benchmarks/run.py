"""Measure prune, listing and the worker hot path against simple baselines.

Run it from a checkout, after ``make test`` has created the virtual environment::

    .venv/bin/python benchmarks/run.py            # SQLite files in a temp dir
    .venv/bin/python benchmarks/run.py --quick    # a smoke run of a few seconds
    .venv/bin/python benchmarks/run.py --uri postgresql+psycopg://u:p@host/db

Three measurements run side by side, so that the noise of the machine touches
the package and its baseline alike:

- prune: :func:`flask_qhana_tasks.prune.prune_tasks` against hand-written
  ``DELETE`` statements of the same rows, each on its own identical copy of the
  database and in a process of its own, whose peak memory is reported;
- list and show: :func:`~flask_qhana_tasks.maintenance.list_tasks` with a status
  filter and :func:`~flask_qhana_tasks.maintenance.task_details`, on a small and
  a large table;
- hot path: what a worker does with one task, through the package's methods and
  through plain attribute writes.

On PostgreSQL the database named in ``--uri`` is created if it does not exist,
then emptied and filled; the copies are databases named after it with
``_prune``, ``_floor`` and ``_list_N`` added, made with ``CREATE DATABASE ...
TEMPLATE`` and dropped at the end. The user needs the ``CREATEDB`` privilege.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
import typing as t
from collections.abc import Callable
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_qhana_tasks import ProcessingTask
from flask_qhana_tasks import QHAnaTasks
from flask_qhana_tasks import Step
from flask_qhana_tasks.maintenance import list_tasks
from flask_qhana_tasks.maintenance import TABLES
from flask_qhana_tasks.maintenance import task_details
from flask_qhana_tasks.prune import prune_tasks
from flask_qhana_tasks.types import utcnow

db = SQLAlchemy()

#: Old tasks finished on this day; the prune deletes those before :data:`CUTOFF`.
OLD = datetime(2020, 6, 1, tzinfo=timezone.utc)
CUTOFF = datetime(2021, 1, 1, tzinfo=timezone.utc)

#: The rows inserted per statement while the databases are built.
CHUNK = 20_000

#: The child rows of each task in the prune database, by table.
CHILDREN_PER_TASK = {
    "Step": 3,
    "TaskFile": 2,
    "TaskLink": 1,
    "TaskUpdateSubscription": 1,
}

#: The statuses of recent finished tasks, in turn.
STATUSES = ("SUCCESS", "SUCCESS", "FAILURE")


def make_app(uri: str) -> Flask:
    """Return an application with the extension, on the database at ``uri``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    db.init_app(app)
    QHAnaTasks(app)
    return app


# Building the databases


def task_rows(first: int, last: int, now: datetime) -> list[dict[str, t.Any]]:
    """Return the task rows with ids ``first`` to ``last``.

    Every other task finished long ago and is due for pruning; of the rest,
    half still run and half finished in the last three days.
    """
    rows = []

    for i in range(first, last + 1):
        if i % 2 == 0:
            started = OLD + timedelta(seconds=i)
            finished: datetime | None = started + timedelta(minutes=1)
            status: str | None = STATUSES[i % 3]
        else:
            started = now - timedelta(days=3, seconds=-i)
            finished = None if i % 4 == 1 else started + timedelta(minutes=1)
            status = None if finished is None else STATUSES[i % 3]

        rows.append(
            {
                "id": i,
                "task_name": f"plugin-{i % 20}",
                "started_at": started,
                "finished_at": finished,
                "parameters": '{"rows": 1000}',
                "data": {},
                "multi_step": True,
                "current_step": 2,
                "progress_value": 100.0 if finished else 40.0,
                "progress_start": 0.0,
                "progress_target": 100.0,
                "progress_unit": "%",
                "task_status": status,
                "task_log": "Started.\nRead 1000 rows.\nDone.",
            }
        )

    return rows


def child_rows(table: str, first: int, last: int) -> list[dict[str, t.Any]]:
    """Return the rows of a child table for the tasks ``first`` to ``last``."""
    ids = range(first, last + 1)

    if table == "Step":
        return [
            {
                "id": i,
                "number": n,
                "step_id": f"step-{n}",
                "href": f"https://plugin.example/tasks/{i}/step-{n}",
                "ui_href": f"https://plugin.example/tasks/{i}/step-{n}/ui",
                "cleared": True,
            }
            for i in ids
            for n in range(3)
        ]

    if table == "TaskFile":
        return [
            {
                "task_id": i,
                "security_tag": "0123456789abcdef",
                "storage_provider": "filesystem",
                "file_name": f"result-{i}-{n}.json",
                "file_storage_data": f"/srv/files/{i}/{n}",
                "file_type": "entity/list",
                "mimetype": "application/json",
                "created_at": OLD,
            }
            for i in ids
            for n in range(2)
        ]

    if table == "TaskLink":
        return [
            {"task_id": i, "type": "dashboard", "href": f"https://ui.example/{i}"}
            for i in ids
        ]

    return [
        {
            "task_id": i,
            "webhook_href": "https://backend.example/hooks",
            "task_href": f"https://plugin.example/tasks/{i}",
            "event_type": None,
        }
        for i in ids
    ]


def build(uri: str, tasks: int, children: tuple[str, ...]) -> None:
    """Create the tables at ``uri`` afresh and fill them with ``tasks`` tasks.

    :param children: the child tables to fill, as :data:`CHILDREN_PER_TASK`
        says.
    """
    app = make_app(uri)
    now = utcnow()

    with app.app_context():
        db.drop_all()
        db.create_all()
        tables = db.metadata.tables

        with db.engine.begin() as connection:
            for first in range(1, tasks + 1, CHUNK):
                last = min(first + CHUNK - 1, tasks)
                rows = task_rows(first, last, now)
                connection.execute(sa.insert(tables["ProcessingTask"]), rows)

                for name in children:
                    rows = child_rows(name, first, last)
                    connection.execute(sa.insert(tables[name]), rows)

            if connection.dialect.name == "postgresql":
                # Rows inserted with explicit ids leave the sequence behind.
                connection.execute(
                    sa.text(
                        "SELECT setval(pg_get_serial_sequence('\"ProcessingTask\"',"
                        " 'id'), :last)"
                    ),
                    {"last": tasks},
                )

        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.execute(sa.text("VACUUM ANALYZE"))

        db.engine.dispose()


class Databases:
    """Makes identical copies of one built database, and removes them."""

    def __init__(self, uri: str | None, workdir: Path) -> None:
        self.uri = uri
        self.workdir = workdir
        self.made: list[str] = []

    @property
    def is_sqlite(self) -> bool:
        return self.uri is None

    def source(self, name: str) -> str:
        """Return the URI of the database the copies named ``name`` start from."""
        if self.uri is None:
            return f"sqlite:///{self.workdir / name}.sqlite"

        return self.uri

    def fresh(self, name: str) -> str:
        """Return the URI of a new, empty database called ``name``."""
        if self.uri is None:
            return self.source(name)

        return self._create(name, "template0")

    def copy(self, source: str, name: str) -> str:
        """Copy the database at ``source`` to one called ``name``; return its URI."""
        if self.uri is None:
            target = self.workdir / f"{name}.sqlite"
            shutil.copyfile(sa.make_url(source).database or "", target)
            return f"sqlite:///{target}"

        return self._create(name, sa.make_url(source).database or "")

    def create_missing(self) -> None:
        """Create the server database of ``--uri`` if it does not exist."""
        if self.uri is None:
            return

        database = sa.make_url(self.uri).database

        with self._admin() as connection:
            exists = connection.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": database},
            )

            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))

    def _create(self, name: str, template: str) -> str:
        """Create the server database ``name`` from ``template``; return its URI."""
        url = sa.make_url(self.uri or "")
        database = f"{url.database}_{name}"

        with self._admin() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
            connection.execute(
                sa.text(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
            )

        self.made.append(database)
        return url.set(database=database).render_as_string(hide_password=False)

    def drop(self, uri: str) -> None:
        """Remove the copy at ``uri``."""
        database = sa.make_url(uri).database or ""

        if self.uri is None:
            Path(database).unlink()
            return

        with self._admin() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))

        self.made.remove(database)

    def remove(self) -> None:
        """Drop the server databases this object made."""
        if self.uri is None or not self.made:
            return

        with self._admin() as connection:
            for database in self.made:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))

        self.made.clear()

    @contextlib.contextmanager
    def _admin(self) -> Iterator[sa.Connection]:
        """Connect to the server's ``postgres`` database, outside transactions,
        as ``CREATE DATABASE`` and ``DROP DATABASE`` need."""
        url = sa.make_url(self.uri or "").set(database="postgres")
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")

        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()


def row_counts(uri: str) -> dict[str, int]:
    """Return the number of rows in each task table."""
    engine = sa.create_engine(uri)

    with engine.connect() as connection:
        counts = {
            name: connection.scalar(sa.text(f'SELECT count(*) FROM "{name}"')) or 0
            for name in TABLES
        }

    engine.dispose()
    return counts


# Prune


#: The hand-written deletes of the floor, children first.
FLOOR_STATEMENTS = [
    *(
        f'DELETE FROM "{name}" WHERE {column} IN (SELECT id FROM "ProcessingTask"'
        " WHERE finished_at IS NOT NULL AND finished_at < :cutoff)"
        for name, column in (
            ("Step", "id"),
            ("TaskFile", "task_id"),
            ("TaskLink", "task_id"),
            ("TaskUpdateSubscription", "task_id"),
        )
    ),
    'DELETE FROM "ProcessingTask" WHERE finished_at IS NOT NULL'
    " AND finished_at < :cutoff",
]


class PruneRun(t.NamedTuple):
    """What one prune process measured."""

    #: The seconds the deletion took.
    seconds: float

    #: The tasks deleted.
    tasks: int

    #: The resident memory of the process before the deletion, in MiB.
    start_mib: float

    #: The peak resident memory of the process, in MiB.
    peak_mib: float


def memory_mib() -> tuple[float, float]:
    """Return the current and the peak resident memory of this process, in MiB.

    ``/proc/self/status`` is read where there is one: unlike ``ru_maxrss``, its
    peak starts afresh in a new program, and does not include the memory of the
    parent that started it.
    """
    status = Path("/proc/self/status")

    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        return (
            int(fields["VmRSS"].split()[0]) / 1024,
            int(fields["VmHWM"].split()[0]) / 1024,
        )

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak, peak


def run_package_prune(uri: str, batch_size: int) -> PruneRun:
    """Prune with the package, in batches of ``batch_size`` tasks."""
    app = make_app(uri)

    with app.app_context():
        db.session.execute(sa.select(1))
        start_mib = memory_mib()[0]
        started = time.perf_counter()
        report = prune_tasks(before=CUTOFF, batch_size=batch_size)
        elapsed = time.perf_counter() - started
        db.engine.dispose()

    return PruneRun(elapsed, report.tasks, start_mib, memory_mib()[1])


def run_floor_prune(uri: str, batch_size: int) -> PruneRun:
    """Delete the same rows with hand-written SQL in one transaction."""
    app = make_app(uri)

    with app.app_context():
        # The cutoff is bound with the column's type, so that it is compared
        # with the stored values as the package stores them.
        cutoff_type = db.metadata.tables["ProcessingTask"].c.finished_at.type

        with db.engine.connect() as connection:
            connection.execute(sa.select(1))
            connection.rollback()
            start_mib = memory_mib()[0]
            started = time.perf_counter()

            with connection.begin():
                for text in FLOOR_STATEMENTS:
                    statement = sa.text(text).bindparams(
                        sa.bindparam("cutoff", CUTOFF, type_=cutoff_type)
                    )
                    deleted = connection.execute(statement).rowcount

            elapsed = time.perf_counter() - started

        db.engine.dispose()

    return PruneRun(elapsed, deleted, start_mib, memory_mib()[1])


def in_child(
    function: Callable[[str, int], PruneRun], uri: str, batch_size: int
) -> PruneRun:
    """Run ``function`` in a fresh process, so that its memory is its own."""
    context = multiprocessing.get_context("spawn")

    with context.Pool(1) as pool:
        return pool.apply(function, (uri, batch_size))


def best_of(runs: list[PruneRun]) -> PruneRun:
    """Return the fastest run, with the highest peak memory of them all."""
    fastest = min(runs, key=lambda run: run.seconds)
    peak = max(run.peak_mib for run in runs)
    return fastest._replace(peak_mib=peak)


def bench_prune(
    databases: Databases,
    due: int,
    batch_sizes: list[int],
    rounds: int,
    rows: list[list[str]],
) -> None:
    tasks = 2 * due
    print(f"Building the prune database: {tasks} tasks, {due} due ...", flush=True)
    started = time.perf_counter()
    source = databases.source("prune_source")
    build(source, tasks, tuple(CHILDREN_PER_TASK))
    print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    before = row_counts(source)
    after: dict[str, int] | None = None
    floors: list[PruneRun] = []
    packages: dict[int, list[PruneRun]] = {size: [] for size in batch_sizes}

    # Each round prunes a fresh copy with each contender in turn, so that a
    # slow spell of the machine does not fall on one contender alone.
    for number in range(1, rounds + 1):
        print(f"Pruning, round {number} of {rounds} ...", flush=True)
        uri = databases.copy(source, "floor")
        floors.append(in_child(run_floor_prune, uri, 0))
        after = row_counts(uri)
        databases.drop(uri)

        for size in batch_sizes:
            uri = databases.copy(source, f"prune_{size}")
            run = in_child(run_package_prune, uri, size)

            if row_counts(uri) != after or run.tasks != floors[-1].tasks:
                raise SystemExit(
                    f"The prune in batches of {size} and the raw SQL left different"
                    f" rows: {row_counts(uri)} and {after}."
                )

            databases.drop(uri)
            packages[size].append(run)

    assert after is not None
    floor = best_of(floors)
    deleted_rows = sum(before.values()) - sum(after.values())
    rows.append(["prune: tasks deleted", f"{floor.tasks}", f"{floor.tasks}", ""])
    rows.append(["prune: rows deleted", f"{deleted_rows}", f"{deleted_rows}", ""])

    for size in batch_sizes:
        run = best_of(packages[size])
        label = f"prune, batches of {size}"
        rows.append(
            [
                f"{label}: seconds, best of {rounds}",
                f"{run.seconds:.2f}",
                f"{floor.seconds:.2f}",
                f"{run.seconds / floor.seconds:.2f}x",
            ]
        )
        rows.append(
            [
                f"{label}: rows per second",
                f"{deleted_rows / run.seconds:,.0f}",
                f"{deleted_rows / floor.seconds:,.0f}",
                "",
            ]
        )
        rows.append(
            [
                f"{label}: memory before/peak (MiB)",
                f"{run.start_mib:.0f}/{run.peak_mib:.0f}",
                f"{floor.start_mib:.0f}/{floor.peak_mib:.0f}",
                "",
            ]
        )


# List and show


def median_ms(action: Callable[[], object], runs: int) -> float:
    """Return the median milliseconds of ``runs`` calls, after two to warm up."""
    action()
    action()
    times = []

    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)

    return statistics.median(times) * 1000


def measure_listing(uri: str, tasks: int, runs: int) -> tuple[float, float]:
    """Return the median milliseconds of a filtered list and of a show."""
    app = make_app(uri)
    ids: Iterator[int] = iter(range(7, tasks, max(1, tasks // (runs + 3))))

    with app.app_context():
        list_ms = median_ms(lambda: list_tasks(statuses=["SUCCESS"], limit=50), runs)
        show_ms = median_ms(lambda: task_details(next(ids)), runs)
        db.session.remove()
        db.engine.dispose()

    return list_ms, show_ms


def bench_listing(
    databases: Databases, sizes: list[int], runs: int, rows: list[list[str]]
) -> None:
    measured = []

    for size in sizes:
        print(f"Building the listing database: {size} tasks ...", flush=True)
        started = time.perf_counter()
        uri = databases.fresh(f"list_{size}")
        build(uri, size, ("Step",))
        print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
        measured.append((size, *measure_listing(uri, size, runs)))

    labels = ["list --status SUCCESS at {} (ms)", "show at {} (ms)"]

    for column, label in enumerate(labels, start=1):
        first = measured[0][column]

        for size, *values in measured:
            value = values[column - 1]
            growth = f"{value / first:.2f}x" if size != measured[0][0] else ""
            rows.append([label.format(size), f"{value:.2f}", "", growth])


# Hot path

HREF = "https://plugin.example/step"
UI_HREF = "https://plugin.example/step/ui"


def package_hot_path() -> None:
    """One task through the package's methods."""
    task = ProcessingTask(task_name="hot-path", parameters="{}")
    task.save(commit=True)

    for n in range(3):
        task.add_next_step(HREF, UI_HREF, f"step-{n}", commit=True)
        task.clear_previous_step(commit=True)

    for n in range(10):
        task.add_task_log_entry(f"Processed part {n}.", commit=True)

    task.set_progress(100.0, commit=True)
    task.task_status = "SUCCESS"
    task.finished_at = utcnow()
    task.save(commit=True)


def naive_hot_path() -> None:
    """The same task with plain attribute writes, committed at the same points."""
    session = db.session
    task = ProcessingTask(task_name="hot-path", parameters="{}")
    session.add(task)
    session.commit()

    for n in range(3):
        step = Step(id=task.id, step_id=f"step-{n}", href=HREF, ui_href=UI_HREF)
        task.multi_step = True
        task.steps.append(step)
        task.current_step = step.number
        session.commit()
        task.steps[-1].cleared = True
        session.commit()

    for n in range(10):
        entry = f"Processed part {n}."
        task.task_log = f"{task.task_log}\n{entry}" if task.task_log else entry
        session.commit()

    task.progress_value = 100.0
    session.commit()
    task.task_status = "SUCCESS"
    task.finished_at = utcnow()
    session.commit()


#: The turns each hot path takes, alternating with the other.
HOT_PATH_TURNS = 10


def hot_path_rates(uri: str, count: int) -> tuple[float, float]:
    """Run ``count`` tasks through each hot path, in turns of a tenth of them
    that alternate between the two, so that a slow spell of the machine
    falls on both alike; return the tasks per second of each."""
    paths = (package_hot_path, naive_hot_path)
    elapsed = [0.0, 0.0]
    app = make_app(uri)

    with app.app_context():
        db.drop_all()
        db.create_all()

        for path in paths:
            path()

        for turn in range(HOT_PATH_TURNS):
            tasks = (
                count * (turn + 1) // HOT_PATH_TURNS - count * turn // HOT_PATH_TURNS
            )

            for index, path in enumerate(paths):
                started = time.perf_counter()

                for _ in range(tasks):
                    path()

                elapsed[index] += time.perf_counter() - started

        db.session.remove()
        db.drop_all()
        db.engine.dispose()

    return count / elapsed[0], count / elapsed[1]


def bench_hot_path(databases: Databases, count: int, rows: list[list[str]]) -> None:
    print(f"Running the hot path: {count} tasks each way ...", flush=True)
    package, naive = hot_path_rates(databases.fresh("hot_path"), count)
    rows.append(
        [
            "hot path: tasks per second",
            f"{package:.0f}",
            f"{naive:.0f}",
            f"{package / naive:.2f}x",
        ]
    )


# Report


def machine(uri: str | None) -> list[str]:
    """Describe the machine, the software and the database."""
    cpu = platform.processor() or "unknown CPU"
    memory = "unknown"

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass

    if uri is None:
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    else:
        engine = sa.create_engine(uri)

        with engine.connect() as connection:
            database = str(connection.scalar(sa.text("SELECT version()")))

        engine.dispose()

    return [
        f"CPU:        {cpu}, {os.cpu_count()} logical cores",
        f"Memory:     {memory}",
        f"System:     {platform.platform()}",
        f"Python:     {platform.python_version()}",
        f"SQLAlchemy: {sa.__version__}",
        f"Database:   {database}",
    ]


def print_table(rows: list[list[str]]) -> None:
    header = ["measure", "package", "baseline", "ratio"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    for row in [header, ["-" * w for w in widths], *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip())


#: The measurements ``--skip`` can leave out.
MEASUREMENTS = ("prune", "list", "hot-path")

#: The defaults of the options that ``--quick`` shrinks: normal, then quick.
SCALED_DEFAULTS = {
    "tasks": (200_000, 2000),
    "list_sizes": ([10_000, 1_000_000], [1000, 10_000]),
    "hot_path_tasks": (300, 20),
    "runs": (50, 10),
    "rounds": (3, 1),
}


def positive(text: str) -> int:
    """Parse a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0

    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number.")

    return number


def positive_list(text: str) -> list[int]:
    """Parse comma-separated whole numbers of at least 1."""
    return [positive(item.strip()) for item in text.split(",")]


def measurements(text: str) -> set[str]:
    """Parse comma-separated names of measurements."""
    names = {name.strip() for name in text.split(",") if name.strip()}

    for name in sorted(names):
        if name not in MEASUREMENTS:
            raise argparse.ArgumentTypeError(
                f"unknown measurement {name!r}; use {', '.join(MEASUREMENTS)}."
            )

    return names


def postgresql_uri(text: str) -> str:
    """Check that ``text`` is the SQLAlchemy URI of a PostgreSQL database."""
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError:
        raise argparse.ArgumentTypeError(f"not a database URI: {text!r}.") from None

    if url.get_backend_name() != "postgresql" or not url.database:
        raise argparse.ArgumentTypeError(
            "must name a PostgreSQL database, such as"
            " postgresql+psycopg://user:password@127.0.0.1:5432/qhana_tasks_bench;"
            " without it the benchmark runs on SQLite."
        )

    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--uri",
        type=postgresql_uri,
        help="a PostgreSQL URI of a database to fill, created if missing;"
        " default: SQLite files in a temporary directory.",
    )
    parser.add_argument(
        "--tasks",
        type=positive,
        help="the tasks the prune deletes; the database holds as many more that"
        " stay (default 200000).",
    )
    parser.add_argument(
        "--list-sizes",
        type=positive_list,
        help="the task counts to list and show on, comma-separated"
        " (default 10000,1000000).",
    )
    parser.add_argument(
        "--hot-path-tasks",
        type=positive,
        help="the tasks to run through each hot path (default 300).",
    )
    parser.add_argument(
        "--batch-sizes",
        type=positive_list,
        default=[1000, 10_000],
        help="the batch sizes of the package's prune, comma-separated; each runs"
        " on a copy of its own (default 1000,10000; 1000 is the package's"
        " default).",
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        help="the times each prune runs, each on a fresh copy; the fastest"
        " counts (default 3).",
    )
    parser.add_argument(
        "--runs",
        type=positive,
        help="the timed runs of each list and show (default 50).",
    )
    parser.add_argument(
        "--skip",
        type=measurements,
        default=set(),
        help="measurements to leave out, comma-separated: prune, list, hot-path.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of a few seconds: unless given otherwise, 2000 due"
        " tasks pruned in 1 round, lists of 1000 and 10000 timed 10 times,"
        " 20 hot-path tasks.",
    )
    args = parser.parse_args(argv)

    for name, defaults in SCALED_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, defaults[args.quick])

    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows: list[list[str]] = []

    with tempfile.TemporaryDirectory(prefix="qhana-tasks-bench-") as workdir:
        databases = Databases(args.uri, Path(workdir))
        databases.create_missing()

        try:
            if "prune" not in args.skip:
                bench_prune(databases, args.tasks, args.batch_sizes, args.rounds, rows)

            if "list" not in args.skip:
                bench_listing(databases, args.list_sizes, args.runs, rows)

            if "hot-path" not in args.skip:
                bench_hot_path(databases, args.hot_path_tasks, rows)
        finally:
            databases.remove()

    print()
    print("\n".join(machine(args.uri)))
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
