"""``rotator demo``: the product at work against the local sandbox, nothing outside this machine.

It starts the StackState, Vault and Kubernetes emulators in-process, writes a configuration
with one managed key delivered to a Kubernetes Secret, a Vault KV path and an agent YAML file,
and then runs the real engine through it: the dry-run plan, the bootstrap, ``status``, and a
forced rotation. It prints fingerprints, never values.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from rotator.cli import cli
from rotator.cli.keys import key_table
from rotator.cli.report import render_text, status_table
from rotator.engine.model import KeyResult, RunReport
from rotator.engine.run import observe_and_plan, run_once, utc_now


def _step(number: int, total: int, text: str) -> None:
    click.echo(click.style(f"\n[{number}/{total}] {text}", bold=True))


@cli.command()
def demo() -> None:
    """Run the rotator against a local sandbox (no configuration needed)."""
    from rotator.config import load_config  # noqa: PLC0415 - demo only
    from rotator.sandbox.environment import EXAMPLE_KEY, Sandbox  # noqa: PLC0415
    from rotator.wiring import build_runtime  # noqa: PLC0415

    steps = 6
    with tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp, Sandbox() as env:
        root = Path(tmp)
        _step(1, steps, "sandbox started")
        for name, url in env.urls().items():
            click.echo(f"  {name:<11} {url}")
        kubeconfig = env.write_kubeconfig(root / "kubeconfig")
        config_path = env.write_config(root / "rotator.yaml", kubeconfig)
        config = load_config(config_path)
        click.echo(f"  config      {config_path} (managed key {EXAMPLE_KEY!r}, 3 targets)")

        with build_runtime(config) as runtime:
            _step(2, steps, "rotator rotate --dry-run: the plan, nothing is changed")
            click.echo(render_text(run_once(runtime.specs, runtime.stackstate, dry_run=True)))

            _step(3, steps, "rotator rotate: bootstrap creates, verifies and pushes a key")
            report = run_once(runtime.specs, runtime.stackstate, dry_run=False)
            click.echo(render_text(report))

            _step(4, steps, "rotator status")
            now = utc_now()
            planned = observe_and_plan(runtime.specs, runtime.stackstate, now=now)
            results = tuple(KeyResult(plan, "unchanged") for _, plan in planned)
            click.echo(status_table(RunReport(dry_run=True, started_at=now, results=results)))

            _step(5, steps, "rotator rotate --force: a new key replaces the current one")
            forced = run_once(runtime.specs, runtime.stackstate, dry_run=False, force=True)
            click.echo(render_text(forced))

            _step(6, steps, "rotator keys list --kind service-token")
            keys = sorted(runtime.stackstate.list_keys("service-token"), key=lambda k: k.name)
            click.echo(key_table("service-token", keys))
        failed = report.failed or forced.failed
    if failed:
        raise click.ClickException("the demo rotation failed (see above)")
    click.echo(
        "\ndemo finished: the key was bootstrapped and rotated in a Kubernetes Secret, a Vault "
        "KV path and a YAML file. Revoking the previous key after consumers switch over comes "
        "with the next milestone."
    )
