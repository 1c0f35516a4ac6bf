"""Tests for ``rotator rbac``: Roles, chart values and Vault policy from the permission model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.config import load_config
from rotator.permissions import PermissionModel, derive_permissions, render_vault_policy
from tests.plugins.cli import CliRunner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"
#: The variables config.example.yaml reads (its header says how to try it).
EXAMPLE_ENV = {
    "STS_SERVICE_TOKEN": "dummy-token",
    "WEBHOOK_SECRET": "dummy-secret",
    "PAGERDUTY_ROUTING_KEY": "dummy-routing-key",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
}
STACKSTATE = {"url": "https://sts.example.com", "service_token": "svc-0123456789abcdef"}

#: (namespace, api group, resource, verb, resource name or None for any name)
Grant = tuple[str, str, str, str, str | None]
WriteConfig = Callable[[dict[str, Any]], Path]


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment config.example.yaml needs."""
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)


def key(name: str = "agent", **extra: Any) -> dict[str, Any]:
    """A service-token managed key entry."""
    return {
        "name": name,
        "kind": "service-token",
        "roles": ["stackstate-ingest-telemetry"],
        **extra,
    }


def config_with(*keys: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A configuration of ``keys`` (and further top-level ``sections``)."""
    return {"stackstate": STACKSTATE, "keys": list(keys), **sections}


def model_of(path: Path) -> PermissionModel:
    """The permission model of the configuration file (the one doctor checks)."""
    return derive_permissions(load_config(path))


def model_grants(
    model: PermissionModel, *, optional: bool = True, leases: bool = True
) -> set[Grant]:
    """What the model says the rotator needs."""
    return {
        (p.namespace, p.group, p.resource, p.verb, p.name)
        for p in model.kubernetes
        if (optional or p.required) and (leases or p.resource != "leases")
    }


def rule_grants(namespace: str, rules: Iterable[dict[str, Any]]) -> set[Grant]:
    """What Role rules grant, one entry per group, resource, verb and name."""
    granted: set[Grant] = set()
    for rule in rules:
        names: list[str | None] = list(rule.get("resourceNames") or [None])
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    granted |= {(namespace, group, resource, verb, name) for name in names}
    return granted


def assert_exactly(granted: set[Grant], needed: set[Grant]) -> None:
    """Nothing granted beyond the model, and every need met (by name, or for any name)."""
    assert granted <= needed, f"granted beyond the model: {sorted(granted - needed, key=str)}"
    unmet = {need for need in needed if need not in granted and (*need[:4], None) not in granted}
    assert not unmet, f"needed but not granted: {sorted(unmet, key=str)}"


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of ``text`` (which must parse)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def roles_of(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Role objects by namespace (one per namespace)."""
    roles = [d for d in docs if d["kind"] == "Role"]
    by_namespace = {r["metadata"]["namespace"]: r for r in roles}
    assert len(by_namespace) == len(roles), "two Roles in one namespace"
    return by_namespace


def assert_least_privilege(docs: list[dict[str, Any]], model: PermissionModel) -> None:
    """Roles grant exactly the model's verbs, name Secrets, never list Secrets; each is bound."""
    roles = roles_of(docs)
    bindings = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "RoleBinding"}
    assert set(bindings) == set(roles)
    granted: set[Grant] = set()
    for namespace, role in roles.items():
        granted |= rule_grants(namespace, role["rules"])
        assert bindings[namespace]["roleRef"]["name"] == role["metadata"]["name"]
    assert_exactly(granted, model_grants(model))
    assert not [g for g in granted if g[2] == "secrets" and g[3] == "list"]
    secret_reads = [g for g in granted if g[2] == "secrets" and g[3] in ("get", "update")]
    assert secret_reads and all(g[4] is not None for g in secret_reads)


