"""Reads that overlap, without widening privileges: target reads in a bounded pool, Secrets by
GET (default) or by one label-selected LIST per namespace (``read: list``), and discovery's
workload LISTs shared by every key of a namespace — against the emulators over real HTTP."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.plugins.world import NAMESPACE, World

OTHER = "observability-other"
SECRETS_LIST = {
    NAMESPACE: f"/api/v1/namespaces/{NAMESPACE}/secrets",
    OTHER: f"/api/v1/namespaces/{OTHER}/secrets",
}
SELECTOR = "labelSelector=app.kubernetes.io/managed-by=stackstate-key-rotator"


def secret_only_key(world: World, name: str, namespace: str = NAMESPACE) -> None:
    """A managed key whose one target is Secret ``<name>-secrets`` in ``namespace``."""
    target = {**world.targets(name)[0], "namespace": namespace}
    world.add_key(name, targets=[target])


def kubernetes_section(world: World, **extra: Any) -> dict[str, Any]:
    """The world's kubernetes: section plus ``extra`` settings."""
    return {"kubeconfig": str(world.kubeconfig), "context": "sandbox", **extra}


def dry_run(world: World) -> tuple[int, dict[str, Any]]:
    """``rotate --dry-run --output json``: exit code and document."""
    result = world.rotator("rotate", "--dry-run", "--output", "json")
    return result.code, json.loads(result.out)


