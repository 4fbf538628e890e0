from __future__ import annotations

import pytest
from flask.testing import FlaskCliRunner

COMMANDS = ("list", "show", "stats", "clear-steps", "prune")


def test_group_help_lists_every_command(cli: FlaskCliRunner) -> None:
    result = cli.invoke(args=["tasks", "--help"])

    assert result.exit_code == 0
    assert "Inspect the recorded tasks, clear their steps and prune old ones." in (
        result.output
    )
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    assert sorted(line.split()[0] for line in listed) == sorted(COMMANDS)
    # Each command's summary is a whole sentence, not cut short.
    assert all(line.endswith(".") for line in listed)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(cli: FlaskCliRunner, command: str) -> None:
    result = cli.invoke(args=["tasks", command, "--help"])

    assert result.exit_code == 0
    assert f"tasks {command} [OPTIONS]" in result.output.splitlines()[0]
    assert "..." not in result.output.replace("[TASK_ID]...", "")


def test_clear_steps_help_says_how_long_a_step_has_waited(cli: FlaskCliRunner) -> None:
    result = cli.invoke(args=["tasks", "clear-steps", "--help"], terminal_width=200)

    assert result.exit_code == 0
    assert "A step waits from when it was added" in result.output
    assert "Steps record no time of their own" not in result.output
