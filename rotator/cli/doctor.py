"""``rotator doctor``: read-only checks of StackState, Kubernetes, Vault and local targets.

Exit 0 when every check passed (warnings included), 1 when one failed, 2 on a configuration
error (unknown ``--key`` included). The checks themselves live in :mod:`rotator.doctor`.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

import click

from rotator.cli import EXIT_FAILED, CliState, cli, config_option
from rotator.cli.output import emit_json, output_option, output_width

if TYPE_CHECKING:
    from rotator.doctor import KeyReport

#: Text output fits this many columns.
WIDTH = 100
_STATUS_WIDTH = 4
_CHECK_WIDTH = 21
_INDENT = " " * (2 + _STATUS_WIDTH + 2)


@cli.command()
@click.option(
    "--key", "keys", multiple=True, metavar="NAME", help="Only this managed key (repeatable)."
)
@output_option("text")
@config_option
@click.pass_context
def doctor(ctx: click.Context, keys: tuple[str, ...], output: str) -> None:
    """Check, read-only, that every system a managed key relies on is reachable and grants the
    rotator what it needs (exit 1 if any check failed).

    \b
    Examples:
      rotator --config rotator.yaml doctor
      rotator doctor --key agent-prod
      rotator doctor -o json | jq '.keys[].checks[] | select(.ok | not)'
    """
    # Adapters load on use, to keep --help fast.
    from rotator.doctor import DoctorEnv, doctor_document, run_checks  # noqa: PLC0415
    from rotator.wiring import build_runtime  # noqa: PLC0415

    config = ctx.ensure_object(CliState).load_config()
    with build_runtime(config) as runtime:
        selected = {spec.name for spec in runtime.select(keys)}
        env = DoctorEnv(
            config, stackstate=runtime.stackstate, kube=runtime.kube, vault=runtime.vault
        )
        reports = run_checks(
            env,
            [key for key in config.keys if key.name in selected],
            progress=DoctorProgress() if output == "text" else None,
        )
    if output == "json":
        emit_json(doctor_document(reports))
    else:
        click.echo(render_text(reports))
    if any(not report.ok for report in reports):
        ctx.exit(EXIT_FAILED)


class DoctorProgress:
    """``[1/3] agent: kubernetes-rbac`` on stderr while checks run, only on a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty()

    def __call__(self, index: int, total: int, key: str, check: str) -> None:
        if self.enabled:
            click.echo(f"[{index}/{total}] {key}: {check}", err=True)


def render_text(reports: Sequence[KeyReport]) -> str:
    """One block per managed key, one line per check (``ok``/``warn``/``FAIL``), the fix of
    each failure or warning under it, then a summary line; wrapped at :data:`WIDTH`, or at the
    terminal's width when that is narrower."""
    lines: list[str] = []
    failed = warned = total = 0
    for report in reports:
        bad = sum(1 for r in report.checks if not r.ok)
        lines.append(f"{report.key}: " + (f"{bad} failed" if bad else "ok"))
        for result in report.checks:
            total += 1
            status = "ok" if result.ok else "FAIL"
            if result.warning:
                status = "warn"
                warned += 1
            failed += not result.ok
            head = f"  {status:<{_STATUS_WIDTH}}  {result.check:<{_CHECK_WIDTH}} {result.subject}"
            lines.extend(_wrap(f"{head}: {result.detail}"))
            if result.fix and (not result.ok or result.warning):
                lines.extend(_wrap(f"{_INDENT}fix: {result.fix}"))
        lines.append("")
    summary = f"{len(reports)} managed key{'s' if len(reports) != 1 else ''}, {total} checks: "
    summary += f"{failed} failed"
    if warned:
        summary += f", {warned} warning{'s' if warned != 1 else ''}"
    lines.append(summary)
    return "\n".join(lines)


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=min(WIDTH, output_width() or WIDTH),
        subsequent_indent=_INDENT + "  ",
        break_long_words=False,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [text]
