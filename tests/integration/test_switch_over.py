"""End-to-end: consumers switch over, then the old key goes (presets, restarts, rollouts,
synced secrets, commands, revocation, sweep), against the emulators over real HTTP.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rotator.config import load_config
from rotator.engine.model import RunReport
from rotator.engine.run import run_once
from rotator.secrets import fingerprint
from rotator.wiring import build_runtime
from tests.plugins.world import NAMESPACE, World


def live_managed(world: World, kind: str, name: str) -> list[int]:
    """Ids of the StackState keys of managed key ``name``."""
    return [k["id"] for k in world.managed_keys(kind, name)]


def run_engine(world: World, now: datetime, **kwargs: object) -> RunReport:
    """One run through the engine API with a chosen clock (for switch_timeout)."""
    world.write_config()
    with build_runtime(load_config(world.config_path)) as runtime:
        return run_once(
            runtime.specs, runtime.stackstate, dry_run=False, clock=lambda: now, **kwargs
        )


def agent_workloads(world: World, release: str, secret: str, namespace: str = NAMESPACE) -> None:
    """Four agent workloads reading Secret ``secret`` through envFrom."""
    for kind, suffix in [
        ("DaemonSet", "node-agent"),
        ("DaemonSet", "logs-agent"),
        ("Deployment", "cluster-agent"),
        ("Deployment", "checks-agent"),
    ]:
        world.kube.add_workload(kind, namespace, f"{release}-{suffix}", env_from_secret=secret)


class TestPresets:
    """A full rotation for each preset ends with exactly one live managed key."""

    @pytest.mark.parametrize(
        ("preset", "data_key"),
        [("suse-observability-agent", "STS_API_KEY"), ("stackstate-k8s-agent", "sts-api-key")],
    )
    def test_agent_chart_presets_rotate_restart_and_revoke(
        self, world: World, preset: str, data_key: str
    ) -> None:
        """Bootstrap, forced rotation, one restart per workload per rotation, old key revoked."""
        secret = "sts-rotated-api-key"
        agent_workloads(world, "sts", secret)
        world.keys.append(
            {
                "name": "agent",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "preset": {"type": preset, "release": "sts", "namespace": NAMESPACE},
            }
        )
        world.settle()
        (first,) = live_managed(world, "service-token", "agent")
        assert world.kube.secret_data(NAMESPACE, secret)[data_key] == (
            world.stackstate.value_of("service-token", first)
        )
        assert world.restarts("daemonsets", "sts-node-agent", NAMESPACE) == 1
        result = world.rotator("rotate", "--force")
        assert result.code == 0, result.out + result.err
        world.settle()
        (second,) = live_managed(world, "service-token", "agent")
        assert second != first
        value = world.stackstate.value_of("service-token", second)
        assert world.kube.secret_data(NAMESPACE, secret)[data_key] == value
        for plural, name in [
            ("daemonsets", "sts-node-agent"),
            ("daemonsets", "sts-logs-agent"),
            ("deployments", "sts-cluster-agent"),
            ("deployments", "sts-checks-agent"),
        ]:
            assert world.restarts(plural, name) == 2

    def test_otel_collector_preset(self, world: World) -> None:
        """The collector's Secret gets the key and the collector Deployment (found because it
        reads the Secret through envFrom) is restarted."""
        world.kube.add_workload(
            "Deployment",
            "open-telemetry",
            "opentelemetry-collector",
            env_from_secret="open-telemetry-collector",
        )
        world.keys.append(
            {
                "name": "otel",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "preset": {"type": "otel-collector", "namespace": "open-telemetry"},
            }
        )
        world.settle()
        (key_id,) = live_managed(world, "service-token", "otel")
        data = world.kube.secret_data("open-telemetry", "open-telemetry-collector")
        assert data["API_KEY"] == world.stackstate.value_of("service-token", key_id)
        assert world.restarts("deployments", "opentelemetry-collector", "open-telemetry") == 1

    def test_linux_agent_preset_runs_systemctl(
        self, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The agent's YAML gets the key and ``systemctl restart`` runs once per rotation."""
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        calls = tmp_path / "systemctl.calls"
        fake = bin_dir / "systemctl"
        fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        agent_yaml = world.file_path("linux")
        agent_yaml.parent.mkdir(parents=True, exist_ok=True)
        agent_yaml.write_text("# agent\napi_key: old\n")
        world.keys.append(
            {
                "name": "linux",
                "kind": "ingestion-api-key",
                "preset": {"type": "linux-agent", "path": str(agent_yaml)},
            }
        )
        world.settle()
        (key_id,) = live_managed(world, "ingestion-api-key", "linux")
        assert world.file_value("linux") == world.stackstate.value_of("ingestion-api-key", key_id)
        assert calls.read_text().splitlines() == ["restart stackstate-agent"]
        assert world.rotator("rotate", "--force").code == 0
        world.settle()
        assert calls.read_text().splitlines() == ["restart stackstate-agent"] * 2
        assert len(live_managed(world, "ingestion-api-key", "linux")) == 1


