"""Measure how much space the task tables and their indexes take per row.

Fills an empty database with generated tasks of a fixed shape, then prints the
rows, the bytes of table data and the bytes of indexes of each table, in total
and per row. The operations page of the documentation quotes its output.

    python docs/measure_sizes.py --tasks 50000
    python docs/measure_sizes.py --uri postgresql+psycopg://user:pw@host/db
    python docs/measure_sizes.py --uri 'mysql+pymysql://user:pw@host/db?charset=utf8mb4'

Each task has two steps, two result files, one link and one webhook
subscription, a log of ten lines (about 600 characters), parameters of about
200 characters and a small JSON store. The database given by ``--uri`` must hold
no task tables: the script creates them, and drops them at the end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import typing as t
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_qhana_tasks import QHAnaTasks

TABLES = ("ProcessingTask", "Step", "TaskFile", "TaskLink", "TaskUpdateSubscription")
CHUNK = 1000
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def rows_of(first: int, count: int) -> dict[str, list[dict[str, t.Any]]]:
    """Return the rows of ``count`` tasks with ids from ``first`` on."""
    rows: dict[str, list[dict[str, t.Any]]] = {name: [] for name in TABLES}

    for task_id in range(first, first + count):
        started = START + timedelta(seconds=task_id)
        log = "\n".join(
            f"{started.isoformat()} Step {n} of the computation finished; the"
            f" intermediate result has {task_id % 997} rows."
            for n in range(10)
        )
        rows["ProcessingTask"].append(
            {
                "id": task_id,
                "task_name": f"plugin-{task_id % 20}.process",
                "started_at": started,
                "finished_at": started + timedelta(minutes=3),
                "parameters": json.dumps(
                    {
                        "entities": f"https://data.example/files/{task_id}",
                        "attributes": ["size", "weight", "colour", "shape"],
                        "algorithm": "k-means",
                        "clusters": 5,
                        "seed": task_id,
                    }
                ),
                "data": {"entities_url": f"https://data.example/{task_id}"},
                "multi_step": True,
                "current_step": 1,
                "progress_value": 100.0,
                "progress_start": 0.0,
                "progress_target": 100.0,
                "progress_unit": "%",
                "task_status": "SUCCESS" if task_id % 10 else "FAILURE",
                "task_log": log,
            }
        )

        for number in range(2):
            base = f"https://plugins.example/plugin/{task_id}/step{number}"
            rows["Step"].append(
                {
                    "id": task_id,
                    "number": number,
                    "step_id": f"step-{number}",
                    "href": f"{base}/process",
                    "ui_href": f"{base}/ui",
                    "cleared": True,
                    "created_at": started,
                }
            )
            rows["TaskFile"].append(
                {
                    "task_id": task_id,
                    "security_tag": f"{task_id:032x}{number:032x}",
                    "storage_provider": "filesystem",
                    "file_name": f"result-{number}.json",
                    "file_storage_data": f"/srv/files/{task_id}/result-{number}.json",
                    "file_type": "entity/list" if number else "temp-file",
                    "mimetype": "application/json",
                    "created_at": started,
                }
            )

        rows["TaskLink"].append(
            {
                "task_id": task_id,
                "type": "data",
                "href": f"https://data.example/files/{task_id}",
            }
        )
        rows["TaskUpdateSubscription"].append(
            {
                "task_id": task_id,
                "webhook_href": "https://ui.example/webhooks/tasks",
                "task_href": f"https://plugins.example/tasks/{task_id}",
                "event_type": None,
            }
        )

    return rows


def sizes(connection: sa.Connection) -> dict[str, tuple[int, int]]:
    """Return the bytes of data and of indexes of each task table."""
    dialect = connection.dialect.name
    result = {}

    for name in TABLES:
        if dialect == "sqlite":
            query = sa.text(
                "SELECT coalesce(sum(CASE WHEN name = :t THEN pgsize END), 0),"
                " coalesce(sum(CASE WHEN name != :t THEN pgsize END), 0)"
                " FROM dbstat WHERE name = :t OR name IN"
                " (SELECT name FROM sqlite_schema WHERE type = 'index'"
                " AND tbl_name = :t)"
            )
        elif dialect == "postgresql":
            query = sa.text(
                "SELECT pg_table_size(quote_ident(:t)),"
                " pg_indexes_size(quote_ident(:t))"
            )
        else:
            query = sa.text(
                "SELECT data_length, index_length FROM information_schema.tables"
                " WHERE table_schema = database() AND table_name = :t"
            )

        data, index = connection.execute(query, {"t": name}).one()
        result[name] = (int(data), int(index))

    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50000)
    parser.add_argument(
        "--uri", help="an empty database; a new SQLite file if left out"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        uri = args.uri or f"sqlite:///{Path(folder) / 'sizes.sqlite'}"
        app = Flask(__name__, instance_path=folder)
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
        db = SQLAlchemy(app)
        QHAnaTasks(app)

        with app.app_context():
            db.create_all()
            tables = db.metadata.tables

            try:
                with db.engine.begin() as connection:
                    for first in range(1, args.tasks + 1, CHUNK):
                        count = min(CHUNK, args.tasks + 1 - first)

                        for name, rows in rows_of(first, count).items():
                            connection.execute(tables[name].insert(), rows)

                measure(db.engine)
            finally:
                db.drop_all()


def measure(engine: sa.Engine) -> None:
    """Update the database's statistics, then print the sizes per table."""
    dialect = engine.dialect.name

    quote = engine.dialect.identifier_preparer.quote

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in TABLES:
            if dialect == "postgresql":
                conn.execute(sa.text(f"VACUUM ANALYZE {quote(name)}"))
            elif dialect != "sqlite":
                conn.execute(sa.text(f"ANALYZE TABLE {quote(name)}"))

        counts = {
            name: conn.execute(
                sa.text(f"SELECT count(*) FROM {quote(name)}")
            ).scalar_one()
            for name in TABLES
        }
        measured = sizes(conn)

    print(f"{engine.dialect.name}, {counts['ProcessingTask']} tasks")
    print(
        f"{'table':<24}{'rows':>9}{'data MiB':>10}{'index MiB':>10}"
        f"{'data B/row':>12}{'index B/row':>12}"
    )
    total_data = total_index = 0

    for name in TABLES:
        data, index = measured[name]
        rows = counts[name]
        total_data += data
        total_index += index
        print(
            f"{name:<24}{rows:>9}{data / 2**20:>10.1f}{index / 2**20:>10.1f}"
            f"{data / rows:>12.0f}{index / rows:>12.0f}"
        )

    tasks = counts["ProcessingTask"]
    print(
        f"{'all, per task':<24}{'':>9}{total_data / 2**20:>10.1f}"
        f"{total_index / 2**20:>10.1f}{total_data / tasks:>12.0f}"
        f"{total_index / tasks:>12.0f}"
    )


if __name__ == "__main__":
    main()
