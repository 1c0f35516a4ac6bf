"""The exact requests of a steady-state run, from a formula that names every one of them.

A configuration of :data:`K` keys of both kinds — each with a Kubernetes Secret target, some with
a Vault KV target, named, selector and discovering workload consumers, and the Lease as the
shared lock — is settled; then one more ``rotate`` (nothing due) runs in-process through the real
CLI against the emulators over HTTP. Every request each emulator served is counted
(:class:`rotator_sandbox._server.RequestStats`) and compared with :func:`expected`, which
derives it from the configuration term by term; and at no moment were more than ``workers``
requests in flight across the three APIs. A request added to (or dropped from) a steady-state
run changes the count, so the formula here must change with it, on purpose.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest

from rotator_sandbox._server import RequestStats
from tests.plugins.world import NAMESPACE, World

#: Managed keys in the configuration.
K = 12
#: ``workers``: reads of one run in flight at once (kept below K so the pool has to queue).
WORKERS = 3
LEASE = "stackstate-key-rotator"
#: Workload kinds a discovering consumer lists (apps/v1 and batch/v1), once per namespace.
DISCOVERED_KINDS = ("deployments", "statefulsets", "daemonsets", "jobs", "cronjobs")

ReadMode = Literal["get", "list"]


@dataclass(frozen=True)
class Key:
    """One managed key of the test configuration."""

    name: str
    kind: str
    vault: bool  #: also a vault-kv target (mount ``secret``, KV v2)
    consumer: Literal["named", "selector", "discover"] | None


def keys() -> list[Key]:
    """The K keys: every 4th an ingestion API key; two with Vault; two named Deployment
    consumers, one StatefulSet found by selector, two keys discovering their readers."""
    consumers: dict[int, Literal["named", "selector", "discover"]] = {
        2: "named",
        7: "named",
        4: "selector",
        5: "discover",
        9: "discover",
    }
    return [
        Key(
            name=f"key{index:02d}",
            kind="ingestion-api-key" if index % 4 == 3 else "service-token",
            vault=index in (1, 6),
            consumer=consumers.get(index),
        )
        for index in range(K)
    ]


def configure(world: World, read: ReadMode) -> None:
    """Add the keys (and the workloads that read their Secrets) to ``world``."""
    for key in keys():
        secret = f"{key.name}-secrets"
        targets: list[dict[str, Any]] = [world.targets(key.name)[0]]
        if key.vault:
            targets.append(world.targets(key.name)[1])
        extra: dict[str, Any] = {"targets": targets}
        if key.consumer == "named":
            world.kube.add_workload("Deployment", NAMESPACE, key.name, env_from_secret=secret)
            extra["consumers"] = [
                {
                    "type": "kubernetes-workload",
                    "namespace": NAMESPACE,
                    "kind": "Deployment",
                    "name": key.name,
                }
            ]
        elif key.consumer == "selector":
            world.kube.add_workload(
                "StatefulSet", NAMESPACE, key.name, labels={"app": key.name}, volume_secret=secret
            )
            extra["consumers"] = [
                {
                    "type": "kubernetes-workload",
                    "namespace": NAMESPACE,
                    "kind": "StatefulSet",
                    "selector": {"app": key.name},
                }
            ]
        elif key.consumer == "discover":
            world.kube.add_workload(
                "Deployment", NAMESPACE, key.name, env_secret_key_ref=(secret, "STS_API_KEY")
            )
            extra["consumers"] = [
                {"type": "kubernetes-workload", "namespace": NAMESPACE, "discover": True}
            ]
        world.add_key(key.name, key.kind, **extra)
    world.sections["workers"] = WORKERS
    world.sections["kubernetes"] = {
        "kubeconfig": str(world.kubeconfig),
        "context": "sandbox",
        "read": read,
    }
    # The Lease is the shared lock of writing runs; timings long enough that the run never
    # renews it (renewals happen by the clock, every retry_period, and would make the count
    # depend on how long the run took).
    world.sections["leader_election"] = {
        "enabled": True,
        "namespace": NAMESPACE,
        "lease_name": LEASE,
        "lease_duration": "30m",
        "renew_deadline": "20m",
        "retry_period": "10m",
    }


def expected(read: ReadMode) -> dict[str, Counter[tuple[str, str]]]:
    """Every request of a steady-state ``rotate`` of :func:`keys`, per API: (method, path)."""
    all_keys = keys()
    stackstate: Counter[tuple[str, str]] = Counter()
    kubernetes: Counter[tuple[str, str]] = Counter()
    vault: Counter[tuple[str, str]] = Counter()

    # StackState: one list per key kind in use (both kinds here), whatever the number of keys;
    # nothing is due, so no create, verify or delete.
    kinds = {key.kind for key in all_keys}
    if "service-token" in kinds:
        stackstate[("GET", "/api/security/tokens")] += 1
    if "ingestion-api-key" in kinds:
        stackstate[("GET", "/api/security/ingestion/api_keys")] += 1

    secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    if read == "get":
        # Secret targets, default read mode: one GET per Secret (RBAC resourceNames work).
        for key in all_keys:
            kubernetes[("GET", f"{secrets}/{key.name}-secrets")] += 1
    else:
        # read: list — one label-selected LIST per (context, namespace) holding Secret targets;
        # every Secret here was created by the rotator (labelled), so no GET is left.
        kubernetes[("GET", secrets)] += 1
    apps = f"/apis/apps/v1/namespaces/{NAMESPACE}"
    batch = f"/apis/batch/v1/namespaces/{NAMESPACE}"
    for key in all_keys:
        if key.consumer == "named":
            # A named workload consumer: one GET of the workload (its template and rollout).
            kubernetes[("GET", f"{apps}/deployments/{key.name}")] += 1
        elif key.consumer == "selector":
            # A selector consumer: one LIST of its kind with the label selector.
            kubernetes[("GET", f"{apps}/statefulsets")] += 1
    if any(key.consumer == "discover" for key in all_keys):
        # Discovery: one LIST per workload kind of the namespace, shared by every key that
        # discovers there (two keys here, still one LIST each).
        for plural in DISCOVERED_KINDS:
            base = batch if plural in ("jobs", "cronjobs") else apps
            kubernetes[("GET", f"{base}/{plural}")] += 1
    # The Lease, the run's shared lock, three rounds of a read and a replace each (the Lease
    # exists: the settling runs left it released): take it; the renewing thread's first round,
    # which renews at once (the run lasts far longer than that thread takes to start: its reads
    # are slowed below); release it at the end. No further renewal: retry_period is 10m.
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}"
    kubernetes[("GET", lease)] += 3
    kubernetes[("PUT", lease)] += 3

    vaulted = [key for key in all_keys if key.vault]
    if vaulted:
        # Vault login, token method: one lookup-self when the session first authenticates.
        vault[("GET", "/v1/auth/token/lookup-self")] += 1
        # The KV version of each mount in use, asked once per run (one mount here).
        vault[("GET", "/v1/sys/internal/ui/mounts/secret")] += 1
        # One read per Vault target (KV v2 data path).
        for key in vaulted:
            vault[("GET", f"/v1/secret/data/stackstate/{key.name}")] += 1
    return {"stackstate": stackstate, "kubernetes": kubernetes, "vault": vault}


@pytest.mark.parametrize("read", ["get", "list"])
def test_steady_state_run_sends_exactly_the_requests_of_the_formula(
    world: World, read: ReadMode
) -> None:
    """Nothing due: the requests per API are exactly :func:`expected`'s, and never more than
    ``workers`` were in flight at once across StackState, Kubernetes and Vault."""
    configure(world, read)
    world.settle()
    emulators = {"stackstate": world.stackstate, "kubernetes": world.kube, "vault": world.vault}
    # In flight across the three APIs, the Lease left out: its renewing thread is not one of the
    # run's workers, and its first round may overlap the reads.
    combined = RequestStats(ignore=r"/apis/coordination\.k8s\.io/.*")
    for emulator in emulators.values():
        emulator.track(combined)
        emulator.stats.reset()
    # Reads that take a moment, so the pool really has several in flight.
    world.kube.add_latency("GET", r"/api/v1/namespaces/.*/secrets.*", 0.02)
    world.vault.add_latency("GET", r"/v1/secret/data/.*", 0.02)

    result = world.rotator("rotate", "--output", "json")

    assert result.code == 0, result.out + result.err
    outcomes = Counter(k["outcome"] for k in json.loads(result.out)["keys"])
    assert outcomes == {"unchanged": K}
    want = expected(read)
    for api, emulator in emulators.items():
        seen = emulator.stats.counts()
        extra, missing = seen - want[api], want[api] - seen
        assert seen == want[api], f"{api}: unexpected {dict(extra)}, missing {dict(missing)}"
    assert 1 <= combined.max_in_flight <= WORKERS


def test_the_counter_sees_requests_that_overlap(world: World) -> None:
    """The in-flight peak is real: a request held open while another is served counts two
    (and an instance that ignores the held path counts one)."""
    stats = world.kube.stats
    stats.reset()
    ignoring = RequestStats(ignore=r"/api/v1/namespaces/held")
    world.kube.track(ignoring)
    hold = world.kube.hold("GET", r"/api/v1/namespaces/held")

    def held() -> None:
        httpx.get(f"{world.kube.url}/api/v1/namespaces/held", timeout=10)

    thread = threading.Thread(target=held)
    thread.start()
    assert hold.wait_arrived()
    httpx.get(f"{world.kube.url}/api/v1/namespaces", timeout=10).raise_for_status()
    hold.release()
    thread.join(timeout=10)
    assert stats.max_in_flight == 2
    assert stats.counts() == Counter(
        {("GET", "/api/v1/namespaces/held"): 1, ("GET", "/api/v1/namespaces"): 1}
    )
    assert ignoring.max_in_flight == 1
    assert ignoring.counts() == Counter({("GET", "/api/v1/namespaces"): 1})
