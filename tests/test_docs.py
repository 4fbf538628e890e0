"""The documentation's commands run, and print what the pages show."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from flask_qhana_tasks.cli import tasks_cli

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"

#: A time as the command line prints it, which differs from run to run.
_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

#: A duration as the command line prints it, like ``2s`` or ``3d 4h``.
_DURATION = re.compile(r"(?<!\S)-?\d+[dhms](?: \d+[hms])?(?!\S)")

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
    shown = " 4  train  PENDING  2026-12-03 16:19:39  1s       -"
    later = " 4  train  PENDING  2026-12-04 09:00:00  1h 10m   -"
    other = " 4  train  SUCCESS  2026-12-03 16:19:39  1s       -"

    assert comparable(shown) == comparable(later)
    assert comparable(shown) != comparable(other)


def test_quickstart_shows_what_its_commands_print(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "examples",
        tmp_path / "examples",
        ignore=shutil.ignore_patterns("instance", "__pycache__"),
    )
    transcripts = transcripts_of("quickstart.rst")
    assert [path.name for path in transcripts] == [
        "demo.console",
        "list.console",
        "train.console",
        "show.console",
    ]

    for path in transcripts:
        for command, shown in read_transcript(path):
            result = run_shown(command, tmp_path)

            assert result.returncode == 0, result.stdout + result.stderr
            assert comparable(result.stdout) == comparable(shown), path.name


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
