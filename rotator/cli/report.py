"""Rendering run reports for a person: text, tables, progress (the JSON: :mod:`rotator.report`)."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from typing import Any, TextIO

import click

from rotator.cli.output import day, fit_line, output_width, table
from rotator.engine.model import CurrentKey, KeyResult, RunReport
from rotator.engine.policy import human_delta
from rotator.report import days_left, report_document, result_document

__all__ = [
    "Progress",
    "days_left",
    "helm_values_yaml",
    "render_text",
    "report_document",
    "result_document",
    "status_table",
    "summary_line",
]


def helm_values_yaml(values: tuple[tuple[str, str], ...]) -> str:
    """A values.yaml snippet for dotted Helm value paths (``true``/``false`` stay booleans)."""
    tree: dict[str, Any] = {}
    for path, value in values:
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = {"true": True, "false": False}.get(value, value)
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        for name, child in node.items():
            if isinstance(child, dict):
                lines.append(f"{'  ' * depth}{name}:")
                walk(child, depth + 1)
            else:
                text = str(child).lower() if isinstance(child, bool) else child
                lines.append(f"{'  ' * depth}{name}: {text}")

    walk(tree, 0)
    return "\n".join(lines)


def _describe_current(current: CurrentKey | None, now: datetime) -> str:
    if current is None:
        return "none"
    if current.adopted and current.name is None:
        ident = f"adopted value (key id {current.id})" if current.id else "adopted value"
    else:
        ident = f"{current.name or '?'} (id {current.id})"
    if current.expiration is None:
        return f"{ident}, expiry unknown" if current.adopted else f"{ident}, never expires"
    left = current.expiration - now
    when = f"in {human_delta(left)}" if left.total_seconds() > 0 else f"{human_delta(-left)} ago"
    return f"{ident}, expires {day(current.expiration)} ({when})"


def render_text(report: RunReport) -> str:
    """The human-readable report: one block per managed key, then a summary line."""
    lines: list[str] = []
    now = report.started_at
    for result in report.results:
        plan = result.plan
        lines.append(f"{plan.key} ({plan.kind})")
        lines += fit_line(
            f"  current:  {_describe_current(plan.current, now)}", indent="          "
        )
        lines += fit_line(f"  decision: {plan.decision}: {plan.reason}", indent="          ")
        if plan.actions:
            lines.append("  actions:")
            rows = [[a.action, a.target or "-", a.detail] for a in plan.actions]
            fitted = table(["ACTION", "TARGET", "DETAIL"], rows, width=output_width(indent=4))
            lines += ["    " + row for row in fitted.split("\n")]
        listed = {a.target for a in plan.actions}
        readers = [r for r in plan.readers if r.id not in listed and r.restarted]
        if readers and report.dry_run:
            lines.append("  readers (found this run):")
            for r in readers:
                lines += fit_line(f"    {r.id}: {r.how}", indent="  ")
        for w in plan.warnings:
            lines += fit_line(f"  warning:  {w}", indent="          ")
        if plan.helm_values and (report.dry_run or plan.failed):
            sets = " ".join(f"--set {path}={value}" for path, value in plan.helm_values)
            lines += fit_line(
                f"  helm values that point the chart at the rotator's Secret: {sets}", indent="  "
            )
            lines += [f"    {line}" for line in helm_values_yaml(plan.helm_values).split("\n")]
        outcome = f"  outcome:  {result.outcome}"
        if result.error:
            outcome += f": {result.error}"
        failure = result.failure or plan.failure
        if failure is not None:
            outcome += f" [step {failure.step}, {failure.category}]"
        lines += fit_line(outcome, indent="          ")
        lines.append("")
    lines.append(summary_line(report))
    return "\n".join(lines)


def summary_line(report: RunReport) -> str:
    """``3 managed keys: 1 rotated, 2 unchanged (dry-run)``."""
    counts = Counter(r.outcome for r in report.results)
    parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    suffix = " (dry-run: nothing was changed)" if report.dry_run else ""
    total = len(report.results)
    return f"{total} managed key{'s' if total != 1 else ''}: {parts or 'none'}{suffix}"


def status_table(report: RunReport) -> str:
    """``rotator status`` as a table."""
    now = report.started_at
    rows = []
    for result in report.results:
        plan = result.plan
        current = plan.current
        left = days_left(current.expiration if current else None, now)
        rows.append(
            [
                plan.key,
                plan.kind,
                (current.name or ("adopted" if current.adopted else "?")) if current else "-",
                day(current.expiration, never="never") if current and current.expiration else "-",
                "-" if left is None else f"{left:g}",
                {True: "yes", False: "no", None: "unknown"}[plan.targets_agree],
                plan.decision,
                plan.reason,
            ]
        )
    text = table(
        ["KEY", "KIND", "CURRENT", "EXPIRES", "DAYS LEFT", "TARGETS AGREE", "NEXT", "WHY"],
        rows,
        keep={"KEY"},  # what --key takes
    )
    unreachable = [
        line
        for r in report.results
        if (failure := r.failure or r.plan.failure) is not None and failure.step == "observe"
        for line in fit_line(f"  {r.plan.key}: {failure.message}", indent="    ")
    ]
    if unreachable:
        text += "\n\ncould not read (state unknown, nothing assumed):\n" + "\n".join(unreachable)
    return text


class Progress:
    """Per-key progress lines on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty()

    def __call__(self, index: int, total: int, result: KeyResult) -> None:
        if self.enabled:
            click.echo(f"[{index}/{total}] {result.plan.key}: {result.outcome}", err=True)

    def note(self, text: str) -> None:
        """What the command is waiting for (a slow or unreachable system shows up here)."""
        if self.enabled:
            click.echo(f"... {text}", err=True)
