"""End-to-end: ``rotator rotate`` against StackState, Vault and Kubernetes emulators over HTTP.

Each test drives the real CLI in-process; the adapters talk to the emulators through httpx, hvac
and the official Kubernetes client on 127.0.0.1. Nothing of ours is replaced.
"""

from __future__ import annotations

import json
import stat

import pytest

from rotator.cli.lock import run_lock
from rotator.secrets import fingerprint
from tests.plugins.world import World, metadata_fingerprint

KINDS = ["service-token", "ingestion-api-key"]


def assert_no_secret_in(world: World, *texts: str) -> None:
    """No value StackState handed out, and no configured credential, appears in ``texts``."""
    for value in world.secret_values():
        for text in texts:
            assert value not in text


class TestBootstrap:
    """Targets that hold nothing get a new, verified key."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_bootstrap_writes_one_accepted_key_to_all_three_targets(
        self, world: World, kind: str
    ) -> None:
        """One managed key is created and the Secret, Vault path and file all hold it."""
        world.add_key("agent", kind)
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        (created,) = world.managed_keys(kind, "agent")
        value = world.stackstate.value_of(kind, created["id"])
        assert world.values("agent") == [value, value, value]
        assert fingerprint(value) in metadata_fingerprint(
            world.secret_annotations("agent"), "STS_API_KEY"
        )
        assert world.secret_annotations("agent")["rotator.stackstate.io/key-id"] == str(
            created["id"]
        )
        assert "rotated" in result.out
        assert_no_secret_in(world, result.out, result.err)

    def test_file_target_keeps_yaml_comments_and_gets_mode_0600(self, world: World) -> None:
        """The agent's YAML keeps its comments and other fields; its mode becomes 0600."""
        world.add_key("agent")
        path = world.file_path("agent")
        before = path.read_text()
        assert world.rotator("rotate").code == 0
        after = path.read_text()
        value = world.file_value("agent")
        assert value is not None
        changed = [
            (b, a) for b, a in zip(before.splitlines(), after.splitlines(), strict=True) if b != a
        ]
        assert len(before.splitlines()) == len(after.splitlines())
        ((old_line, new_line),) = changed
        assert old_line.startswith("api_key:")
        assert new_line.startswith(f'api_key: "{value}"')
        assert new_line.endswith("# managed by the rotator")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_run_after_the_switch_over_changes_nothing(self, world: World) -> None:
        """Once the bootstrap's switch-over is recorded, a run sends no mutating request."""
        world.add_key("agent")
        assert world.rotator("rotate").code == 0
        second = world.rotator("rotate")
        assert second.code == 0
        assert "decision: switch: switch complete; no previous key" in second.out
        assert "revoked" not in second.out
        world.clear_logs()
        result = world.rotator("rotate")
        assert result.code == 0
        assert world.mutating_requests() == {"stackstate": [], "vault": [], "kubernetes": []}
        assert "outcome:  unchanged" in result.out


