"""Tests for the Kubernetes client layer: configuration sources, errors naming file and context,
the cache, the pool size, the one 409 loop and the one error translation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from rotator.clients.kubernetes import (
    DEFAULT_POOL_SIZE,
    Conflict,
    KubeClients,
    map_api_error,
    retry_on_conflict,
    translated,
)
from rotator.errors import (
    CONSUMER_ERRORS,
    LEASE_ERRORS,
    TARGET_ERRORS,
    ConfigError,
    ConsumerError,
    ConsumerForbidden,
    LeaseConflict,
    LeaseError,
    TargetError,
)
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.kubernetes_config import generate_tls

TIMEOUT = 5.0
#: Concurrent readers of the pool tests.
READERS = 6


def namespaces(clients: KubeClients, context: str | None = None) -> set[str]:
    """Names of the namespaces the context's cluster lists (a real round trip)."""
    listed = clients.call("GET", "/api/v1/namespaces", context=context)
    return {item["metadata"]["name"] for item in listed["items"]}


class TestKubeconfig:
    """Loading a kubeconfig file."""

    def test_missing_kubeconfig_names_the_file(self, tmp_path: Path) -> None:
        """A kubeconfig path that does not exist is a ConfigError naming it."""
        missing = tmp_path / "nope" / "kubeconfig"
        clients = KubeClients(missing)
        with pytest.raises(ConfigError, match=f"kubeconfig {missing}: file not found"):
            clients.api_client()

    def test_unknown_context_names_it_and_the_known_ones(self, kubeconfig: Path) -> None:
        """A context the kubeconfig lacks is a ConfigError naming it and listing the others."""
        clients = KubeClients(kubeconfig)
        with pytest.raises(ConfigError) as caught:
            clients.api_client("prod-eu")
        text = str(caught.value)
        assert str(kubeconfig) in text
        assert "'prod-eu'" in text
        assert "contexts: sandbox" in text

    def test_unknown_default_context_is_refused(self, kubeconfig: Path) -> None:
        """The configured default context is checked the same way."""
        clients = KubeClients(kubeconfig, default_context="missing")
        with pytest.raises(ConfigError, match="no context 'missing'"):
            clients.api_client()

    def test_invalid_yaml_is_reported_without_its_content(self, tmp_path: Path) -> None:
        """Broken YAML names the file and line, never quoting the line (it may hold a token)."""
        path = tmp_path / "kubeconfig"
        path.write_text("apiVersion: v1\nusers:\n- name: x\n  user: {token: s3cr3t-t0ken: [\n")
        with pytest.raises(ConfigError, match="not valid YAML at line") as caught:
            KubeClients(path).api_client()
        assert str(path) in str(caught.value)
        assert "s3cr3t-t0ken" not in str(caught.value)

    def test_not_a_kubeconfig_is_invalid(self, tmp_path: Path) -> None:
        """A YAML file that is not a kubeconfig mapping is a ConfigError."""
        path = tmp_path / "kubeconfig"
        path.write_text("- just\n- a list\n")
        with pytest.raises(ConfigError, match=f"kubeconfig {path}: invalid"):
            KubeClients(path).api_client()

    def test_no_current_context_needs_a_named_one(
        self, kube: KubernetesEmulator, tmp_path: Path
    ) -> None:
        """Without current-context a context must be named; naming one then works."""
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        document = yaml.safe_load(path.read_text())
        del document["current-context"]
        path.write_text(yaml.safe_dump(document))
        with pytest.raises(ConfigError, match="no current-context"):
            KubeClients(path).api_client()
        with KubeClients(path, default_context="sandbox") as clients:
            assert "default" in namespaces(clients)

    def test_kubeconfig_from_the_environment(self, kubeconfig: Path) -> None:
        """With no path and no in-cluster environment, $KUBECONFIG is read."""
        with KubeClients(environ={"KUBECONFIG": str(kubeconfig)}) as clients:
            assert clients.source == str(kubeconfig)
            assert "default" in namespaces(clients)

    def test_home_kubeconfig_is_the_last_resort(self, tmp_path: Path) -> None:
        """With no path, no $KUBECONFIG and no in-cluster environment, ~/.kube/config is read."""
        clients = KubeClients(environ={})
        assert clients.source == "~/.kube/config"

    def test_global_default_configuration_is_untouched(self, kubeconfig: Path) -> None:
        """Building clients never sets the library's process-wide default configuration."""
        before = k8s_client.Configuration._default
        with KubeClients(kubeconfig) as clients:
            namespaces(clients)
        assert k8s_client.Configuration._default is before

    def test_non_positive_timeout_is_refused(self, kubeconfig: Path) -> None:
        """A request timeout of zero would mean none at all: ConfigError."""
        with pytest.raises(ConfigError, match="timeout"):
            KubeClients(kubeconfig, request_timeout=0)


