"""Real kubectl (1.32) against the Kubernetes emulator, as a subprocess with ``--kubeconfig``.

These tests fail (never skip) when kubectl is missing: CI installs it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rotator_sandbox.kubernetes import KubernetesEmulator, generate_tls
from rotator_sandbox.kubernetes_controller import RESTARTED_AT
from tests.plugins.kubernetes import KUBECTL_TIMEOUT, KubeClock, Kubectl

pytestmark = pytest.mark.slow

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secrets
  namespace: prod
stringData:
  API_KEY: from-manifest
"""


BATCH_MANIFEST = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-sync
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: sync
            image: registry.example.com/sync:1.0
            envFrom:
            - secretRef: {name: agent}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: registry.example.com/sync:1.0
"""


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a kubectl run that must have succeeded."""
    assert result.returncode == 0, f"kubectl failed ({result.returncode}): {result.stderr}"
    return result.stdout


def wait_for_request(kube: KubernetesEmulator, predicate: Callable[[str], bool]) -> None:
    """Poll the request log until a matching query string shows up (bounded)."""
    deadline = time.monotonic() + KUBECTL_TIMEOUT
    while time.monotonic() < deadline:
        if any(predicate(entry.query) for entry in kube.log):
            return
        time.sleep(0.02)
    pytest.fail("kubectl never sent the expected request")