class TestRotation:
    """A key close to expiry is replaced in every target."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_near_expiry_key_is_rotated_into_all_three_targets(
        self, world: World, kind: str
    ) -> None:
        """A key expiring in 20d with rotate_before 30d is replaced; the new one is everywhere."""
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent", kind)
        world.settle()
        (old,) = world.managed_keys(kind, "agent")
        world.defaults = {"validity": "90d", "rotate_before": "30d"}
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        assert "decision: rotate" in result.out
        keys = world.managed_keys(kind, "agent")
        assert len(keys) == 2  # the old key stays until the consumers switched
        (new,) = [k for k in keys if k["id"] != old["id"]]
        value = world.stackstate.value_of(kind, new["id"])
        assert world.values("agent") == [value, value, value]
        annotations = world.secret_annotations("agent")
        assert annotations["rotator.stackstate.io/previous-key-id"] == str(old["id"])
        assert_no_secret_in(world, result.out, result.err)
        # No consumers and no grace period: the next run revokes the old key.
        revoke = world.rotator("rotate")
        assert "decision: revoke" in revoke.out
        assert [k["id"] for k in world.managed_keys(kind, "agent")] == [new["id"]]

    def test_forced_rotation_in_the_same_second_never_reuses_a_name(self, world: World) -> None:
        """Two rotations within one second still give keys of distinct names."""
        world.add_key("agent")
        world.settle()
        assert world.rotator("rotate", "--force").code == 0
        names = [k["name"] for k in world.managed_keys("service-token", "agent")]
        assert len(names) == 2
        assert len(set(names)) == 2


class TestDryRun:
    """``--dry-run`` only reads."""

    def test_dry_run_sends_no_mutating_request_and_prints_no_secret(self, world: World) -> None:
        """A dry-run over a due key plans the rotation but writes nothing anywhere."""
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent")
        world.add_key("ingest", "ingestion-api-key")
        world.settle()
        before = [world.values("agent"), world.values("ingest")]
        world.defaults = {"validity": "90d", "rotate_before": "30d"}
        world.clear_logs()
        text = world.rotator("rotate", "--dry-run")
        as_json = world.rotator("rotate", "--dry-run", "--output", "json")
        assert text.code == 0 and as_json.code == 0
        mutating = world.mutating_requests()
        # Verifying a held ingestion key is a POST by API design; it is read-only and allowed.
        assert [r for r in mutating["stackstate"] if not r.endswith("/authorize")] == []
        assert mutating["vault"] == []
        assert mutating["kubernetes"] == []
        assert [world.values("agent"), world.values("ingest")] == before
        document = json.loads(as_json.out)
        assert document["dry_run"] is True
        assert [k["decision"] for k in document["keys"]] == ["rotate", "rotate"]
        assert all(k["outcome"] == "planned" for k in document["keys"])
        assert [a["action"] for a in document["keys"][0]["actions"]] == [
            "create",
            "verify",
            "push",
            "push",
            "push",
        ]
        assert_no_secret_in(world, text.out, text.err, as_json.out, as_json.err)


class TestAdopt:
    """Values the rotator did not create are replaced but never deleted."""

    @pytest.mark.parametrize("adopt_id", [False, True])
    def test_adopted_key_is_replaced_and_never_deleted(self, world: World, adopt_id: bool) -> None:
        """A hand-made token in every target is replaced; the hand-made key stays in StackState."""
        key_id, value = world.stackstate.seed_key(
            "service-token", "hand-made", expiration=None, roles=["stackstate-ingest-telemetry"]
        )
        extra = {"adopt_key_id": key_id} if adopt_id else {}
        world.add_key("agent", **extra)
        world.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent-secrets", "namespace": "suse-observability"},
                "stringData": {"STS_API_KEY": value, "OTHER": "keep"},
            }
        )
        world.vault.write("secret", "stackstate/agent", {"api_key": value})
        path = world.file_path("agent")
        path.write_text(path.read_text().replace('api_key: ""', f"api_key: {value}"))
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        assert "adopted" in result.out
        ids = {k["id"] for k in world.stackstate.keys("service-token")}
        assert key_id in ids
        (new,) = world.managed_keys("service-token", "agent")
        new_value = world.stackstate.value_of("service-token", new["id"])
        assert world.values("agent") == [new_value] * 3
        assert world.kube.secret_data("suse-observability", "agent-secrets")["OTHER"] == "keep"


class TestRepair:
    """A push that stopped half-way is completed by the next run."""

    def test_failed_second_push_is_repaired_without_a_new_key(self, world: World) -> None:
        """Vault fails during the first run; the second copies the new value, creating nothing."""
        world.add_key("agent")
        world.vault.fail_next("POST", r"/v1/secret/data/stackstate/agent", 500, count=1000)
        first = world.rotator("rotate")
        assert first.code == 1
        assert "failed" in first.out
        secret, vaulted, filed = world.values("agent")
        assert secret is not None and vaulted is None and filed is None
        world.vault.clear_faults()
        second = world.rotator("rotate")
        assert second.code == 0, second.out + second.err
        assert "repair" in second.out
        assert world.values("agent") == [secret, secret, secret]
        assert len(world.managed_keys("service-token", "agent")) == 1


class TestConflicts:
    """Concurrent writers are handled by optimistic concurrency."""

    def test_secret_conflict_is_retried_and_other_data_keys_survive(self, world: World) -> None:
        """A 409 on the Secret update is retried; the Secret's other keys are untouched."""
        world.add_key("agent")
        world.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "agent-secrets",
                    "namespace": "suse-observability",
                    "labels": {"app": "agent"},
                },
                "stringData": {"OTHER": "keep-me"},
            }
        )
        world.kube.conflict_next_update("secrets", "suse-observability", "agent-secrets", count=2)
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        data = world.kube.secret_data("suse-observability", "agent-secrets")
        assert data["OTHER"] == "keep-me"
        assert data["STS_API_KEY"] == world.vault_value("agent")
        conflicts = [r for r in world.kube.log if r.method == "PUT" and r.status == 409]
        assert len(conflicts) == 2

    def test_vault_cas_conflict_is_retried(self, world: World) -> None:
        """A check-and-set mismatch on the Vault write is re-read and retried once."""
        world.add_key("agent")
        world.vault.write("secret", "stackstate/agent", {"other": "field"})
        world.vault.fail_next(
            "POST",
            r"/v1/secret/data/stackstate/agent",
            400,
            body={"errors": ["check-and-set parameter did not match the current version"]},
        )
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        stored = world.vault.read("secret", "stackstate/agent")
        assert stored is not None
        assert world.vault_value("agent") == world.secret_value("agent")


