"""The real deployment: an installation shaped like the current suse-observability-agent chart
(five workloads, the rbac-agent reading the whole Secret through ``envFrom``, a Helm-rendered
``<release>-secrets``), rotated by the preset with discovery through the real CLI.

What must hold: every reader rolls out onto the new key before the old one is deleted (I2); the
rotator never writes the Secret Helm renders; a ``helm upgrade`` that re-renders it changes
nothing the agents read; and an installation still on the chart's own Secret is migrated without
an ingestion gap (I1).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from rotator_sandbox.kubernetes_charts import seed_agent_chart
from tests.plugins.world import NAMESPACE, World

RELEASE = "sts"
OWN = f"{RELEASE}-rotated-api-key"
CHART_SECRET = f"{RELEASE}-secrets"
READERS = [
    ("daemonsets", f"{RELEASE}-node-agent"),
    ("daemonsets", f"{RELEASE}-logs-agent"),
    ("deployments", f"{RELEASE}-cluster-agent"),
    ("deployments", f"{RELEASE}-checks-agent"),
    ("deployments", f"{RELEASE}-rbac-agent"),
]


def add_agent_key(world: World, **extra: Any) -> None:
    """Managed key ``agent`` delivered by the suse-observability-agent preset."""
    preset = {"type": "suse-observability-agent", "release": RELEASE, "namespace": NAMESPACE}
    preset.update(extra.pop("preset", {}))
    world.keys.append(
        {
            "name": "agent",
            "kind": "service-token",
            "roles": ["stackstate-ingest-telemetry"],
            "preset": preset,
            **extra,
        }
    )


def secret_value(world: World, name: str) -> str | None:
    """STS_API_KEY of Secret ``name`` in the agents' namespace."""
    secret = world.kube.get("secrets", NAMESPACE, name)
    data = (secret or {}).get("data") or {}
    return base64.b64decode(data["STS_API_KEY"]).decode() if "STS_API_KEY" in data else None


def live_ids(world: World) -> list[int]:
    """Ids of the managed keys of ``agent``."""
    return [int(k["id"]) for k in world.managed_keys("service-token", "agent")]


def accepted(world: World, value: str | None) -> bool:
    """Whether StackState still has a key with this value."""
    return value is not None and world.key_id_of("service-token", value) is not None


def assert_no_leak(world: World, *outputs: str) -> None:
    """No value StackState handed out (nor a credential) appears in any output (I4)."""
    text = "\n".join(outputs)
    for value in world.secret_values():
        assert value not in text


def hand_made_key(world: World) -> tuple[int, str]:
    """A service token created by hand (``keys create``), as an installation uses today."""
    result = world.rotator(
        "keys",
        "create",
        "--kind",
        "service-token",
        "--name",
        "agent-by-hand",
        "--roles",
        "stackstate-ingest-telemetry",
        "--output",
        "json",
    )
    assert result.code == 0, result.out + result.err
    created = json.loads(result.out)
    return int(created["id"]), str(created["value"])


