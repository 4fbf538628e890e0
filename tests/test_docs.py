"""The documentation's commands run, and print what the pages show."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import click
import pytest
from flask import Flask

from flask_qhana_tasks.cli import tasks_cli
from flask_qhana_tasks.maintenance import accepted_statuses
from flask_qhana_tasks.prune import configured_batch_size
from flask_qhana_tasks.prune import configured_retention

from .conftest import db
from .conftest import make_app

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"

#: A time as the command line prints it, which differs from run to run.
_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

#: A duration as the command line prints it, like ``2s`` or ``3d 4h``.
_DURATION = re.compile(r"(?<!\S)-?\d+[dhms](?: \d+[hms])?(?!\S)")

#: How long a command took, like ``(0.1s)``.
_SECONDS = re.compile(r"\(\d+\.\ds\)")

#: The folder a path to the example's instance folder starts with.
_CHECKOUT = re.compile(r"\S*(?=/examples/instance/)")


def transcripts_of(page: str) -> list[Path]:
    """Return the transcripts a page includes, in the order it shows them."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = re.findall(r"^\.\. literalinclude:: (\S+\.console)$", text, re.MULTILINE)
    return [DOCS / name for name in found]


def read_transcript(path: Path) -> list[tuple[str, str]]:
    """Return each command of a transcript with the output shown after it."""
    commands: list[tuple[str, list[str]]] = []

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            assert commands, f"{path.name} must start with a command."
            commands[-1][1].append(line)

    return [(command, "\n".join(lines)) for command, lines in commands]


def comparable(output: str) -> str:
    """Return output without what differs from run to run: times, durations,
    the checkout's folder and the width of the columns they fill."""
    output = _DATETIME.sub("<time>", output)
    output = _DURATION.sub("<duration>", output)
    output = _SECONDS.sub("(<seconds>)", output)
    output = _CHECKOUT.sub("<checkout>", output)
    return "\n".join(" ".join(line.split()) for line in output.strip().splitlines())