class TestCache:
    """One client per context, reused."""

    def test_same_context_same_client(self, kubeconfig: Path) -> None:
        """Every API of one context shares one ApiClient; None means the default context."""
        with KubeClients(kubeconfig, default_context="sandbox") as clients:
            first = clients.api_client("sandbox")
            assert clients.api_client() is first
            assert "default" in namespaces(clients)  # a call by path goes through it too
            assert clients.api_client("sandbox") is first

    def test_each_context_has_its_own_client(
        self, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
    ) -> None:
        """Two contexts get two clients, each talking to its own cluster."""
        east = make_kube()
        west = make_kube()
        east.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "only-east"}})
        path = east.write_kubeconfig(
            tmp_path / "kubeconfig", context="east", extra_contexts={"west": west}
        )
        with KubeClients(path) as clients:
            assert clients.api_client("east") is not clients.api_client("west")
            assert "only-east" in namespaces(clients, "east")
            assert "only-east" not in namespaces(clients, "west")
            assert "only-east" in namespaces(clients)  # current-context is east

    def test_close_drops_the_cache(self, kubeconfig: Path) -> None:
        """After close the next call builds a fresh client that works."""
        clients = KubeClients(kubeconfig)
        first = clients.api_client()
        clients.close()
        second = clients.api_client()
        assert second is not first
        assert "default" in namespaces(clients)
        clients.close()

    def test_failures_are_not_cached(self, kube: KubernetesEmulator, tmp_path: Path) -> None:
        """A kubeconfig that appears after a failed attempt is picked up."""
        path = tmp_path / "kubeconfig"
        clients = KubeClients(path)
        with pytest.raises(ConfigError):
            clients.api_client()
        kube.write_kubeconfig(path)
        assert "default" in namespaces(clients)
        clients.close()


class TestInCluster:
    """The pod's service-account configuration."""

    def test_in_cluster_configuration_reaches_the_api_server(
        self, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
    ) -> None:
        """KUBERNETES_SERVICE_HOST, the token and ca.crt are enough to talk HTTPS to the server."""
        ca, cert, key = generate_tls(tmp_path / "tls")
        emulator = make_kube(tls=(str(cert), str(key)), ca_cert=str(ca), token="sa-token-123")
        service_account = tmp_path / "serviceaccount"
        service_account.mkdir()
        (service_account / "token").write_text("sa-token-123")
        (service_account / "ca.crt").write_bytes(ca.read_bytes())
        port = urlsplit(emulator.url).port
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}
        with KubeClients(environ=environ, service_account_dir=service_account) as clients:
            assert clients.in_cluster
            assert clients.source == "in-cluster configuration"
            assert "default" in namespaces(clients)

    def test_missing_service_account_files_are_a_config_error(self, tmp_path: Path) -> None:
        """In a pod without a mounted token, ConfigError names the directory."""
        environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        clients = KubeClients(environ=environ, service_account_dir=tmp_path)
        with pytest.raises(ConfigError, match="in-cluster") as caught:
            clients.api_client()
        assert str(tmp_path) in str(caught.value)

    def test_a_context_needs_a_kubeconfig(self, tmp_path: Path) -> None:
        """Naming a context without a kubeconfig in a pod is a ConfigError naming the context."""
        environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        clients = KubeClients(environ=environ, service_account_dir=tmp_path)
        with pytest.raises(ConfigError, match="'prod'"):
            clients.api_client("prod")

    def test_a_given_kubeconfig_wins_over_in_cluster(self, kubeconfig: Path) -> None:
        """An explicit kubeconfig is used even inside a pod."""
        environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        with KubeClients(kubeconfig, environ=environ) as clients:
            assert not clients.in_cluster
            assert "default" in namespaces(clients)


