"""Fixtures for the Kubernetes emulator, the official Python client and real kubectl.

- ``kube``: a started :class:`~rotator_sandbox.kubernetes.KubernetesEmulator` (plain HTTP,
  anonymous, wall clock, rollouts complete by the next read). Like a real cluster it has only the
  standard namespaces: an HTTP create elsewhere answers 404 ``namespaces "x" not found``, so a
  test creates its namespace first (``kube.create_namespace(name)``; the seeding helpers
  ``apply``/``add_workload`` create theirs).
- ``kubeconfig``: a kubeconfig file whose context ``sandbox`` points at ``kube``.
- ``make_kube``: builds more emulators with other settings (``clock=kube_clock``,
  ``rollout_seconds``, ``tls``/``token``...); all are stopped at teardown.
- ``kube_clock``: a frozen UTC clock tests move with ``advance``.
- ``kube_api`` / ``make_kube_api``: ``kubernetes.client.ApiClient`` built from a kubeconfig, the way
  the rotator builds it, closed at teardown.
- ``kubectl``: runs the real kubectl against ``kubeconfig`` (or another one) with a timeout and a
  private cache dir. A missing kubectl FAILS the test (CI installs it); it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.clock import FrozenClock as KubeClock

#: Seconds a kubectl invocation may take before the test fails.
KUBECTL_TIMEOUT = 30.0
#: Timeout (connect, read) of Python client calls made by tests.
API_TIMEOUT = (5.0, 10.0)


@pytest.fixture
def kube_clock() -> KubeClock:
    """A frozen clock at 2025-06-01T12:00:00Z."""
    return KubeClock(datetime(2025, 6, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def make_kube() -> Iterator[Callable[..., KubernetesEmulator]]:
    """Factory of started Kubernetes emulators (keyword arguments go to the constructor)."""
    started: list[KubernetesEmulator] = []

    def make(**kwargs: Any) -> KubernetesEmulator:
        emulator = KubernetesEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def kube(make_kube: Callable[..., KubernetesEmulator]) -> KubernetesEmulator:
    """A started emulator: plain HTTP, anonymous, instant rollouts."""
    return make_kube()


@pytest.fixture
def kubeconfig(kube: KubernetesEmulator, tmp_path: Path) -> Path:
    """A kubeconfig (context ``sandbox``, namespace ``default``) pointing at ``kube``."""
    return kube.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def make_kube_api() -> Iterator[Callable[..., k8s_client.ApiClient]]:
    """Factory of Python API clients loaded from a kubeconfig; closed at teardown."""
    clients: list[k8s_client.ApiClient] = []

    def make(config_file: Path, context: str = "sandbox") -> k8s_client.ApiClient:
        api = k8s_config.new_client_from_config(config_file=str(config_file), context=context)
        clients.append(api)
        return api

    yield make
    for api in clients:
        api.close()


@pytest.fixture
def kube_api(
    kubeconfig: Path, make_kube_api: Callable[..., k8s_client.ApiClient]
) -> k8s_client.ApiClient:
    """The Python client pointed at ``kube`` through ``kubeconfig``."""
    return make_kube_api(kubeconfig)


@dataclass
class Kubectl:
    """Runs the real kubectl with a kubeconfig, a private cache dir and a timeout."""

    binary: str
    kubeconfig: Path
    cache_dir: Path
    home: Path

    def command(self, *args: str, kubeconfig: Path | None = None) -> list[str]:
        """The argv for ``kubectl <args>``."""
        return [
            self.binary,
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
        ]

    def environment(self) -> dict[str, str]:
        """A clean environment: no user kubeconfig, no proxies, a private HOME."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {**keep, "HOME": str(self.home), "NO_PROXY": "*"}

    def __call__(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        timeout: float = KUBECTL_TIMEOUT,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl and return the finished process (never raises on a non-zero exit)."""
        return subprocess.run(
            self.command(*args, kubeconfig=kubeconfig),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environment(),
            check=False,
        )

    def start(self, *args: str, kubeconfig: Path | None = None) -> subprocess.Popen[str]:
        """Start kubectl in the background (the caller waits on it with a timeout)."""
        return subprocess.Popen(
            self.command(*args, kubeconfig=kubeconfig),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment(),
        )


def find_kubectl() -> str:
    """The kubectl binary, or fail the test: the kubectl tests must run, not skip."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.fail(
            "kubectl is not on PATH: the kubectl tests need the real client (CI installs "
            "kubectl 1.32; install it locally, e.g. from https://dl.k8s.io/release/), "
            "they are never skipped",
            pytrace=False,
        )
    return binary


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """Real kubectl pointed at ``kube`` (fails the test when kubectl is missing)."""
    home = tmp_path / "kubectl-home"
    home.mkdir()
    return Kubectl(find_kubectl(), kubeconfig, tmp_path / "kubectl-cache", home)
