"""``rotator sandbox``: run the emulators in the foreground for people and their tools.

The emulators are not part of the product: they are the distribution ``stackstate-key-rotator-
sandbox`` (package ``rotator_sandbox``, ``sandbox/`` in this repository), which the operators'
wheel and container image do not contain. Only ``rotator sandbox`` and ``rotator demo`` use it,
importing it inside the command; without it they exit 2 saying how to install it.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click

from rotator.cli import EXIT_USAGE, cli

#: The distribution that holds the emulators, and how to get it (it is on no package index).
SANDBOX_DISTRIBUTION = "stackstate-key-rotator-sandbox"
SANDBOX_INSTALL = "pip install -e ./sandbox"


def sandbox_missing(command: str, error: ModuleNotFoundError) -> NoReturn:
    """Exit 2 explaining how to install the emulators, when ``error`` is about them missing.

    Any other missing module (a bug, or a broken installation of a dependency) is re-raised.
    """
    if error.name is None or error.name.partition(".")[0] != "rotator_sandbox":
        raise error
    click.echo(
        f"error: `rotator {command}` needs the StackState, Vault and Kubernetes emulators, which "
        f"are not installed. They are a distribution of their own ({SANDBOX_DISTRIBUTION}), "
        "never part of the rotator's wheel or container image, and not on PyPI: from a checkout "
        f"of the stackstate-key-rotator repository, run `{SANDBOX_INSTALL}` "
        "(make demo and make test do).",
        err=True,
    )
    raise click.exceptions.Exit(EXIT_USAGE)


SERVICE_CHOICE = click.Choice(["stackstate", "vault", "kubernetes"])


@cli.command()
@click.argument("services", nargs=-1, type=SERVICE_CHOICE)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the first service; the others take the next ones (0: any free port).",
)
@click.option(
    "--write-config",
    "config_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("sandbox-out/rotator.yaml"),
    show_default=True,
    help="Where to write a rotator configuration pointing at the sandbox.",
)
@click.option(
    "--kubeconfig",
    "kubeconfig_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("sandbox-out/kubeconfig"),
    show_default=True,
    help="Where to write the kubeconfig of the Kubernetes emulator.",
)
def sandbox(services: tuple[str, ...], port: int, config_out: Path, kubeconfig_out: Path) -> None:
    """Serve local StackState, Vault and Kubernetes emulators until interrupted.

    Needs the emulators, a distribution of their own: from a checkout of this repository,
    `pip install -e ./sandbox`. Stop it with Ctrl-C (or `kill %1` when started with `&`).

    \b
    Examples:
      rotator sandbox &                # all three, config in sandbox-out/rotator.yaml
      rotator --config sandbox-out/rotator.yaml rotate --dry-run
      kill %1                          # stop the sandbox
      rotator sandbox stackstate --port 18080
    """
    try:
        from rotator_sandbox.environment import SERVICES, Sandbox  # noqa: PLC0415 - optional
    except ModuleNotFoundError as exc:
        sandbox_missing("sandbox", exc)

    chosen = list(services) or list(SERVICES)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    with Sandbox(services=chosen, port=port) as env:  # type: ignore[arg-type]
        for name, url in env.urls().items():
            click.echo(f"{name:<11} {url}")
        kubeconfig = env.write_kubeconfig(kubeconfig_out.resolve())
        if kubeconfig is not None:
            click.echo(f"kubeconfig  {kubeconfig}  (kubectl --kubeconfig {kubeconfig} get secrets)")
        if env.stackstate is not None:
            written = env.write_config(config_out.resolve(), kubeconfig)
            click.echo(f"config      {written}  (rotator --config {written} rotate --dry-run)")
        if env.vault is not None:
            click.echo(f"vault token {env.vault.root_token}  (sandbox only)")
        if env.stackstate is not None:
            click.echo(f"sts token   {env.stackstate.service_token}  (X-API-Key; sandbox only)")
        click.echo("serving; press Ctrl-C to stop", err=True)
        previous = signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    click.echo("sandbox stopped", err=True)
