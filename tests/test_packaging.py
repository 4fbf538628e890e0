"""The built wheel, installed in a fresh virtual environment, serves an application."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from .test_migrations import run_flask

ROOT = Path(__file__).parent.parent


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, ROOT, cwd=dist)
    (path,) = dist.glob("flask_qhana_tasks-*.whl")
    return path


def test_wheel_ships_the_migrations_and_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())

    assert {
        "flask_qhana_tasks/py.typed",
        "flask_qhana_tasks/migrations/__init__.py",
        "flask_qhana_tasks/migrations/versions/0001_baseline.py",
        "flask_qhana_tasks/migrations/versions/0002_indexes_and_cascades.py",
    } <= names
    assert not any(name.startswith(("tests/", "examples/")) for name in names)


def test_installed_wheel_serves_a_flask_migrate_app(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)

    location = run(
        python,
        "-c",
        "import flask_qhana_tasks; print(flask_qhana_tasks.__file__)",
        cwd=tmp_path,
    )
    assert location.stdout.startswith(str(env_dir))

    for args in (("db", "init"), ("db", "upgrade", "heads"), ("db", "check")):
        result = run_flask(tmp_path, str(python), *args)
        assert result.returncode == 0, result.stdout + result.stderr

    assert "No new upgrade operations detected." in result.stdout