class TestChartShapedInstallation:
    """The preset with discovery over the chart's real shape."""

    def test_dry_run_lists_all_five_readers_and_the_helm_value(self, world: World) -> None:
        """Discovery finds the rbac-agent's envFrom too; the plan prints the chart value."""
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, from_secret=OWN)
        add_agent_key(world)
        result = world.rotator("rotate", "--dry-run", "--output", "json")
        assert result.code == 0, result.out + result.err
        (entry,) = json.loads(result.out)["keys"]
        assert entry["decision"] == "bootstrap"
        found = {r["id"].rsplit("/", 1)[1]: r["how"] for r in entry["readers"]}
        assert sorted(found) == sorted(name for _, name in READERS)
        assert "envFrom" in found[f"{RELEASE}-rbac-agent"]
        assert "secretKeyRef" in found[f"{RELEASE}-node-agent"]
        assert entry["helm_values"] == {"global.apiKey.fromSecret": OWN}
        restarts = [a["target"] for a in entry["actions"] if a["action"] == "restart"]
        assert len(restarts) == 5
        text = world.rotator("rotate", "--dry-run")
        assert f"--set global.apiKey.fromSecret={OWN}" in text.out
        assert world.mutating_requests()["kubernetes"] == []

    def test_every_reader_rolls_out_before_the_old_key_goes(self, world: World) -> None:
        """Bootstrap restarts all five; a rotation restarts all five again and revokes only
        after they switched; a helm upgrade re-rendering the chart's Secret changes nothing."""
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, from_secret=OWN)
        add_agent_key(world)
        world.settle()
        (first,) = live_ids(world)
        assert secret_value(world, OWN) == world.stackstate.value_of("service-token", first)
        assert [world.restarts(p, n) for p, n in READERS] == [1] * 5

        rotated = world.rotator("rotate", "--force")
        assert rotated.code == 0, rotated.out + rotated.err
        # Pushed and restarted; the old key is still live until the switch-over is proven.
        assert first in live_ids(world)
        assert [world.restarts(p, n) for p, n in READERS] == [2] * 5
        world.settle()
        (second,) = live_ids(world)
        assert second != first
        assert secret_value(world, OWN) == world.stackstate.value_of("service-token", second)

        # helm upgrade: the chart re-renders its own Secret with the value in its values.
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, from_secret=OWN, api_key="helm-value")
        after = world.rotator("rotate", "--output", "json")
        assert after.code == 0, after.out + after.err
        (entry,) = json.loads(after.out)["keys"]
        assert entry["decision"] == "ok"
        assert secret_value(world, OWN) == world.stackstate.value_of("service-token", second)
        assert_no_leak(world, rotated.out, rotated.err, after.out, after.err)

    def test_target_on_the_helm_rendered_secret_is_refused(self, world: World) -> None:
        """Pointing the preset at <release>-secrets fails the key naming the chart value; nothing
        is written anywhere and no key is created."""
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, api_key="value-from-helm")
        add_agent_key(world, preset={"secret_name": CHART_SECRET})
        world.clear_logs()
        result = world.rotator("rotate", "--output", "json")
        assert result.code == 1
        (entry,) = json.loads(result.out)["keys"]
        assert entry["decision"] == "blocked"
        assert entry["failure"]["step"] == "preflight"
        assert entry["failure"]["category"] == "human"
        assert "Helm release" in entry["reason"]
        assert "global.apiKey.fromSecret" in entry["reason"]
        # Only the RotationFailed Event telling `kubectl describe` why: no key, no target write.
        written = world.mutating_requests()
        written["kubernetes"] = [w for w in written["kubernetes"] if not w.endswith("/events")]
        assert written == {"stackstate": [], "vault": [], "kubernetes": []}
        assert [e["reason"] for e in world.kube.objects("events", NAMESPACE)] == ["RotationFailed"]
        assert live_ids(world) == []
        assert secret_value(world, CHART_SECRET) == "value-from-helm"

    def test_allow_foreign_owner_writes_with_a_warning(self, world: World) -> None:
        """The per-target override writes the Helm-owned Secret and says so in every plan."""
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, api_key="value-from-helm")
        world.keys.append(
            {
                "name": "agent",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "targets": [
                    {
                        "type": "kubernetes-secret",
                        "namespace": NAMESPACE,
                        "name": CHART_SECRET,
                        "key": "STS_API_KEY",
                        "allow_foreign_owner": True,
                    }
                ],
                "consumers": [
                    {"type": "kubernetes-workload", "namespace": NAMESPACE, "discover": True}
                ],
            }
        )
        result = world.rotator("rotate", "--dry-run", "--output", "json")
        (entry,) = json.loads(result.out)["keys"]
        assert any("allow_foreign_owner" in w for w in entry["warnings"])


class TestMigration:
    """An installation on the chart's own Secret moves to the rotator's without a gap."""

    def test_adopt_then_helm_upgrade_then_rotate(self, world: World) -> None:
        """Run 1 adopts the key in use and blocks for the helm upgrade; after it, the key is
        replaced and the hand-made key revoked only once every agent switched."""
        by_hand, value = hand_made_key(world)
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, api_key=value)
        add_agent_key(world, adopt_key_id=by_hand)

        first = world.rotator("rotate", "--output", "json")
        assert first.code == 1
        (entry,) = json.loads(first.out)["keys"]
        assert entry["decision"] == "blocked"
        assert (entry["failure"]["step"], entry["failure"]["category"]) == ("preflight", "human")
        assert "global.apiKey.fromSecret" in entry["reason"]
        assert secret_value(world, OWN) == value  # adopted: copied, not created
        assert live_ids(world) == []
        assert [world.restarts(p, n) for p, n in READERS] == [0] * 5
        assert accepted(world, secret_value(world, CHART_SECRET))  # the agents' key still works

        # The operator runs the printed helm upgrade: the agents roll onto the same key.
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, api_key=value, from_secret=OWN)
        assert accepted(world, secret_value(world, OWN))
        world.settle()
        (new,) = live_ids(world)
        assert secret_value(world, OWN) == world.stackstate.value_of("service-token", new)
        assert [world.restarts(p, n) for p, n in READERS] == [1] * 5
        assert world.key_id_of("service-token", value) is None  # adopt_key_id revoked at last
        settled = world.rotator("rotate", "--output", "json")
        assert json.loads(settled.out)["keys"][0]["decision"] == "ok"
        assert_no_leak(world, first.out, first.err, settled.out, settled.err)

    def test_key_the_chart_secret_still_holds_is_never_swept(self, world: World) -> None:
        """A key an older setup wrote into <release>-secrets (rotator metadata included) stays
        live while the agents read it, however old it is."""
        world.defaults = {"orphan_min_age": "1s"}
        seed_agent_chart(world.kube, RELEASE, NAMESPACE, api_key="placeholder")
        # An older rotator wrote the chart's Secret directly (allowed back then).
        world.keys.append(
            {
                "name": "agent",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "targets": [
                    {
                        "type": "kubernetes-secret",
                        "namespace": NAMESPACE,
                        "name": CHART_SECRET,
                        "key": "STS_API_KEY",
                        "allow_foreign_owner": True,
                    }
                ],
            }
        )
        world.settle()
        (old,) = live_ids(world)
        # Upgrade to the preset: the rotator's own Secret, discovery, the chart Secret legacy.
        world.keys.clear()
        add_agent_key(world)
        result = world.rotator("rotate", "--output", "json")
        assert result.code == 1  # agents still on the chart's Secret
        assert old in live_ids(world)
        assert secret_value(world, OWN) == world.stackstate.value_of("service-token", old)