class TestPoolSize:
    """Each context's client keeps ``pool_size`` connections (the callers' workers)."""

    def test_pool_size_reaches_the_connection_pool(self, kubeconfig: Path) -> None:
        """The urllib3 pool of a built client holds the configured number of connections."""
        clients = KubeClients(kubeconfig, pool_size=3)
        pool_manager = clients.api_client().rest_client.pool_manager
        assert pool_manager.connection_pool_kw["maxsize"] == 3
        assert KubeClients(kubeconfig).pool_size == DEFAULT_POOL_SIZE

    @pytest.mark.parametrize(("pool_size", "discarded"), [(READERS, False), (2, True)])
    def test_concurrent_readers_fit_a_pool_of_their_number(
        self,
        kube: KubernetesEmulator,
        kubeconfig: Path,
        caplog: pytest.LogCaptureFixture,
        pool_size: int,
        discarded: bool,
    ) -> None:
        """READERS overlapping reads reuse a pool of READERS connections; a smaller pool makes
        urllib3 open extra ones and discard them ("Connection pool is full")."""
        clients = KubeClients(kubeconfig, pool_size=pool_size)
        kube.add_latency("GET", r"^/api/v1/namespaces$", 0.3)
        start = threading.Barrier(READERS)

        def read(_: int) -> set[str]:
            start.wait(timeout=TIMEOUT)
            return namespaces(clients)

        watched = caplog.at_level(logging.WARNING, logger="urllib3.connectionpool")
        with watched, ThreadPoolExecutor(max_workers=READERS) as pool:
            results = list(pool.map(read, range(READERS)))
        clients.close()
        assert all("default" in result for result in results)
        full = [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
        assert bool(full) is discarded

    def test_pool_size_below_one_is_refused(self, kubeconfig: Path) -> None:
        """A pool without connections is a ConfigError."""
        with pytest.raises(ConfigError, match="pool size must be at least 1"):
            KubeClients(kubeconfig, pool_size=0)


class TestRetryOnConflict:
    """The one re-read-and-re-apply loop every read-modify-write uses."""

    def test_conflicts_are_retried_with_a_doubling_backoff(self) -> None:
        """Two lost attempts, then a win: three runs, waits of backoff and twice backoff."""
        sleeps: list[float] = []
        runs: list[int] = []

        def attempt() -> str:
            runs.append(1)
            if len(runs) < 3:
                raise Conflict
            return "written"

        assert (
            retry_on_conflict(attempt, attempts=5, backoff=0.05, sleep=sleeps.append) == "written"
        )
        assert sleeps == pytest.approx([0.05, 0.1])

    def test_a_persistent_conflict_is_raised_after_the_last_attempt(self) -> None:
        """Every attempt lost: ``attempts`` runs, then the conflict for the caller to name."""
        runs: list[int] = []

        def attempt() -> None:
            runs.append(1)
            raise Conflict

        with pytest.raises(Conflict):
            retry_on_conflict(attempt, attempts=3, backoff=0.0, sleep=lambda _: None)
        assert len(runs) == 3

    def test_other_errors_end_the_loop_at_once(self) -> None:
        """A failure that is not a conflict is not retried."""
        runs: list[int] = []

        def attempt() -> None:
            runs.append(1)
            raise ConfigError("broken")

        with pytest.raises(ConfigError):
            retry_on_conflict(attempt, attempts=5, backoff=0.0, sleep=lambda _: None)
        assert runs == [1]

    def test_a_caller_may_name_its_own_conflict(self) -> None:
        """``conflict`` picks what counts as a lost race (the Lease retries on LeaseConflict)."""
        runs: list[int] = []

        def attempt() -> None:
            runs.append(1)
            raise LeaseConflict("lease x: conflict (409)")

        with pytest.raises(LeaseConflict):
            retry_on_conflict(
                attempt, attempts=2, backoff=0.0, conflict=LeaseConflict, sleep=lambda _: None
            )
        assert len(runs) == 2


class TestErrorFamilies:
    """One translation, three families with the same categories."""

    @pytest.mark.parametrize("status", [0, 400, 401, 403, 404, 409, 422, 429, 500])
    def test_each_family_has_the_same_kind_and_category(self, status: int) -> None:
        """A status becomes the same kind in every family, so failures stay the same data."""
        families = {"Target": TARGET_ERRORS, "Consumer": CONSUMER_ERRORS, "Lease": LEASE_ERRORS}
        bases = {"Target": TargetError, "Consumer": ConsumerError, "Lease": LeaseError}
        kinds, categories = set(), set()
        for family, errors in families.items():
            mapped = map_api_error(
                ApiException(status=status, reason="x"),
                where="w",
                verb="get",
                resource="secrets",
                namespace="ns",
                timeout=1.0,
                kinds=errors,
            )
            assert isinstance(mapped, bases[family])
            kinds.add(type(mapped).__name__.removeprefix(family))
            categories.add((mapped.category, mapped.retryable))
        assert len(kinds) == 1
        assert len(categories) == 1

    def test_our_own_errors_pass_a_translated_block_unchanged(self) -> None:
        """Only the client's failures are translated; a RotatorError raised inside is kept."""
        block = translated(where="w", verb="get", resource="r", namespace="n", timeout=1.0)
        with pytest.raises(ConfigError, match="ours"), block:
            raise ConfigError("ours")

    def test_a_client_failure_becomes_the_callers_family(self) -> None:
        """A 403 inside a consumer's block is a ConsumerForbidden naming the call."""
        block = translated(
            where="w", verb="get", resource="r", namespace="n", timeout=1.0, kinds=CONSUMER_ERRORS
        )
        with pytest.raises(ConsumerForbidden, match=r"w: forbidden \(403\) to get r"), block:
            raise ApiException(status=403, reason="Forbidden")


class TestGenericCall:
    """``KubeClients.call``: a request by path answered as JSON, without API classes."""

    def test_get_returns_the_json_object(self, kubeconfig: Path) -> None:
        """A GET by path answers the object as the API server sent it (camelCase JSON)."""
        with KubeClients(kubeconfig) as clients:
            listed = clients.call("GET", "/api/v1/namespaces")
        assert listed["kind"] == "NamespaceList"
        assert "default" in {item["metadata"]["name"] for item in listed["items"]}

    def test_create_patch_and_query(self, kube: KubernetesEmulator, kubeconfig: Path) -> None:
        """POST and strategic-merge PATCH carry their bodies; query parameters reach the server;
        path parameters are filled in."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s1", "namespace": "default", "labels": {"app": "x"}},
            "data": {"k": "dg=="},
        }
        where = {"namespace": "default", "name": "s1"}
        with KubeClients(kubeconfig) as clients:
            created = clients.call(
                "POST", "/api/v1/namespaces/{namespace}/secrets", path_params=where, body=body
            )
            patched = clients.call(
                "PATCH",
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                path_params=where,
                body={"metadata": {"annotations": {"a": "b"}}},
                content_type="application/strategic-merge-patch+json",
            )
            selected = clients.call(
                "GET",
                "/api/v1/namespaces/{namespace}/secrets",
                path_params=where,
                query={"labelSelector": "app=x", "limit": 10},
            )
        assert created["metadata"]["name"] == "s1"
        assert patched["metadata"]["annotations"] == {"a": "b"}
        assert [item["metadata"]["name"] for item in selected["items"]] == ["s1"]
        assert kube.get("secrets", "default", "s1") is not None

    def test_an_error_answer_is_the_clients_exception(self, kubeconfig: Path) -> None:
        """A 404 raises ApiException with the status, the Status body and the headers, which
        the one translation turns into the caller's error."""
        with KubeClients(kubeconfig) as clients, pytest.raises(ApiException) as caught:
            clients.call(
                "GET",
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                path_params={"namespace": "default", "name": "missing"},
            )
        assert caught.value.status == 404
        assert '"kind":"Status"' in (caught.value.body or "").replace(" ", "")
        assert caught.value.headers is not None
        mapped = map_api_error(
            caught.value,
            where="w",
            verb="get",
            resource="secrets",
            namespace="default",
            timeout=1.0,
            kinds=CONSUMER_ERRORS,
        )
        assert isinstance(mapped, ConsumerError)
        assert "not found (404)" in str(mapped)