class TestFailures:
    """Failures stop one key, keep old values and exit 1."""

    def test_sealed_vault_fails_the_key_and_leaves_old_values(self, world: World) -> None:
        """With Vault sealed nothing is created or changed and the run exits 1."""
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent")
        assert world.rotator("rotate").code == 0
        before = world.values("agent")
        keys_before = world.managed_keys("service-token", "agent")
        world.defaults = {"validity": "90d", "rotate_before": "30d"}
        world.vault.seal()
        result = world.rotator("rotate")
        assert result.code == 1
        assert "sealed" in result.out.lower() or "unavailable" in result.out.lower()
        assert world.managed_keys("service-token", "agent") == keys_before
        world.vault.unseal()
        assert world.values("agent") == before

    @pytest.mark.parametrize("kind", KINDS)
    def test_failed_verify_deletes_the_new_key_and_keeps_targets(
        self, world: World, kind: str
    ) -> None:
        """A new key StackState refuses is deleted; targets keep their values; exit 1."""
        if kind == "service-token":
            world.add_key("agent", kind, roles=["no-such-role"])
        else:
            world.add_key("agent", kind)
            world.stackstate.fail_next("POST", r"/api/security/ingestion/authorize", 403)
        result = world.rotator("rotate")
        assert result.code == 1
        assert "deleted" in result.out
        assert world.managed_keys(kind, "agent") == []
        assert world.values("agent") == [None, None, None]

    def test_one_failing_key_does_not_stop_another(self, world: World) -> None:
        """Key ``bad`` fails (Secret forbidden); key ``good`` still rotates; exit 1."""
        world.add_key("bad")
        world.add_key("good")
        world.kube.forbid("get", "secrets", "suse-observability", name="bad-secrets")
        result = world.rotator("rotate", "--output", "json")
        assert result.code == 1
        document = {k["key"]: k for k in json.loads(result.out)["keys"]}
        assert document["bad"]["outcome"] == "failed"
        assert "forbidden" in document["bad"]["error"].lower()
        assert document["good"]["outcome"] == "rotated"
        assert world.values("good")[0] is not None
        assert world.managed_keys("service-token", "bad") == []


class TestStatus:
    """``rotator status`` reports without changing anything."""

    def test_status_reports_expiry_agreement_and_next_action(self, world: World) -> None:
        """Status shows the current key, days left, agreement and the next decision; read-only."""
        world.add_key("agent")
        world.settle()
        world.clear_logs()
        result = world.rotator("status", "--output", "json")
        assert result.code == 0, result.err
        (entry,) = json.loads(result.out)["keys"]
        assert entry["decision"] == "ok"
        assert entry["targets_agree"] is True
        assert 89 <= entry["days_left"] <= 90
        assert entry["current"]["name"].startswith("agent-")
        table = world.rotator("status")
        assert "TARGETS AGREE" in table.out and "agent" in table.out
        assert world.mutating_requests() == {"stackstate": [], "vault": [], "kubernetes": []}

    def test_unknown_key_selection_is_a_usage_error(self, world: World) -> None:
        """``--key`` naming no managed key exits 2 and changes nothing."""
        world.add_key("agent")
        result = world.rotator("rotate", "--key", "nope")
        assert result.code == 2
        assert "nope" in result.err
        assert world.mutating_requests()["stackstate"] == []


class TestLock:
    """Two one-shot runs never act at once."""

    def test_second_run_refuses_while_the_lock_is_held(self, world: World) -> None:
        """While another run holds the lock, rotate exits 1 and creates nothing."""
        world.add_key("agent")
        lock_path = world.root / "rotate.lock"
        with run_lock(lock_path):
            result = world.rotator("rotate", "--lock-file", str(lock_path))
        assert result.code == 1
        assert "another rotator run holds" in result.err
        assert world.managed_keys("service-token", "agent") == []
        assert world.rotator("rotate", "--lock-file", str(lock_path)).code == 0

    def test_dry_run_ignores_the_lock(self, world: World) -> None:
        """A dry-run plans even while a real run holds the lock."""
        world.add_key("agent")
        lock_path = world.root / "rotate.lock"
        with run_lock(lock_path):
            assert world.rotator("rotate", "--dry-run", "--lock-file", str(lock_path)).code == 0
