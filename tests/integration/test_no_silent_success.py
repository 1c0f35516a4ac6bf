"""No silent success (issue 9): a key that is not healthy says so, with its failure as data,
before anything is created where possible; a switch-over protects only what needs protecting.

Each test is one scenario that the rotator used to report as fine.
"""

from __future__ import annotations

import json

from structlog.testing import capture_logs

from rotator.config import load_config
from rotator.engine.run import run_once
from rotator.wiring import build_runtime
from tests.plugins.world import NAMESPACE, World


def otel_key(world: World) -> None:
    """Managed key ``otel`` delivered by the otel-collector preset."""
    world.kube.create_namespace("open-telemetry")
    world.keys.append(
        {
            "name": "otel",
            "kind": "service-token",
            "roles": ["stackstate-ingest-telemetry"],
            "preset": {"type": "otel-collector", "namespace": "open-telemetry"},
        }
    )


class TestConsumersAreResolvedFirst:
    """A consumer that is not there is found before a key is created."""

    def test_otel_preset_without_a_collector_is_blocked_before_any_create(
        self, world: World
    ) -> None:
        """No workload reads the collector's Secret: dry-run and run say blocked, exit 1, and
        no key exists afterwards (it used to rotate and exit 0)."""
        otel_key(world)
        dry = world.rotator("rotate", "--dry-run", "--output", "json")
        assert dry.code == 1
        (entry,) = json.loads(dry.out)["keys"]
        assert entry["decision"] == "blocked"
        assert entry["failure"]["step"] == "preflight"
        assert "no Deployment, DaemonSet or StatefulSet" in entry["reason"]
        run = world.rotator("rotate", "--output", "json")
        assert run.code == 1
        assert world.managed_keys("service-token", "otel") == []
        assert world.mutating_requests()["stackstate"] == []

    def test_every_failed_key_is_logged_with_step_and_category(self, world: World) -> None:
        """The run logs one key.failed line per failed key: step, category and reason."""
        otel_key(world)
        world.write_config()
        with build_runtime(load_config(world.config_path)) as runtime, capture_logs() as logs:
            report = run_once(runtime.specs, runtime.stackstate, dry_run=False)
        assert report.failed
        (line,) = [entry for entry in logs if entry["event"] == "key.failed"]
        assert (line["step"], line["category"]) == ("preflight", "human")
        assert line["key"] == "otel"


class TestStatusSaysUnknown:
    """status never claims what it could not read."""

    def test_targets_unreadable_are_unknown_and_named(self, world: World) -> None:
        """With Vault answering 503, target agreement is unknown and the system is named."""
        world.add_key("agent")
        world.settle()
        world.vault.fail_next("GET", r"/v1/secret/.*", 503, count=None)
        result = world.rotator("status")
        assert result.code == 1
        header, row = result.out.splitlines()[:2]
        agree_column = header.index("TARGETS AGREE")
        assert row[agree_column:].startswith("unknown")
        assert "could not read" in result.out
        assert "vault-kv" in result.out.split("could not read", 1)[1]
        document = json.loads(world.rotator("status", "--output", "json").out)
        (entry,) = document["keys"]
        assert entry["targets_agree"] is None
        assert entry["failure"]["step"] == "observe"
        assert entry["failure"]["category"] == "retry"


class TestSwitchProtectsOnlyThePreviousKey:
    """A switch-over with nothing to protect never holds anything back."""

    def test_force_right_after_a_bootstrap_rotates(self, world: World) -> None:
        """After a bootstrap (no previous key) a forced rotation goes ahead at once."""
        world.add_key_with_workload("agent")
        assert world.rotator("rotate").code == 0  # bootstrap: pushed, restarted
        forced = world.rotator("rotate", "--force", "--output", "json")
        assert forced.code == 0, forced.out
        (entry,) = json.loads(forced.out)["keys"]
        assert entry["decision"] == "rotate"
        assert entry["outcome"] == "rotated"

    def test_named_key_that_cannot_be_forced_exits_1(self, world: World) -> None:
        """Mid-switch with a previous key to protect, --force --key reports blocked, exit 1;
        a plain --force over every key reports it and exits 0."""
        world.add_key_with_workload("agent")
        world.settle()
        world.kube.set_rollout_seconds("Deployment", NAMESPACE, "agent", 3600)
        assert world.rotator("rotate", "--force").code == 0  # rotated; the rollout takes 1 h
        named = world.rotator("rotate", "--force", "--key", "agent", "--output", "json")
        assert named.code == 1
        (entry,) = json.loads(named.out)["keys"]
        assert entry["decision"] == "blocked"
        assert (entry["failure"]["step"], entry["failure"]["category"]) == ("switch", "wait")
        everything = world.rotator("rotate", "--force", "--output", "json")
        assert everything.code == 0
        assert json.loads(everything.out)["keys"][0]["decision"] == "blocked"