class TestSecretsWithKubectl:
    """kubectl get / create / patch on Secrets."""

    def test_get_secret_prints_the_server_table(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """``kubectl get secret`` shows the NAME, TYPE, DATA, AGE columns from the Table."""
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent", "namespace": "default"},
                "stringData": {"STS_API_KEY": "k1", "OTHER": "x"},
            }
        )
        lines = ok(kubectl("get", "secret", "agent")).splitlines()
        assert lines[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
        assert lines[1].split()[:3] == ["agent", "Opaque", "2"]

    def test_get_missing_secret_reports_not_found(self, kubectl: Kubectl) -> None:
        """A missing Secret is kubectl's ``Error from server (NotFound)``."""
        result = kubectl("get", "secret", "nope")
        assert result.returncode == 1
        assert 'Error from server (NotFound): secrets "nope" not found' in result.stderr

    def test_create_secret_generic_stores_the_literal(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """``kubectl create secret generic`` (a protobuf POST) stores the value base64-encoded."""
        assert "secret/agent created" in ok(
            kubectl("create", "secret", "generic", "agent", "--from-literal=STS_API_KEY=k1")
        )
        assert kube.secret_data("default", "agent") == {"STS_API_KEY": "k1"}

    def test_create_namespace_then_secret_in_it(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """``kubectl create namespace`` (protobuf) creates it; ``-n`` then writes into it."""
        assert "namespace/team-a created" in ok(kubectl("create", "namespace", "team-a"))
        ok(kubectl("create", "secret", "generic", "k", "--from-literal=a=b", "-n", "team-a"))
        assert kube.secret_data("team-a", "k") == {"a": "b"}
        assert "team-a" in ok(kubectl("get", "namespaces", "-o", "name"))

    def test_patch_secret_merges_data(self, kube: KubernetesEmulator, kubectl: Kubectl) -> None:
        """``kubectl patch secret`` with a strategic merge patch adds a key; a repeat is a no-op."""
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent", "namespace": "default"},
                "stringData": {"a": "1"},
            }
        )
        patch = json.dumps({"data": {"b": "Mg=="}})
        assert "secret/agent patched" in ok(kubectl("patch", "secret", "agent", "-p", patch))
        assert kube.secret_data("default", "agent") == {"a": "1", "b": "2"}
        assert "(no change)" in ok(kubectl("patch", "secret", "agent", "-p", patch))

    def test_forbidden_get_is_reported(self, kube: KubernetesEmulator, kubectl: Kubectl) -> None:
        """An RBAC-style denial reaches the user as ``Error from server (Forbidden)``."""
        kube.forbid("get", "secrets", "default")
        result = kubectl("get", "secret", "agent")
        assert result.returncode == 1
        assert (
            'Error from server (Forbidden): secrets "agent" is forbidden: User "system:anonymous" '
            'cannot get resource "secrets" in API group "" in the namespace "default"'
        ) in result.stderr

    def test_create_and_apply_from_a_manifest_without_flags(
        self, kube: KubernetesEmulator, kubectl: Kubectl, tmp_path: Path
    ) -> None:
        """``kubectl create -f`` and ``apply -f`` work without ``--validate=false``."""
        kube.create_namespace("prod")
        manifest = tmp_path / "app.yaml"
        manifest.write_text(MANIFEST)
        out = ok(kubectl("create", "-f", str(manifest)))
        assert "deployment.apps/web created" in out
        assert "secret/web-secrets created" in out
        assert kube.secret_data("prod", "web-secrets") == {"API_KEY": "from-manifest"}
        manifest.write_text(MANIFEST.replace("from-manifest", "applied"))
        ok(kubectl("apply", "-f", str(manifest)))
        assert kube.secret_data("prod", "web-secrets") == {"API_KEY": "applied"}

    def test_create_in_a_missing_namespace_is_refused(self, kubectl: Kubectl) -> None:
        """Writing into a namespace nobody created fails with the namespace's NotFound."""
        result = kubectl("create", "secret", "generic", "k", "--from-literal=a=b", "-n", "nope")
        assert result.returncode == 1
        assert result.stderr == 'error: failed to create secret namespaces "nope" not found\n'


class TestAuthCanIWithKubectl:
    """``kubectl auth can-i`` asks a SelfSubjectAccessReview (sent as protobuf)."""

    def test_can_i_follows_the_forbid_rules(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """A forbidden verb is "no" (exit 1); others are "yes" (exit 0)."""
        kube.forbid("get", "secrets", "ns")
        denied = kubectl("auth", "can-i", "get", "secrets", "-n", "ns")
        assert (denied.returncode, denied.stdout.strip()) == (1, "no")
        allowed = kubectl("auth", "can-i", "list", "secrets", "-n", "ns")
        assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
        elsewhere = kubectl("auth", "can-i", "get", "secrets", "-n", "other")
        assert (elsewhere.returncode, elsewhere.stdout.strip()) == (0, "yes")

    def test_can_i_on_a_batch_resource_names_its_group(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """kubectl resolves cronjobs to group batch through discovery; the rule matches."""
        kube.forbid("create", "cronjobs", "ns")
        denied = kubectl("auth", "can-i", "create", "cronjobs", "-n", "ns")
        assert (denied.returncode, denied.stdout.strip()) == (1, "no")
        assert "doesn't have a resource type" not in denied.stderr


class TestBatchWithKubectl:
    """Jobs and CronJobs created from a manifest and listed with kubectl get."""

    def test_get_prints_the_server_tables(
        self, kube: KubernetesEmulator, kubectl: Kubectl, tmp_path: Path
    ) -> None:
        """kubectl get cronjobs / jobs show the columns a 1.32 server prints."""
        manifest = tmp_path / "batch.yaml"
        manifest.write_text(BATCH_MANIFEST)
        out = ok(kubectl("create", "-f", str(manifest)))
        assert "cronjob.batch/nightly-sync created" in out
        assert "job.batch/once created" in out
        cronjobs = ok(kubectl("get", "cronjobs")).splitlines()
        assert cronjobs[0].split() == [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST",
            "SCHEDULE",
            "AGE",
        ]
        assert cronjobs[1].split()[:7] == [
            "nightly-sync",
            "0",
            "3",
            "*",
            "*",
            "*",
            "<none>",
        ]
        jobs = ok(kubectl("get", "jobs")).splitlines()
        assert jobs[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
        assert jobs[1].split()[:3] == ["once", "Running", "0/1"]
        stored = kube.get("cronjobs", "default", "nightly-sync")
        assert stored is not None
        assert stored["spec"]["concurrencyPolicy"] == "Allow"


class TestRolloutWithKubectl:
    """kubectl rollout restart / status against the simulated controller."""

    def test_restart_then_status_succeeds(self, kube: KubernetesEmulator, kubectl: Kubectl) -> None:
        """``rollout restart`` stamps restartedAt; ``rollout status`` then reports success."""
        kube.add_workload("deployment", "default", "agent")
        assert "deployment.apps/agent restarted" in ok(
            kubectl("rollout", "restart", "deployment/agent")
        )
        stored = kube.get("deployments", "default", "agent")
        assert stored is not None
        assert RESTARTED_AT in stored["spec"]["template"]["metadata"]["annotations"]
        assert stored["metadata"]["generation"] == 2
        out = ok(kubectl("rollout", "status", "deployment/agent", "--timeout=20s"))
        assert 'deployment "agent" successfully rolled out' in out

    def test_status_waits_on_the_watch_until_the_clock_moves(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        kube_clock: KubeClock,
        kubectl: Kubectl,
        tmp_path: Path,
    ) -> None:
        """With a frozen clock ``rollout status`` waits; advancing the clock lets it finish."""
        slow = make_kube(clock=kube_clock, rollout_seconds=60)
        config = slow.write_kubeconfig(tmp_path / "slow")
        slow.add_workload("deployment", "default", "agent")
        ok(kubectl("rollout", "restart", "deployment/agent", kubeconfig=config))
        process = kubectl.start(
            "rollout", "status", "deployment/agent", "--timeout=25s", kubeconfig=config
        )
        try:
            wait_for_request(slow, lambda query: "watch=true" in query)
            kube_clock.advance(60)
            stdout, stderr = process.communicate(timeout=KUBECTL_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=KUBECTL_TIMEOUT)
        assert process.returncode == 0, stderr
        assert 'Waiting for deployment "agent" rollout to finish: 0 out of 2' in stdout
        assert 'deployment "agent" successfully rolled out' in stdout

    def test_status_fails_on_a_stalled_deployment(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """A stalled rollout makes ``rollout status`` exit 1 with the progress-deadline error."""
        kube.add_workload("deployment", "default", "agent")
        kube.stall("deployment", "default", "agent")
        ok(kubectl("rollout", "restart", "deployment/agent"))
        result = kubectl("rollout", "status", "deployment/agent", "--timeout=20s")
        assert result.returncode == 1
        assert 'error: deployment "agent" exceeded its progress deadline' in result.stderr

    def test_restart_is_refused_on_a_paused_deployment(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """kubectl refuses to restart a paused Deployment and nothing is written."""
        kube.add_workload("deployment", "default", "agent")
        assert "deployment.apps/agent paused" in ok(kubectl("rollout", "pause", "deployment/agent"))
        kube.clear_log()
        result = kubectl("rollout", "restart", "deployment/agent")
        assert result.returncode == 1
        assert "can't restart paused deployment (run rollout resume first)" in result.stderr
        assert kube.mutating_requests() == []

    def test_status_of_daemonset_and_statefulset(
        self, kube: KubernetesEmulator, kubectl: Kubectl
    ) -> None:
        """DaemonSets and StatefulSets restart and report a finished rollout."""
        kube.add_workload("daemonset", "default", "node-agent", replicas=3)
        kube.add_workload("statefulset", "default", "db")
        ok(kubectl("rollout", "restart", "daemonset/node-agent", "statefulset/db"))
        ds = ok(kubectl("rollout", "status", "daemonset/node-agent", "--timeout=20s"))
        assert 'daemon set "node-agent" successfully rolled out' in ds
        sts = ok(kubectl("rollout", "status", "statefulset/db", "--timeout=20s"))
        assert "partitioned roll out complete: 2 new pods have been updated" in sts


class TestTransportWithKubectl:
    """HTTPS with a bearer token, and what kubectl does with a token over plain HTTP."""

    def test_https_with_token(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        kubectl: Kubectl,
        tmp_path: Path,
    ) -> None:
        """Over HTTPS kubectl trusts the generated CA and authenticates with the token."""
        ca, cert, key = generate_tls(tmp_path / "tls")
        secure = make_kube(tls=(str(cert), str(key)), ca_cert=ca, token="t0ken")
        config = secure.write_kubeconfig(tmp_path / "secure")
        secure.add_workload("deployment", "default", "agent")
        ok(kubectl("create", "secret", "generic", "agent", "--from-literal=k=v", kubeconfig=config))
        assert secure.secret_data("default", "agent") == {"k": "v"}
        ok(kubectl("rollout", "restart", "deployment/agent", kubeconfig=config))
        status = ok(
            kubectl("rollout", "status", "deployment/agent", "--timeout=20s", kubeconfig=config)
        )
        assert "successfully rolled out" in status

    def test_token_over_plain_http_is_not_sent(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        kubectl: Kubectl,
        tmp_path: Path,
    ) -> None:
        """kubectl withholds a bearer token over plain HTTP, so a token-only emulator says 401."""
        guarded = make_kube(token="t0ken")
        result = kubectl("get", "secrets", kubeconfig=guarded.write_kubeconfig(tmp_path / "plain"))
        assert result.returncode == 1
        assert "error: You must be logged in to the server" in result.stderr