class TestRollouts:
    """Revocation waits for rollouts that demonstrably completed."""

    def test_stalled_daemonset_never_revokes_and_times_out(self, world: World) -> None:
        """A rollout that never completes keeps the old key and fails with switch_timeout."""
        world.add_key_with_workload("agent", "DaemonSet")
        world.settle()
        (old,) = live_managed(world, "service-token", "agent")
        world.kube.stall("DaemonSet", NAMESPACE, "agent")
        now = datetime.now(UTC)
        report = run_engine(world, now, force=True)
        assert report.results[0].outcome == "rotated"
        waiting = run_engine(world, now + timedelta(minutes=1))
        assert waiting.results[0].plan.decision == "switch"
        assert old in live_managed(world, "service-token", "agent")
        late = run_engine(world, now + timedelta(minutes=6))
        assert late.results[0].outcome == "failed"
        assert late.results[0].plan.reason.startswith("switch_timeout")
        assert "kubernetes-workload" in late.results[0].plan.reason
        assert old in live_managed(world, "service-token", "agent")

    def test_progress_deadline_exceeded_fails_without_revoking(self, world: World) -> None:
        """A Deployment whose rollout exceeds its deadline fails the key; the old key stays."""
        world.add_key_with_workload("agent", "Deployment")
        world.settle()
        (old,) = live_managed(world, "service-token", "agent")
        world.kube.stall("Deployment", NAMESPACE, "agent")
        assert world.rotator("rotate", "--force").code == 0
        result = world.rotator("rotate")
        assert result.code == 1
        assert "ProgressDeadlineExceeded" in result.out
        assert old in live_managed(world, "service-token", "agent")

    def test_paused_deployment_is_reported_not_restarted(self, world: World) -> None:
        """A paused Deployment holds the rotation back before any key is created: the key
        fails naming it (step preflight), nothing is patched, the old key stays the only one."""
        world.add_key_with_workload("agent", "Deployment")
        world.settle()
        (old,) = live_managed(world, "service-token", "agent")
        world.kube.pause(NAMESPACE, "agent")
        dry = world.rotator("rotate", "--force", "--dry-run", "-o", "json")
        assert dry.code == 1
        (planned,) = json.loads(dry.out)["keys"]
        assert planned["decision"] == "blocked"
        assert planned["failure"]["step"] == "preflight"
        result = world.rotator("rotate", "--force")
        assert result.code == 1
        assert "paused" in result.out
        assert world.restarts("deployments", "agent", NAMESPACE) == 1  # the bootstrap's only
        assert live_managed(world, "service-token", "agent") == [old]

    def test_dry_run_names_the_consumer_blocking_revocation(self, world: World) -> None:
        """The plan says which consumer is not switched and why."""
        world.add_key_with_workload("agent", "DaemonSet")
        world.settle()
        world.kube.stall("DaemonSet", NAMESPACE, "agent")
        assert world.rotator("rotate", "--force").code == 0
        plan = world.rotator("rotate", "--dry-run", "--output", "json")
        (entry,) = json.loads(plan.out)["keys"]
        assert entry["decision"] == "switch"
        assert f"kubernetes-workload:sandbox/{NAMESPACE}/DaemonSet/agent" in entry["reason"]
        assert any(a["action"] == "await" for a in entry["actions"])


