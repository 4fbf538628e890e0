"""The benchmark script runs from a checkout, checks its own results, and
cleans up after itself.

Its figures are not asserted: they depend on the machine. What is asserted is
that a quick run completes, prunes the same rows as its raw-SQL floor, and
prints every measurement.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from .conftest import BACKEND
from .conftest import server_uri

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "run.py"

#: A quick run made quicker still: the list sizes and the hot path shrunk.
QUICK = ("--quick", "--list-sizes", "100,1000", "--hot-path-tasks", "3")


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def table_of(output: str) -> dict[str, list[str]]:
    """Return the rows of the table the script prints, by their measure."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("measure "))
    widths = [len(dashes) for dashes in lines[start + 1].split("  ")]
    rows: dict[str, list[str]] = {}

    for line in lines[start + 2 :]:
        cells = []
        position = 0

        for width in widths:
            cells.append(line[position : position + width].strip())
            position += width + 2

        rows[cells[0]] = cells[1:]

    return rows


def assert_every_measurement(output: str) -> None:
    rows = table_of(output)

    assert rows["prune: tasks deleted"] == ["2000", "2000", ""]
    assert rows["prune: rows deleted"] == ["16000", "16000", ""]

    for batch_size in (1000, 10000):
        label = f"prune, batches of {batch_size}: seconds, best of 1"
        package, floor, ratio = rows[label]
        assert float(package) > 0 and float(floor) > 0
        assert re.fullmatch(r"\d+\.\d\dx", ratio)

    for size in (100, 1000):
        assert float(rows[f"list --status SUCCESS at {size} (ms)"][0]) > 0
        assert float(rows[f"show at {size} (ms)"][0]) > 0

    package, naive, _ = rows["hot path: tasks per second"]
    assert int(package) > 0 and int(naive) > 0


@pytest.mark.skipif(BACKEND != "sqlite", reason="runs with the SQLite suite")
def test_a_quick_run_on_sqlite() -> None:
    result = run_benchmark(*QUICK)

    assert result.returncode == 0, result.stderr
    assert "Database:   SQLite " in result.stdout
    assert_every_measurement(result.stdout)


@pytest.mark.skipif(BACKEND != "postgresql", reason="runs with the PostgreSQL suite")
def test_a_quick_run_on_postgresql_makes_its_database_and_drops_its_copies() -> None:
    url = sa.make_url(server_uri("postgresql"))
    name = f"{url.database}_bench"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def databases() -> list[str]:
        with admin.connect() as connection:
            names = connection.scalars(sa.text("SELECT datname FROM pg_database"))
            return sorted(n for n in names if n.startswith(name))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))

    drop()

    try:
        uri = url.set(database=name).render_as_string(hide_password=False)
        result = run_benchmark(*QUICK, "--uri", uri)

        assert result.returncode == 0, result.stderr
        assert "Database:   PostgreSQL " in result.stdout
        assert_every_measurement(result.stdout)
        assert databases() == [name]
    finally:
        drop()
        admin.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--uri", "sqlite:///t.sqlite"), "--uri: must name a PostgreSQL database"),
        (("--uri", "no-uri"), "--uri: not a database URI: 'no-uri'"),
        (("--skip", "prune,lists"), "--skip: unknown measurement 'lists'"),
        (("--batch-sizes", "1000,x"), "--batch-sizes: 'x' is not a positive number"),
        (("--list-sizes", "0"), "--list-sizes: '0' is not a positive number"),
        (("--tasks", "0"), "--tasks: '0' is not a positive number"),
        (("--rounds", "-1"), "--rounds: '-1' is not a positive number"),
    ],
)
def test_bad_arguments_are_refused(args: tuple[str, ...], message: str) -> None:
    result = run_benchmark(*args)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