class TestYamlOutput:
    """The default output: a Role and a RoleBinding per namespace."""

    def test_example_configuration(self, run_cli: CliRunner, example_env: None) -> None:
        """config.example.yaml: valid YAML, exactly the model's verbs, resourceNames on Secrets."""
        result = run_cli("--config", str(EXAMPLE), "rbac")
        assert result.code == 0, result.err
        docs = documents(result.out)
        model = model_of(EXAMPLE)
        assert_least_privilege(docs, model)
        assert set(roles_of(docs)) == {"suse-observability", "open-telemetry", "apps"}
        # The synced Secret is only read, by name.
        assert rule_grants("apps", roles_of(docs)["apps"]["rules"]) >= {
            ("apps", "", "secrets", "get", "otel-key")
        }
        assert 'path "secret/data/stackstate/otel-prod"' in result.out  # Vault, as comments

    @pytest.mark.parametrize(
        "preset",
        [
            {"type": "suse-observability-agent", "release": "sts", "namespace": "obs"},
            {"type": "stackstate-k8s-agent", "release": "agent", "namespace": "legacy"},
            {"type": "otel-collector", "namespace": "otel"},
            {
                "type": "otel-collector",
                "namespace": "otel",
                "workloads": [{"kind": "Deployment", "name": "collector"}],
            },
        ],
        ids=["suse-observability-agent", "stackstate-k8s-agent", "otel-collector", "workloads"],
    )
    def test_presets(
        self, run_cli: CliRunner, write_config: WriteConfig, preset: dict[str, Any]
    ) -> None:
        """Each preset's Secret by name and its readers; listed workloads by name, no list."""
        path = write_config(config_with(key(preset=preset)))
        result = run_cli("--config", str(path), "rbac")
        assert result.code == 0, result.err
        docs = documents(result.out)
        assert_least_privilege(docs, model_of(path))
        (role,) = roles_of(docs).values()
        granted = rule_grants(preset["namespace"], role["rules"])
        if "workloads" in preset:
            assert ("otel", "apps", "deployments", "patch", "collector") in granted
            assert not [g for g in granted if g[1] == "apps" and g[3] == "list"]
        else:
            assert (preset["namespace"], "apps", "daemonsets", "list", None) in granted

    def test_leader_election_adds_the_lease_by_name(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """get/update on the named Lease, create on leases, in the Lease's namespace."""
        path = write_config(
            config_with(
                key(targets=[{"type": "kubernetes-secret", "namespace": "apps", "name": "s",
                              "key": "K"}]),
                leader_election={"enabled": True, "namespace": "rotator", "lease_name": "lock"},
            )
        )  # fmt: skip
        result = run_cli("--config", str(path), "rbac")
        docs = documents(result.out)
        assert_least_privilege(docs, model_of(path))
        lease = rule_grants("rotator", roles_of(docs)["rotator"]["rules"])
        assert lease == {
            ("rotator", "coordination.k8s.io", "leases", "get", "lock"),
            ("rotator", "coordination.k8s.io", "leases", "update", "lock"),
            ("rotator", "coordination.k8s.io", "leases", "create", None),
        }
        # The ServiceAccount's namespace defaults to the Lease's.
        binding = next(d for d in docs if d["kind"] == "RoleBinding")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "stackstate-key-rotator", "namespace": "rotator"}
        ]

    def test_events_in_the_core_api(self, run_cli: CliRunner, write_config: WriteConfig) -> None:
        """create, patch and list on core events where the rotator works (rotator.events
        writes core v1 only: events.k8s.io is not granted)."""
        path = write_config(config_with(key(preset={"type": "otel-collector", "namespace": "o"})))
        docs = documents(run_cli("--config", str(path), "rbac").out)
        granted = rule_grants("o", roles_of(docs)["o"]["rules"])
        assert {
            ("o", "", "events", "create", None),
            ("o", "", "events", "patch", None),
            ("o", "", "events", "list", None),
        } <= (granted)
        assert not [g for g in granted if g[1] == "events.k8s.io"]

    def test_service_account_options(self, run_cli: CliRunner, write_config: WriteConfig) -> None:
        """--service-account and --namespace name the bound subject and the objects."""
        path = write_config(config_with(key(preset={"type": "otel-collector", "namespace": "o"})))
        result = run_cli(
            "--config", str(path), "rbac", "--service-account", "sa", "--namespace", "ops"
        )
        docs = documents(result.out)
        assert {d["metadata"]["name"] for d in docs} == {"sa"}
        binding = next(d for d in docs if d["kind"] == "RoleBinding")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sa", "namespace": "ops"}]

    def test_no_optional_leaves_out_what_is_only_sometimes_needed(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """--no-optional: no create on Secrets, no batch list, no Events."""
        path = write_config(config_with(key(preset={"type": "otel-collector", "namespace": "o"})))
        docs = documents(run_cli("--config", str(path), "rbac", "--no-optional").out)
        granted = rule_grants("o", roles_of(docs)["o"]["rules"])
        assert_exactly(granted, model_grants(model_of(path), optional=False))
        assert not [
            g for g in granted if g[2] in ("events", "jobs", "cronjobs") or g[3] == "create"
        ]

    def test_a_configuration_without_kubernetes_prints_no_role(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """linux-agent: a file and a command; the output says so and holds no object."""
        path = write_config(config_with(key(preset={"type": "linux-agent"})))
        result = run_cli("--config", str(path), "rbac")
        assert result.code == 0
        assert documents(result.out) == []
        assert "needs no Kubernetes permission" in result.out
        assert "manage-service-tokens" in result.out

    def test_kubeconfig_contexts_are_named_and_selectable(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """A target in another context gets its own Role, labelled; --context selects."""
        target = {"type": "kubernetes-secret", "namespace": "n", "name": "s", "key": "K"}
        path = write_config(
            config_with(key("a", targets=[target]), key("b", targets=[{**target, "name": "t",
                                                                        "context": "eu"}]))
        )  # fmt: skip
        result = run_cli("--config", str(path), "rbac")
        assert "kubeconfig context eu" in result.out
        assert len([d for d in documents(result.out) if d["kind"] == "Role"]) == 2
        only = documents(run_cli("--config", str(path), "rbac", "--context", "eu").out)
        (role,) = [d for d in only if d["kind"] == "Role"]
        assert ("n", "", "secrets", "update", "t") in rule_grants("n", role["rules"])


class TestHelmValues:
    """``-o helm-values``: the chart's rbac.rules."""

    def test_example_configuration(self, run_cli: CliRunner, example_env: None) -> None:
        """Namespace -> rules, exactly the model without the Lease (the chart grants that)."""
        result = run_cli("--config", str(EXAMPLE), "rbac", "-o", "helm-values")
        assert result.code == 0, result.err
        values = yaml.safe_load(result.out)
        assert list(values) == ["rbac"] and list(values["rbac"]) == ["rules"]
        granted = set().union(
            *(rule_grants(ns, rules) for ns, rules in values["rbac"]["rules"].items())
        )
        assert_exactly(granted, model_grants(model_of(EXAMPLE), leases=False))

    def test_leaves_the_lease_to_the_chart(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """With leader election on, no leases rule appears (the chart adds its own)."""
        path = write_config(
            config_with(
                key(preset={"type": "otel-collector", "namespace": "o"}),
                leader_election={"enabled": True, "namespace": "o"},
            )
        )
        values = yaml.safe_load(run_cli("--config", str(path), "rbac", "-o", "helm-values").out)
        assert "leases" not in json.dumps(values)

    def test_other_contexts_are_left_out_with_a_note(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """Only the chart's cluster (the default context); stderr names what was left out."""
        target = {"type": "kubernetes-secret", "namespace": "n", "name": "s", "key": "K"}
        path = write_config(config_with(key(targets=[target, {**target, "namespace": "far",
                                                               "context": "eu"}])))  # fmt: skip
        result = run_cli("--config", str(path), "rbac", "-o", "helm-values")
        assert list(yaml.safe_load(result.out)["rbac"]["rules"]) == ["n"]
        assert "eu/far" in result.err

    def test_no_kubernetes_gives_empty_rules(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """An empty map, still valid values."""
        path = write_config(config_with(key(preset={"type": "linux-agent"})))
        values = yaml.safe_load(run_cli("--config", str(path), "rbac", "-o", "helm-values").out)
        assert values == {"rbac": {"rules": {}}}


class TestVaultAndJson:
    """``-o vault`` and ``-o json``."""

    def test_vault_prints_the_model_policy(self, run_cli: CliRunner, example_env: None) -> None:
        """Exactly render_vault_policy of the model."""
        result = run_cli("--config", str(EXAMPLE), "rbac", "-o", "vault")
        assert result.out == render_vault_policy(model_of(EXAMPLE))

    def test_vault_without_vault_targets(
        self, run_cli: CliRunner, write_config: WriteConfig
    ) -> None:
        """A comment saying no policy is needed."""
        path = write_config(config_with(key(preset={"type": "linux-agent"})))
        result = run_cli("--config", str(path), "rbac", "-o", "vault")
        assert result.code == 0 and result.out.startswith("#") and "no Vault policy" in result.out

    def test_json_document(self, run_cli: CliRunner, example_env: None) -> None:
        """Subject, per-namespace rules with reasons, Vault policy, StackState permissions."""
        result = run_cli("--config", str(EXAMPLE), "rbac", "-o", "json")
        document = json.loads(result.out)
        assert set(document) == {"subject", "kubernetes", "vault", "stackstate"}
        granted = set().union(
            *(rule_grants(role["namespace"], role["rules"]) for role in document["kubernetes"])
        )
        assert_exactly(granted, model_grants(model_of(EXAMPLE)))
        assert all(len(r["rules"]) == len(r["why"]) for r in document["kubernetes"])
        assert document["vault"]["policy"] == render_vault_policy(model_of(EXAMPLE))
        assert {p["permission"] for p in document["stackstate"]} == {
            "manage-service-tokens",
            "manage-ingestion-api-keys",
        }

    def test_a_missing_configuration_is_a_usage_error(
        self, run_cli: CliRunner, tmp_path: Path
    ) -> None:
        """Exit 2, nothing on stdout."""
        result = run_cli("--config", str(tmp_path / "missing.yaml"), "rbac")
        assert result.code == 2 and result.out == ""
