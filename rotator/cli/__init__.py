"""The ``rotator`` command line: global options, error handling and exit codes.

Exit codes (README): 0 healthy or progressing, 1 at least one managed key failed or a call
failed, 2 usage or configuration error (nothing was changed). Every command turns our own errors
into one readable line on stderr — never a traceback.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rotator import __version__
from rotator.errors import ConfigError, RotatorError

if TYPE_CHECKING:
    from rotator.config import RotatorConfig

#: ``rotator.logs.LEVELS``, spelled out so that ``--help`` loads no logging library (structlog
#: is imported when a command runs; a test of the start-up imports checks the two agree).
LOG_LEVELS = ("critical", "debug", "error", "info", "warning")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass
class CliState:
    """What the global options decided, shared with every command through the click context."""

    config_option: str | None = None
    log_format: str = "auto"
    log_level: str = "info"
    extras: dict[str, Any] = field(default_factory=dict)

    def config_path(self) -> Path:
        """The configuration file: ``--config``, else ``$ROTATOR_CONFIG``, else ./rotator.yaml."""
        from rotator.config import resolve_config_path  # noqa: PLC0415 - keep --help fast

        return resolve_config_path(self.config_option, os.environ)

    def load_config(self) -> RotatorConfig:
        """Load and validate the configuration file; raises ConfigError (exit 2)."""
        from rotator.config import load_config  # noqa: PLC0415 - keep --help fast

        return load_config(self.config_path())


def config_option(func: Any) -> Any:
    """Accept ``--config`` after the command too (the contract allows both places)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(CliState).config_option = value

    return click.option(
        "--config",
        "config_file",
        metavar="FILE",
        expose_value=False,
        callback=remember,
        help="Configuration file (default: $ROTATOR_CONFIG, else ./rotator.yaml).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Configuration file (default: $ROTATOR_CONFIG, else ./rotator.yaml).",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json", "auto"]),
    default="auto",
    show_default=True,
    help="Log format on stderr: console on a terminal, JSON otherwise (auto).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Least severe log level written to stderr.",
)
@click.version_option(__version__, prog_name="rotator")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, log_format: str, log_level: str) -> None:
    """Rotate StackState / SUSE Observability API keys before they expire, without an outage.

    Global options go before the command; --config is accepted after it too. Logs go to stderr,
    stdout carries only the command's output (-o/--output json for scripts). Exit codes: 0 ok or
    progressing, 1 a key or a call failed, 2 usage or configuration error.

    \b
    Examples:
      rotator --config rotator.yaml check-config
      rotator --config rotator.yaml rotate --dry-run
      rotator --log-format json --log-level debug status
      rotator COMMAND --help
    """
    state = ctx.ensure_object(CliState)
    state.config_option = config_file
    state.log_format = log_format
    state.log_level = log_level
    from rotator.logs import configure_logging  # noqa: PLC0415 - keep --help fast

    configure_logging(level=log_level, fmt=log_format)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map our errors to exit codes."""
    from rotator.cli import commands  # noqa: F401, PLC0415 - registers the commands

    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        code = cli.main(args=argv, prog_name="rotator", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except RotatorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