def run_shown(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a ``flask`` command of a transcript as a user would, in ``cwd``."""
    args = shlex.split(command)
    assert args[0] == "flask", f"Only flask commands can be run, not {command!r}."
    # The settings of the environment that runs the tests must not leak in.
    env = {key: value for key, value in os.environ.items() if "FLASK" not in key}
    return subprocess.run(
        [sys.executable, "-m", "flask", *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_comparable_keeps_what_does_not_change() -> None:
    shown = " 4  train  PENDING  2026-12-03 16:19:39  1s       - (0.1s)"
    later = " 4  train  PENDING  2026-12-04 09:00:00  1h 10m   - (12.5s)"
    other = " 4  train  SUCCESS  2026-12-03 16:19:39  1s       - (0.1s)"

    assert comparable(shown) == comparable(later)
    assert comparable(shown) != comparable(other)


def copy_examples(folder: Path) -> Path:
    """Copy the example application into ``folder``, without its database."""
    shutil.copytree(
        ROOT / "examples",
        folder / "examples",
        ignore=shutil.ignore_patterns("instance", "__pycache__"),
    )
    return folder / "examples"


@pytest.mark.parametrize(
    ("page", "names"),
    [
        ("quickstart.rst", ["demo", "list", "train", "show"]),
        ("operations.rst", ["prune"]),
    ],
)
def test_page_shows_what_its_commands_print(
    tmp_path: Path, page: str, names: list[str]
) -> None:
    copy_examples(tmp_path)
    transcripts = transcripts_of(page)
    assert [path.name for path in transcripts] == [f"{name}.console" for name in names]

    for path in transcripts:
        for command, shown in read_transcript(path):
            result = run_shown(command, tmp_path)

            assert result.returncode == 0, result.stdout + result.stderr
            assert comparable(result.stdout) == comparable(shown), path.name


def test_pruning_deletes_the_stored_files_and_archives_the_tasks(
    tmp_path: Path,
) -> None:
    examples = copy_examples(tmp_path)

    for command, _ in read_transcript(DOCS / "transcripts" / "prune.console"):
        run_shown(command, tmp_path)

    stored = sorted(path.name for path in examples.glob("instance/files/**/*.*"))
    archived = (tmp_path / "pruned.jsonl").read_text(encoding="utf-8").splitlines()

    assert stored == []
    assert [json.loads(line)["task_name"] for line in archived] == [
        "csv-report",
        "csv-report",
    ]


def test_crontab_runs_a_prune_without_a_terminal(tmp_path: Path) -> None:
    lines = (ROOT / "examples" / "crontab").read_text(encoding="utf-8").splitlines()
    (entry,) = [line for line in lines if line and not line.startswith("#")]
    command = shlex.split(entry.split(None, 5)[5])
    args = command[command.index("tasks") : command.index(">>")]
    archive = args.index("--archive") + 1
    args[archive] = str(tmp_path / "pruned.jsonl")
    copy_examples(tmp_path)
    run_shown("flask --app examples/app.py demo", tmp_path)

    result = run_shown(
        shlex.join(["flask", "--app", "examples/app.py", *args]), tmp_path
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("No tasks to prune: none that finished before")


def test_celery_task_prunes_with_the_configured_retention(tmp_path: Path) -> None:
    pytest.importorskip("celery", reason="the Celery example needs Celery installed")
    examples = copy_examples(tmp_path)
    run_shown("flask --app examples/app.py demo", tmp_path)
    script = (
        "import json\n"
        "from celery_prune import celery, prune_old_tasks\n"
        "entry = celery.conf.beat_schedule['prune-old-tasks']\n"
        "print(json.dumps([entry['task'] in celery.tasks,"
        " prune_old_tasks.apply().get()]))\n"
    )
    env = {key: value for key, value in os.environ.items() if "FLASK" not in key}
    env["FLASK_QHANA_TASKS_RETENTION"] = "2m"

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=examples,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == [
        True,
        {
            "ProcessingTask": 2,
            "Step": 0,
            "TaskFile": 1,
            "TaskLink": 0,
            "TaskUpdateSubscription": 0,
        },
    ]


def test_cli_reference_documents_every_command() -> None:
    text = (DOCS / "cli.rst").read_text(encoding="utf-8")
    documented = re.findall(
        r"^\.\. click:: flask_qhana_tasks\.cli:(\w+)\n    :prog: (.+)$",
        text,
        re.MULTILINE,
    )
    commands = {
        f"flask tasks {name}": command.callback.__name__
        for name, command in tasks_cli.commands.items()
        if command.callback is not None
    }

    assert ("tasks_cli", "flask tasks") in documented
    assert {prog: name for name, prog in documented if name != "tasks_cli"} == (
        commands
    )


@pytest.mark.parametrize("name", sorted(tasks_cli.commands))
def test_every_option_has_help(name: str) -> None:
    command = tasks_cli.commands[name]

    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"'flask tasks {name} {param.opts[0]}' has no help."


#: The package's modules, whose public names the API page documents.
PACKAGE_MODULES = [
    "cli",
    "extension",
    "maintenance",
    "migrations/__init__",
    "models",
    "prune",
    "resource",
    "signals",
    "status",
    "timeparse",
    "types",
    "webhooks",
]


def public_names(path: Path) -> dict[str, bool]:
    """Return the public names a module defines, each with whether it has a
    docstring or a ``#:`` comment, which autodoc shows."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    names: dict[str, bool] = {}

    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = ast.get_docstring(node) is not None
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            commented = lines[node.lineno - 2].startswith("#:")

            for target in targets:
                if isinstance(target, ast.Name):
                    names[target.id] = commented

    # A module's logger is no part of its API.
    return {
        name: documented
        for name, documented in names.items()
        if not name.startswith("_") and name != "logger"
    }


def test_api_reference_has_every_public_name() -> None:
    # The commands are documented on the command-line page, by sphinx-click.
    # The blueprint's functions are documented on the page of the resource.
    pages = ("api.rst", "api-resource.rst")
    text = "".join((DOCS / page).read_text(encoding="utf-8") for page in pages)
    text += re.sub(
        r"^\.\. click:: flask_qhana_tasks\.cli:",
        ".. autofunction:: ",
        (DOCS / "cli.rst").read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    package = ROOT / "flask_qhana_tasks"
    missing = []

    for module in PACKAGE_MODULES:
        dotted = "flask_qhana_tasks." + module.removesuffix("/__init__").replace(
            "/", "."
        )
        whole = re.search(
            rf"^\.\. automodule:: {re.escape(dotted)}\n    :members:\n"
            r"(?:    :exclude-members: (.+)\n)?",
            text,
            re.MULTILINE,
        )
        excluded = whole.group(1).split(", ") if whole and whole.group(1) else []

        for name, documented in public_names(package / f"{module}.py").items():
            if whole and name not in excluded:
                listed = documented
            else:
                entry = rf"^\.\. auto\w+:: (\S+\.)?{name}$"
                listed = re.search(entry, text, re.MULTILINE) is not None

            if not listed:
                missing.append(f"{dotted}.{name}")

    exported = importlib.import_module("flask_qhana_tasks").__all__
    missing += [name for name in exported if not re.search(rf"\b{name}\b", text)]

    assert missing == []


def test_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shown = (DOCS / "configuration.rst").read_text(encoding="utf-8")
    block = shown.split("Settings from the environment", 1)[1]
    settings = re.findall(r"^    (FLASK_QHANA_TASKS_\w+)=(.+)$", block, re.MULTILINE)
    assert len(settings) == 4

    for name, value in settings:
        monkeypatch.setenv(name, shlex.split(value, comments=True)[0])

    loaded = Flask("settings")
    loaded.config.from_prefixed_env()
    config = {key: value for key, value in loaded.config.items() if "QHANA" in key}
    app = make_app(tmp_path, "sqlite", **config)

    with app.app_context():
        db.create_all()

        assert configured_retention() == timedelta(days=30)
        assert configured_batch_size() == 500
        assert accepted_statuses()[-2:] == ["CANCELLED", "TIMEOUT"]
        assert app.config["QHANA_TASKS_MIGRATIONS"] is False

        db.session.remove()
        db.engine.dispose()


def test_configuration_page_lists_every_key_with_its_default(tmp_path: Path) -> None:
    text = (DOCS / "configuration.rst").read_text(encoding="utf-8")
    entries = re.findall(
        r"^\.\. data:: (\w+)\n(?:    :type: .+\n)?    :value: (.+)$",
        text,
        re.MULTILINE,
    )
    documented = {name: ast.literal_eval(value) for name, value in entries}
    package = ROOT / "flask_qhana_tasks"
    read = {
        name
        for path in package.rglob("*.py")
        for name in re.findall(r"\bQHANA_TASKS_[A-Z_]+\b", path.read_text("utf-8"))
    }
    app = make_app(tmp_path, "sqlite")
    defaults = {
        key: value for key, value in app.config.items() if key.startswith("QHANA_")
    }

    assert read == set(defaults)
    assert documented == defaults