def plans(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a dry run decided per key (not the time-dependent fields)."""
    return [
        (k["key"], k["current"]["id"], k["decision"], k["outcome"], k["actions"], k["failure"])
        for k in document["keys"]
    ]


def secret_requests(world: World) -> Counter[tuple[str, str]]:
    """(method, path) of the Secret requests Kubernetes answered since the log was cleared."""
    return Counter(
        (r.method, r.path) for r in world.kube.log if "/secrets" in r.path and r.method == "GET"
    )


class TestOverlappingGets:
    """Default read mode: one GET per Secret, ``workers`` at a time, results in key order."""

    def test_reads_overlap_up_to_workers_and_come_back_in_key_order(self, world: World) -> None:
        """Ten keys, three workers, slow GETs: at most three requests in flight (and more than
        one), one GET per Secret, no LIST, and the report in configuration order."""
        names = [f"key{index:02d}" for index in range(10)]
        for name in names:
            secret_only_key(world, name)
        world.sections["workers"] = 3
        world.settle()
        # The first key's read is the slowest: it finishes last, its result still comes first.
        world.kube.add_latency("GET", r"/api/v1/namespaces/.*/secrets/key00-secrets$", 1.0)
        world.kube.add_latency("GET", r"/api/v1/namespaces/.*/secrets/key0[1-9]-secrets$", 0.1)
        world.kube.clear_log()
        world.kube.stats.reset()
        code, document = dry_run(world)
        assert code == 0
        assert [k["key"] for k in document["keys"]] == names
        assert {k["outcome"] for k in document["keys"]} == {"unchanged"}
        assert 2 <= world.kube.stats.max_in_flight <= 3
        reads = [r.path.rpartition("/")[2] for r in world.kube.log if "/secrets/" in r.path]
        assert reads[-1] == "key00-secrets"  # the log is in order of completion
        expected = {("GET", f"{SECRETS_LIST[NAMESPACE]}/{name}-secrets"): 1 for name in names}
        assert secret_requests(world) == Counter(expected)

    def test_one_worker_reads_one_at_a_time(self, world: World) -> None:
        """workers: 1 is the sequential behaviour of before."""
        for name in ("agent", "otel", "collector"):
            secret_only_key(world, name)
        world.sections["workers"] = 1
        world.settle()
        world.kube.add_latency("GET", r"/api/v1/namespaces/.*/secrets/", 0.05)
        world.kube.stats.reset()
        code, _ = dry_run(world)
        assert code == 0
        assert world.kube.stats.max_in_flight == 1


class TestListReadMode:
    """``read: list``: one label-selected LIST per (context, namespace) instead of the GETs."""

    def test_one_list_per_namespace_and_a_get_for_a_secret_we_did_not_create(
        self, world: World
    ) -> None:
        """Four keys in one namespace and two in another: two LISTs selecting the rotator's
        label; the Secret a person created (no label) is still read with a GET; the plans are
        those of GET mode."""
        world.kube.create_namespace(OTHER)
        for name in ("a1", "a2", "a3", "a4"):
            secret_only_key(world, name)
        for name in ("b1", "b2"):
            secret_only_key(world, name, OTHER)
        world.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "manual-secrets", "namespace": NAMESPACE},
            }
        )
        secret_only_key(world, "manual")
        world.settle()
        code, by_get = dry_run(world)
        assert code == 0
        world.sections["kubernetes"] = kubernetes_section(world, read="list")
        world.kube.clear_log()
        code, by_list = dry_run(world)
        assert code == 0
        assert plans(by_list) == plans(by_get)
        lists = [r for r in world.kube.log if r.method == "GET" and r.path in SECRETS_LIST.values()]
        assert sorted(r.path for r in lists) == sorted(SECRETS_LIST.values())
        assert all(SELECTOR in r.query for r in lists)
        gets = [
            r.path
            for r in world.kube.log
            if r.method == "GET" and r.path.startswith(SECRETS_LIST[NAMESPACE] + "/")
        ]
        assert gets == [f"{SECRETS_LIST[NAMESPACE]}/manual-secrets"]

    def test_a_forbidden_list_fails_the_keys_of_that_namespace_only(self, world: World) -> None:
        """Per-context list mode without ``list`` permission in one namespace: its keys fail
        observing (fix-permissions, naming the LIST); the other namespace's keys are fine."""
        world.kube.create_namespace(OTHER)
        secret_only_key(world, "agent")
        secret_only_key(world, "other", OTHER)
        world.settle()
        world.sections["kubernetes"] = kubernetes_section(
            world, contexts={"sandbox": {"read": "list"}}
        )
        world.kube.forbid("list", "secrets", NAMESPACE)
        code, document = dry_run(world)
        assert code != 0
        keys = {k["key"]: k for k in document["keys"]}
        assert keys["other"]["outcome"] == "unchanged"
        failure = keys["agent"]["failure"]
        assert failure["step"] == "observe"
        assert failure["error_type"] == "TargetForbidden"
        assert failure["category"] == "fix-permissions"
        assert "list" in keys["agent"]["reason"]


class TestDiscoveryShared:
    """Discovering consumers of many keys share one LIST per workload kind and namespace."""

    def test_two_keys_discovering_in_one_namespace_list_each_kind_once(self, world: World) -> None:
        """Each key finds its own reader, from one LIST of each workload kind per run."""
        for name in ("agent", "otel"):
            world.kube.add_workload(
                "Deployment", NAMESPACE, name, env_secret_key_ref=(f"{name}-secrets", "STS_API_KEY")
            )
            consumer = {"type": "kubernetes-workload", "namespace": NAMESPACE, "discover": True}
            world.add_key(name, targets=[world.targets(name)[0]], consumers=[consumer])
        world.settle()
        world.kube.clear_log()
        code, document = dry_run(world)
        assert code == 0
        for entry in document["keys"]:
            readers = [r["id"] for r in entry["readers"]]
            assert readers == [f"kubernetes-workload:sandbox/{NAMESPACE}/Deployment/{entry['key']}"]
        listed = Counter(
            r.path
            for r in world.kube.log
            if r.method == "GET" and r.path.startswith(f"/apis/apps/v1/namespaces/{NAMESPACE}/")
        )
        base = f"/apis/apps/v1/namespaces/{NAMESPACE}"
        assert listed == Counter(
            {f"{base}/deployments": 1, f"{base}/daemonsets": 1, f"{base}/statefulsets": 1}
        )
