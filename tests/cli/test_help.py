"""Every command's ``--help`` is usable on its own (issue 13, item 8): it ends with an
"Examples:" block, documents ``-o/--output`` and ``--log-level``, and shows no docstring markup."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

import rotator.cli.commands  # noqa: F401 - registers every command on the group
from rotator.cli import cli
from tests.plugins.cli import CliRunner


def all_commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and group below ``rotator``, with the words that invoke it."""
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(all_commands())


@pytest.mark.parametrize(
    ("words", "command"), COMMANDS, ids=[" ".join(w) or "rotator" for w, _ in COMMANDS]
)
def test_help_ends_with_examples(
    run_cli: CliRunner, words: tuple[str, ...], command: click.Command
) -> None:
    """``rotator ... --help`` exits 0 and has an Examples block of ``rotator``/``make`` lines,
    verbatim (click's ``\\b``: each example on its own line), and no ``double backticks``."""
    result = run_cli(*words, "--help")
    assert result.code == 0, result.err
    text = result.out
    assert "Examples:" in text, f"rotator {' '.join(words)} --help has no Examples: block"
    examples = text.split("Examples:", 1)[1].split("\nOptions:", 1)[0]
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    assert lines, "the Examples: block is empty"
    assert any(line.startswith(("rotator ", "make ")) for line in lines), lines
    assert "``" not in text
    for param in command.params:
        if isinstance(param, click.Option) and "--output" in param.opts:
            assert param.help, f"rotator {' '.join(words)}: -o/--output has no help"


def test_global_options_are_documented(run_cli: CliRunner) -> None:
    """``--log-level`` and ``--log-format`` say what they do; ``-o json`` is mentioned."""
    result = run_cli("--help")
    options = result.out.split("Options:", 1)[1]
    level = options.split("--log-level", 1)[1].split("--version", 1)[0]
    assert "log level" in level.lower()
    assert "-o/--output json" in " ".join(result.out.split())


def test_check_config_prints_no_docstring_markup(run_cli: CliRunner) -> None:
    """The issue's example: ``ok`` printed with its reST backticks."""
    result = run_cli("check-config", "--help")
    assert "ok and one line per managed key" in " ".join(result.out.split())