class TestSyncedSecret:
    """A Secret synced from Vault switches when it holds the new value."""

    def test_revocation_waits_until_the_synced_secret_matches(self, world: World) -> None:
        """The switch-over waits while the synced Secret holds another value and completes once
        it matches (a bootstrap: no previous key, so nothing is revoked)."""
        world.add_key(
            "agent",
            consumers=[
                {
                    "type": "synced-secret",
                    "namespace": "apps",
                    "name": "agent-key",
                    "key": "api_key",
                }
            ],
        )
        world.rotator("rotate")
        waiting = world.rotator("rotate", "--output", "json")
        (entry,) = json.loads(waiting.out)["keys"]
        assert entry["decision"] == "switch"
        assert "not synced yet" in entry["reason"]
        value = world.vault_value("agent")
        assert value is not None
        # What ESO/VSO would do: copy the Vault value into the synced Secret.
        world.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent-key", "namespace": "apps"},
                "stringData": {"api_key": value},
            }
        )
        settled = world.rotator("rotate", "--output", "json")
        (entry,) = json.loads(settled.out)["keys"]
        assert entry["decision"] == "switch"
        assert entry["reason"].startswith("switch complete; no previous key")
        assert entry["outcome"] == "unchanged"
        assert world.secret_annotations("agent")["rotator.stackstate.io/fingerprint"] == (
            fingerprint(value)
        )


class TestCommandConsumer:
    """A command consumer's failure blocks revocation."""

    def test_failing_command_blocks_revocation(self, world: World, tmp_path: Path) -> None:
        """A command exiting 1 fails the key; the previous key stays live."""
        script = tmp_path / "restart.sh"
        script.write_text("#!/bin/sh\necho 'unit not found' >&2\nexit 1\n")
        script.chmod(0o755)
        world.add_key("agent")
        world.settle()
        (old,) = live_managed(world, "service-token", "agent")
        world.keys[0]["consumers"] = [{"type": "command", "command": [str(script)]}]
        result = world.rotator("rotate", "--force")
        assert result.code == 1
        assert "unit not found" in result.out
        again = world.rotator("rotate")
        assert again.code == 1
        assert old in live_managed(world, "service-token", "agent")


class TestCoalescing:
    """One restart per workload per run, and none when nothing changed."""

    def test_two_keys_one_workload_one_restart_and_no_restart_on_noop(self, world: World) -> None:
        """A Deployment consuming two keys rotated together is restarted once; later runs never."""
        world.kube.add_workload("Deployment", NAMESPACE, "collector")
        consumer = {
            "type": "kubernetes-workload",
            "namespace": NAMESPACE,
            "kind": "Deployment",
            "name": "collector",
        }
        world.add_key("metrics", consumers=[consumer])
        world.add_key("traces", consumers=[consumer])
        world.settle()
        assert world.restarts("deployments", "collector", NAMESPACE) == 1
        world.kube.clear_log()
        assert world.rotator("rotate", "--force").code == 0
        world.settle()
        assert world.restarts("deployments", "collector", NAMESPACE) == 1
        world.kube.clear_log()
        for _ in range(2):
            assert world.rotator("rotate").code == 0
        assert world.restarts("deployments", "collector", NAMESPACE) == 0
        assert [r for r in world.kube.log if r.method in ("PATCH", "PUT")] == []


class TestSweep:
    """Orphans are deleted; foreign keys never."""

    def test_crash_left_orphan_is_swept_and_foreign_keys_stay(self, world: World) -> None:
        """An old unreferenced agent-<timestamp> key goes; hand-made and other names stay."""
        world.add_key("agent")
        world.settle()
        long_ago = datetime.now(UTC) - timedelta(days=2)
        expiry = datetime.now(UTC) + timedelta(days=30)
        orphan_id, _ = world.stackstate.seed_key(
            "service-token",
            f"agent-{long_ago:%Y%m%dT%H%M%SZ}",
            expiration=expiry,
            roles=["stackstate-ingest-telemetry"],
        )
        foreign_id, _ = world.stackstate.seed_key(
            "service-token", "agent-hand-made", expiration=expiry, roles=["r"]
        )
        other_id, _ = world.stackstate.seed_key(
            "service-token", f"agentx-{long_ago:%Y%m%dT%H%M%SZ}", expiration=expiry, roles=["r"]
        )
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        assert "sweep" in result.out
        ids = {k["id"] for k in world.stackstate.keys("service-token")}
        assert orphan_id not in ids
        assert {foreign_id, other_id} <= ids
        assert len(live_managed(world, "service-token", "agent")) == 1
