"""Tests for KubeClients: configuration sources, errors naming file and context, the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client as k8s_client

from rotator.errors import ConfigError
from rotator.kube import KubeClients
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.kubernetes_config import generate_tls

TIMEOUT = 5.0


def namespaces(clients: KubeClients, context: str | None = None) -> set[str]:
    """Names of the namespaces the context's cluster lists (a real round trip)."""
    listed = clients.core(context).list_namespace(_request_timeout=clients.request_timeout)
    return {item.metadata.name for item in listed.items}


class TestKubeconfig:
    """Loading a kubeconfig file."""

    def test_missing_kubeconfig_names_the_file(self, tmp_path: Path) -> None:
        """A kubeconfig path that does not exist is a ConfigError naming it."""
        missing = tmp_path / "nope" / "kubeconfig"
        clients = KubeClients(missing)
        with pytest.raises(ConfigError, match=f"kubeconfig {missing}: file not found"):
            clients.core()

    def test_unknown_context_names_it_and_the_known_ones(self, kubeconfig: Path) -> None:
        """A context the kubeconfig lacks is a ConfigError naming it and listing the others."""
        clients = KubeClients(kubeconfig)
        with pytest.raises(ConfigError) as caught:
            clients.core("prod-eu")
        text = str(caught.value)
        assert str(kubeconfig) in text
        assert "'prod-eu'" in text
        assert "contexts: sandbox" in text

    def test_unknown_default_context_is_refused(self, kubeconfig: Path) -> None:
        """The configured default context is checked the same way."""
        clients = KubeClients(kubeconfig, default_context="missing")
        with pytest.raises(ConfigError, match="no context 'missing'"):
            clients.apps()

    def test_invalid_yaml_is_reported_without_its_content(self, tmp_path: Path) -> None:
        """Broken YAML names the file and line, never quoting the line (it may hold a token)."""
        path = tmp_path / "kubeconfig"
        path.write_text("apiVersion: v1\nusers:\n- name: x\n  user: {token: s3cr3t-t0ken: [\n")
        with pytest.raises(ConfigError, match="not valid YAML at line") as caught:
            KubeClients(path).core()
        assert str(path) in str(caught.value)
        assert "s3cr3t-t0ken" not in str(caught.value)

    def test_not_a_kubeconfig_is_invalid(self, tmp_path: Path) -> None:
        """A YAML file that is not a kubeconfig mapping is a ConfigError."""
        path = tmp_path / "kubeconfig"
        path.write_text("- just\n- a list\n")
        with pytest.raises(ConfigError, match=f"kubeconfig {path}: invalid"):
            KubeClients(path).core()

    def test_no_current_context_needs_a_named_one(
        self, kube: KubernetesEmulator, tmp_path: Path
    ) -> None:
        """Without current-context a context must be named; naming one then works."""
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        document = yaml.safe_load(path.read_text())
        del document["current-context"]
        path.write_text(yaml.safe_dump(document))
        with pytest.raises(ConfigError, match="no current-context"):
            KubeClients(path).core()
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
            assert clients.core().api_client is first
            assert clients.apps("sandbox").api_client is first
            assert clients.coordination().api_client is first

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
            clients.core()
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
            clients.core()
        assert str(tmp_path) in str(caught.value)

    def test_a_context_needs_a_kubeconfig(self, tmp_path: Path) -> None:
        """Naming a context without a kubeconfig in a pod is a ConfigError naming the context."""
        environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        clients = KubeClients(environ=environ, service_account_dir=tmp_path)
        with pytest.raises(ConfigError, match="'prod'"):
            clients.core("prod")

    def test_a_given_kubeconfig_wins_over_in_cluster(self, kubeconfig: Path) -> None:
        """An explicit kubeconfig is used even inside a pod."""
        environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        with KubeClients(kubeconfig, environ=environ) as clients:
            assert not clients.in_cluster
            assert "default" in namespaces(clients)
