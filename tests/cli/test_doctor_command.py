"""Tests for ``rotator doctor`` against the StackState, Vault and Kubernetes emulators over HTTP."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from rotator_sandbox.stackstate import StackStateEmulator
from tests.plugins.cli import CliRunner, sandbox_config
from tests.plugins.world import NAMESPACE, World

CHECK_FIELDS = {"check", "subject", "ok", "detail", "fix"}
#: The only POSTs doctor may send: queries that store nothing.
READ_ONLY_POSTS = (
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    "/v1/sys/capabilities-self",
)


def doctor_json(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``doctor -o json``; (exit code, parsed document)."""
    result = world.rotator("doctor", "-o", "json", *args)
    return result.code, json.loads(result.out)


def rows(document: dict[str, Any], key: str, check: str | None = None) -> list[dict[str, Any]]:
    """The rows of one managed key (of one check)."""
    (entry,) = [k for k in document["keys"] if k["key"] == key]
    return [row for row in entry["checks"] if check is None or row["check"] == check]


def failed(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every failed row of every key."""
    return [row for entry in document["keys"] for row in entry["checks"] if not row["ok"]]


class TestAllHealthy:
    """Everything reachable and allowed: exit 0, every row ok."""

    def test_every_check_passes(self, world: World) -> None:
        """A key with a Secret, a Vault path, a file and a workload: all checks ok."""
        world.add_key_with_workload("agent")
        code, document = doctor_json(world)
        assert code == 0, failed(document)
        names = {row["check"] for row in rows(document, "agent")}
        assert {
            "stackstate-reachable",
            "stackstate-permission",
            "kubernetes-reachable",
            "kubernetes-rbac",
            "vault-reachable",
            "vault-auth",
            "vault-capabilities",
            "file-writable",
        } <= names
        rbac = {row["subject"] for row in rows(document, "agent", "kubernetes-rbac")}
        assert f"secrets/agent-secrets in namespace {NAMESPACE} (context sandbox)" in rbac
        assert f"deployments.apps/agent in namespace {NAMESPACE} (context sandbox)" in rbac

    def test_json_has_exactly_the_contract_shape(self, world: World) -> None:
        """{"keys": [{"key", "checks": [{"check", "subject", "ok", "detail", "fix"}]}]}."""
        world.add_key("agent")
        world.add_key("other", kind="ingestion-api-key")
        _, document = doctor_json(world)
        assert set(document) == {"keys"}
        assert [entry["key"] for entry in document["keys"]] == ["agent", "other"]
        for entry in document["keys"]:
            assert set(entry) == {"key", "checks"}
            assert entry["checks"]
            for row in entry["checks"]:
                assert set(row) == CHECK_FIELDS
                assert isinstance(row["ok"], bool)
                assert all(isinstance(row[f], str) for f in ("check", "subject", "detail"))
                assert row["fix"] is None or isinstance(row["fix"], str)

    def test_text_output_fits_100_columns(self, world: World) -> None:
        """One line per check, a summary, nothing wider than 100 columns."""
        world.add_key_with_workload("agent")
        result = world.rotator("doctor")
        assert result.code == 0, result.out
        lines = result.out.splitlines()
        assert lines[0] == "agent: ok"
        assert any(line.startswith("  ok    kubernetes-rbac") for line in lines)
        assert lines[-1].startswith("1 managed key, ") and lines[-1].endswith("0 failed")
        assert max(len(line) for line in lines) <= 100

    def test_key_selects_managed_keys(self, world: World) -> None:
        """--key limits the report to the keys named."""
        world.add_key("agent")
        world.add_key("other")
        _, document = doctor_json(world, "--key", "other")
        assert [entry["key"] for entry in document["keys"]] == ["other"]


class TestReadOnly:
    """Doctor changes nothing anywhere (invariant I5)."""

    def test_doctor_sends_no_write(self, world: World) -> None:
        """Only read-only queries reach the emulators; their state is untouched."""
        world.add_key_with_workload("agent")
        world.add_key("ingest", kind="ingestion-api-key")
        world.sections["leader_election"] = {"enabled": True, "namespace": "rotator"}
        world.write_config()
        keys_before = {k: world.stackstate.keys(k) for k in ("service-token", "ingestion-api-key")}
        workload_before = copy.deepcopy(world.kube.get("deployments", NAMESPACE, "agent"))
        files_before = {n: world.file_path(n).read_bytes() for n in ("agent", "ingest")}
        world.clear_logs()
        result = world.rotator("doctor", "-o", "json")
        assert result.code == 0, result.out
        for emulator, writes in world.mutating_requests().items():
            unexpected = [w for w in writes if not w.endswith(READ_ONLY_POSTS)]
            assert unexpected == [], emulator
            assert all(w.startswith("POST ") for w in writes)
        assert {k: world.stackstate.keys(k) for k in keys_before} == keys_before
        assert world.kube.get("secrets", NAMESPACE, "agent-secrets") is None  # not created
        assert world.kube.get("deployments", NAMESPACE, "agent") == workload_before
        assert world.vault.read("secret", "stackstate/agent") is None
        assert {n: world.file_path(n).read_bytes() for n in files_before} == files_before
        assert world.kube.get("leases", "rotator", "stackstate-key-rotator") is None

    def test_no_secret_in_output(self, world: World) -> None:
        """Neither configured credentials nor key values appear in stdout or stderr."""
        world.add_key_with_workload("agent")
        _, value = world.stackstate.seed_key(
            "service-token", "agent-20250101T000000Z", expiration=None
        )
        encoded = base64.b64encode(value.encode()).decode()
        world.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent-secrets", "namespace": NAMESPACE},
                "data": {"STS_API_KEY": encoded},
            }
        )
        world.vault.write("secret", "stackstate/agent", {"api_key": value})
        for args in (("doctor",), ("doctor", "-o", "json")):
            result = world.rotator(*args)
            for value in world.secret_values():
                assert value not in result.out and value not in result.err


class TestKubernetesRbac:
    """A verb the API server refuses is a failed kubernetes-rbac row."""

    def test_a_forbidden_verb_fails_naming_verb_resource_and_namespace(self, world: World) -> None:
        """patch refused on the workload: exit 1; the row names patch, deployments, namespace."""
        world.add_key_with_workload("agent")
        world.kube.forbid("patch", "deployments", NAMESPACE, name="agent")
        code, document = doctor_json(world)
        assert code == 1
        (row,) = failed(document)
        assert row["check"] == "kubernetes-rbac"
        assert (
            row["subject"] == f"deployments.apps/agent in namespace {NAMESPACE} (context sandbox)"
        )
        assert "patch deployments.apps/agent" in row["detail"]
        assert '"verbs": ["patch"]' in row["fix"] and '"resourceNames": ["agent"]' in row["fix"]

    def test_text_output_shows_the_fix_under_the_failure(self, world: World) -> None:
        """FAIL line, then the fix indented under it."""
        world.add_key_with_workload("agent")
        world.kube.forbid("update", "secrets", NAMESPACE)
        result = world.rotator("doctor")
        assert result.code == 1
        lines = result.out.splitlines()
        index = next(
            i for i, line in enumerate(lines) if line.startswith("  FAIL  kubernetes-rbac")
        )
        assert "update secrets/agent-secrets" in " ".join(lines[index : index + 3])
        assert any(
            line.strip().startswith("fix: add to the rotator's Role") for line in lines[index:]
        )
        assert lines[-1].endswith("1 failed")

    def test_denied_create_fails_only_when_the_secret_is_missing(self, world: World) -> None:
        """create is name-less and optional: a warning while the Secret exists, a failure before."""
        world.add_key("agent")
        world.kube.forbid("create", "secrets", NAMESPACE)
        code, document = doctor_json(world)
        assert code == 1
        (row,) = failed(document)
        assert "create secrets" in row["detail"] and "agent-secrets does not exist" in row["detail"]

        world.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent-secrets", "namespace": NAMESPACE},
                "data": {},
            }
        )
        code, document = doctor_json(world)
        assert code == 0, failed(document)
        (row,) = [
            r
            for r in rows(document, "agent", "kubernetes-rbac")
            if r["subject"].startswith("secrets (any name)")
        ]
        assert row["ok"] and row["fix"] is not None and "optional" in row["detail"]

    def test_discovery_needs_list_on_every_workload_kind(self, world: World) -> None:
        """A preset discovering its readers: list refused on DaemonSets fails; Jobs only warn."""
        world.keys.append(
            {
                "name": "agent",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "preset": {
                    "type": "suse-observability-agent",
                    "release": "sts",
                    "namespace": "obs",
                },
            }
        )
        world.kube.forbid("list", "daemonsets", "obs")
        world.kube.forbid("list", "cronjobs", "obs")
        code, document = doctor_json(world)
        assert code == 1
        (row,) = [r for r in failed(document) if r["check"] == "kubernetes-rbac"]
        assert row["subject"] == "daemonsets.apps (any name) in namespace obs (context sandbox)"
        # Discovery itself cannot list the DaemonSets either: the consumers check says why.
        (consumers,) = [r for r in failed(document) if r["check"] == "consumers"]
        assert "daemonsets" in consumers["detail"]
        assert "forbidden: list daemonsets.apps" in row["detail"]
        (cronjobs,) = [
            r for r in rows(document, "agent", "kubernetes-rbac") if "cronjobs" in r["subject"]
        ]
        assert cronjobs["ok"] and "optional" in cronjobs["detail"] and cronjobs["fix"]

    def test_an_unreachable_context_fails_once_and_skips_rbac(
        self, world: World, tmp_path: Path
    ) -> None:
        """A kubeconfig pointing nowhere: kubernetes-reachable fails, no rbac rows."""
        world.add_key("agent")
        world.kube.stop()
        code, document = doctor_json(world)
        assert code == 1
        (row,) = rows(document, "agent", "kubernetes-reachable")
        assert not row["ok"] and row["subject"] == "context sandbox"
        assert rows(document, "agent", "kubernetes-rbac") == []


class TestVault:
    """Vault: reachability, login, and the capabilities of each path."""

    def use_token(self, world: World, token: str) -> None:
        world.sections["vault"] = {
            "url": world.vault.url,
            "auth": {"method": "token", "token": token},
            "timeout": "5s",
        }

    def test_a_missing_capability_fails_vault_capabilities(self, world: World) -> None:
        """A token that may read but not update the data path: a failed row naming update."""
        world.add_key("agent")
        world.vault.set_policy(
            "partial",
            {
                "secret/data/stackstate/agent": ["read", "create"],
                "secret/metadata/stackstate/agent": ["read", "create", "update"],
            },
        )
        self.use_token(world, world.vault.create_token(["partial"]))
        code, document = doctor_json(world)
        assert code == 1
        (row,) = failed(document)
        assert row["check"] == "vault-capabilities"
        assert row["subject"] == "secret/data/stackstate/agent"
        assert "missing update" in row["detail"]
        assert 'path "secret/data/stackstate/agent"' in row["fix"]
        metadata = [
            r for r in rows(document, "agent", "vault-capabilities") if "metadata" in r["subject"]
        ]
        assert [r["ok"] for r in metadata] == [True]

    def test_a_token_that_may_not_ask_fails_with_the_reason(self, world: World) -> None:
        """Without the default policy Vault will not say: one failed row naming the cause."""
        world.add_key("agent")
        world.vault.set_policy(
            "paths",
            {
                "secret/data/stackstate/agent": ["read", "create", "update"],
                "secret/metadata/stackstate/agent": ["read", "create", "update"],
            },
        )
        self.use_token(world, world.vault.create_token(["paths"], no_default_policy=True))
        code, document = doctor_json(world)
        assert code == 1
        (row,) = failed(document)
        assert (row["check"], row["subject"]) == ("vault-capabilities", "sys/capabilities-self")
        assert "default policy" in row["fix"]

    def test_the_token_paths_fold_into_one_row(self, world: World) -> None:
        """lookup-self, renew-self and capabilities-self: one row per key, not three."""
        world.add_key("agent")
        _, document = doctor_json(world)
        subjects = [row["subject"] for row in rows(document, "agent", "vault-capabilities")]
        assert subjects == [
            "secret/data/stackstate/agent",
            "secret/metadata/stackstate/agent",
            "auth/token/lookup-self, auth/token/renew-self, sys/capabilities-self",
        ]

    def test_an_invalid_token_fails_vault_auth(self, world: World) -> None:
        """A revoked token: vault-auth fails, capabilities are not asked."""
        world.add_key("agent")
        token = world.vault.create_token(["default"])
        world.vault.revoke_token(token)
        self.use_token(world, token)
        code, document = doctor_json(world)
        assert code == 1
        assert [row["check"] for row in failed(document)] == ["vault-auth"]
        assert rows(document, "agent", "vault-capabilities") == []

    def test_a_sealed_vault_fails_vault_reachable(self, world: World) -> None:
        """Sealed: vault-reachable fails with the fix to unseal."""
        world.add_key("agent")
        world.vault.seal()
        code, document = doctor_json(world)
        assert code == 1
        (row,) = failed(document)
        assert row["check"] == "vault-reachable" and "sealed" in row["detail"]
        assert row["fix"] == "unseal Vault"


class TestStackState:
    """The StackState credential must be accepted and may manage keys of the kind."""

    def test_a_credential_without_the_permission_fails(self, world: World) -> None:
        """A service token whose role only ingests: stackstate-permission fails for its kind."""
        world.add_key("agent")
        _, ingest_only = world.stackstate.seed_key(
            "service-token", "ingest-only", expiration=None, roles=["stackstate-ingest-telemetry"]
        )
        world.sections["stackstate"] = {
            "url": world.stackstate.url,
            "service_token": ingest_only,
            "allow_insecure_http": True,
            "timeout": "5s",
        }
        code, document = doctor_json(world)
        assert code == 1
        (row,) = failed(document)
        assert row["check"] == "stackstate-permission"
        assert row["subject"] == "manage-service-tokens (service-token)"
        assert "lacks manage-service-tokens" in row["detail"]

    def test_an_unreachable_stackstate_fails_and_skips_the_permission(
        self, run_cli: CliRunner, stackstate: StackStateEmulator, write_config: Any
    ) -> None:
        """Nothing listening: stackstate-reachable fails; the permission is not asked."""
        data = sandbox_config(stackstate)
        stackstate.stop()
        path = write_config(data)
        result = run_cli("--config", str(path), "doctor", "-o", "json")
        assert result.code == 1
        document = json.loads(result.out)
        assert [row["check"] for row in rows(document, "agent")] == [
            "stackstate-reachable",
            "file-writable",
        ]
        assert not rows(document, "agent")[0]["ok"]


class TestConfigErrors:
    """Configuration problems exit 2, before anything is asked."""

    def test_missing_config_file(self, run_cli: CliRunner, tmp_path: Path) -> None:
        """A config file that does not exist: exit 2."""
        result = run_cli("--config", str(tmp_path / "nope.yaml"), "doctor")
        assert result.code == 2
        assert "not found" in result.err

    def test_unknown_key(self, world: World) -> None:
        """--key naming no managed key: exit 2 with the configured names."""
        world.add_key("agent")
        result = world.rotator("doctor", "--key", "nope")
        assert result.code == 2
        assert "nope" in result.err and "agent" in result.err


class TestSecretsAndReaders:
    """Ownership of each Secret and the workloads that read the key."""

    def test_chart_secret_is_reported_with_the_value_to_set(self, world: World) -> None:
        """A preset pointed at the Helm-rendered Secret fails secret-owner, naming the fix."""
        from rotator_sandbox.kubernetes_charts import seed_agent_chart

        seed_agent_chart(world.kube, "sts", NAMESPACE, api_key="value-from-helm")
        world.keys.append(
            {
                "name": "agent",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "preset": {
                    "type": "suse-observability-agent",
                    "release": "sts",
                    "namespace": NAMESPACE,
                    "secret_name": "sts-secrets",
                },
            }
        )
        code, document = doctor_json(world)
        assert code == 1
        (owner,) = rows(document, "agent", "secret-owner")
        assert owner["ok"] is False
        assert "Helm release sts" in owner["detail"]
        assert "allow_foreign_owner" in owner["fix"]

    def test_discovered_readers_and_migration_are_reported(self, world: World) -> None:
        """Readers of the rotator's Secret are listed; agents still on the chart's Secret fail
        the consumers check with the helm upgrade that fixes it."""
        from rotator_sandbox.kubernetes_charts import seed_agent_chart

        seed_agent_chart(world.kube, "sts", NAMESPACE, api_key="value-from-helm")
        world.keys.append(
            {
                "name": "agent",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "preset": {
                    "type": "suse-observability-agent",
                    "release": "sts",
                    "namespace": NAMESPACE,
                },
            }
        )
        code, document = doctor_json(world)
        assert code == 1
        problems = [r for r in rows(document, "agent", "consumers") if not r["ok"]]
        assert any("still read the key from another Secret" in r["detail"] for r in problems)
        assert any("global.apiKey.fromSecret=sts-rotated-api-key" in r["fix"] for r in problems)
        (owner,) = rows(document, "agent", "secret-owner")
        assert owner["ok"] is True  # the rotator's own Secret: not there yet, no other owner

        seed_agent_chart(world.kube, "sts", NAMESPACE, from_secret="sts-rotated-api-key")
        code, document = doctor_json(world)
        readers = [r for r in rows(document, "agent", "consumers") if r["ok"]]
        assert len(readers) == 5
        assert any("envFrom" in r["detail"] for r in readers)
        assert not [r for r in rows(document, "agent", "consumers") if not r["ok"]]
