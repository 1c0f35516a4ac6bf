"""Tests for rotator.permissions: what a configuration needs, and the Role rules and Vault policy
rendered from it."""

from __future__ import annotations

from typing import Any

from rotator.config import RotatorConfig
from rotator.permissions import (
    KubernetesPermission,
    PermissionModel,
    derive_permissions,
    render_vault_policy,
    role_rules,
)
from tests.plugins.config import ConfigLoader, minimal_config


def config_with(loader: ConfigLoader, *keys: dict[str, Any], **sections: Any) -> RotatorConfig:
    """A valid configuration holding ``keys`` (and further top-level ``sections``)."""
    data = minimal_config()
    data["keys"] = list(keys)
    data.update(sections)
    return loader(data)


def secret_target(
    name: str = "agent-key", namespace: str = "monitoring", **extra: Any
) -> dict[str, Any]:
    """A kubernetes-secret target entry."""
    return {"type": "kubernetes-secret", "namespace": namespace, "name": name, "key": "K", **extra}


def token_key(name: str = "agent", **extra: Any) -> dict[str, Any]:
    """A service-token managed key entry."""
    return {"name": name, "kind": "service-token", "roles": ["r"], **extra}


def without_events(model: PermissionModel) -> list[KubernetesPermission]:
    """The Kubernetes entries other than the optional Events every namespace gets."""
    return [p for p in model.kubernetes if p.resource != "events"]


def verbs(model: PermissionModel, resource: str, name: str | None) -> set[tuple[str, bool]]:
    """(verb, required) of the Kubernetes entries on one object (None: any name)."""
    return {
        (p.verb, p.required) for p in model.kubernetes if (p.resource, p.name) == (resource, name)
    }


class TestKubernetesSecretTarget:
    """A Secret target needs exactly what the target's calls use."""

    def test_get_and_update_by_name_and_an_optional_create(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """read_namespaced_secret + replace_namespaced_secret by name; create is name-less and
        optional, naming the Secret it is for."""
        model = derive_permissions(
            config_with(load_yaml_config, token_key(targets=[secret_target()]))
        )
        assert verbs(model, "secrets", "agent-key") == {("get", True), ("update", True)}
        (create,) = [p for p in without_events(model) if p.verb == "create"]
        assert (create.name, create.required, create.objects) == (None, False, ("agent-key",))
        assert {p.namespace for p in model.kubernetes} == {"monitoring"}
        assert all(p.keys == ("agent",) for p in model.kubernetes)
        assert not any(p.verb == "patch" for p in without_events(model))

    def test_a_target_context_wins_over_the_default_context(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """The context is the target's own, else kubernetes.context."""
        model = derive_permissions(
            config_with(
                load_yaml_config,
                token_key("a", targets=[secret_target("a")]),
                token_key("b", targets=[secret_target("b", context="other")]),
                kubernetes={"context": "main"},
            )
        )
        contexts = {p.name or p.objects[0]: p.context for p in without_events(model)}
        assert contexts == {"a": "main", "b": "other"}

    def test_two_keys_sharing_a_namespace_share_the_create_entry(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Duplicates merge: one create entry naming both Secrets and both keys."""
        model = derive_permissions(
            config_with(
                load_yaml_config,
                token_key("a", targets=[secret_target("a")]),
                token_key("b", targets=[secret_target("b")]),
            )
        )
        (create,) = [p for p in without_events(model) if p.verb == "create"]
        assert create.objects == ("a", "b")
        assert create.keys == ("a", "b")
        assert model.for_key("a").kubernetes.count(create) == 1
        assert {p.name for p in model.for_key("b").kubernetes if p.name} == {"b"}


class TestWorkloadConsumers:
    """Workload consumers need get and patch (restart and wait alike), list for selectors."""

    def workload(self, **extra: Any) -> dict[str, Any]:
        return {"type": "kubernetes-workload", "namespace": "apps", "kind": "Deployment", **extra}

    def test_a_named_workload_needs_get_and_patch_by_name(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Observing reads it; restarting and recording the push patch it."""
        for action in ("restart", "wait"):
            consumer = self.workload(name="collector", action=action)
            model = derive_permissions(
                config_with(
                    load_yaml_config, token_key(targets=[secret_target()], consumers=[consumer])
                )
            )
            assert verbs(model, "deployments", "collector") == {("get", True), ("patch", True)}
            assert {p.group for p in model.kubernetes if p.resource == "deployments"} == {"apps"}

    def test_a_selector_needs_list_get_and_patch_on_every_name(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """The matching workloads are unknown in advance: every verb is name-less."""
        consumer = self.workload(kind="StatefulSet", selector={"app": "otel"})
        model = derive_permissions(
            config_with(
                load_yaml_config, token_key(targets=[secret_target()], consumers=[consumer])
            )
        )
        assert verbs(model, "statefulsets", None) == {
            ("list", True),
            ("get", True),
            ("patch", True),
        }
        assert "app=otel" in next(p.why for p in model.kubernetes if p.verb == "list")

    def test_discovery_lists_every_workload_kind_and_batch_jobs_optionally(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """discover: true searches all three kinds; CronJobs and Jobs are informational."""
        consumer = {"type": "kubernetes-workload", "namespace": "monitoring", "discover": True}
        model = derive_permissions(
            config_with(
                load_yaml_config, token_key(targets=[secret_target()], consumers=[consumer])
            )
        )
        for resource in ("deployments", "daemonsets", "statefulsets"):
            assert verbs(model, resource, None) == {("list", True), ("get", True), ("patch", True)}
        assert verbs(model, "cronjobs", None) == {("list", False)}
        assert verbs(model, "jobs", None) == {("list", False)}
        assert {p.group for p in model.kubernetes if p.resource in ("jobs", "cronjobs")} == {
            "batch"
        }

    def test_a_synced_secret_is_only_read(self, load_yaml_config: ConfigLoader) -> None:
        """synced-secret GETs the Secret an operator syncs."""
        consumer = {"type": "synced-secret", "namespace": "apps", "name": "synced", "key": "k"}
        model = derive_permissions(
            config_with(
                load_yaml_config, token_key(targets=[secret_target()], consumers=[consumer])
            )
        )
        assert verbs(model, "secrets", "synced") == {("get", True)}


class TestPresets:
    """Presets are expanded before deriving, so their Secrets and readers are covered."""

    def test_suse_observability_agent_preset(self, load_yaml_config: ConfigLoader) -> None:
        """The preset's own Secret, the chart's Secret (adopted from), and discovered readers."""
        preset = {"type": "suse-observability-agent", "release": "sts", "namespace": "obs"}
        model = derive_permissions(config_with(load_yaml_config, token_key(preset=preset)))
        written = [p for p in model.kubernetes if p.resource == "secrets" and p.verb == "update"]
        (secret,) = {p.name for p in written}
        assert secret is not None and secret != "sts-secrets"  # never the Helm-rendered Secret
        assert verbs(model, "secrets", secret) == {("get", True), ("update", True)}
        assert ("update", True) not in verbs(model, "secrets", "sts-secrets")
        assert {p.namespace for p in model.kubernetes} == {"obs"}
        assert any(p.resource == "daemonsets" and p.verb == "patch" for p in model.kubernetes)

    def test_preset_with_listed_workloads_restarts_exactly_those(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """workloads: replaces discovery with named get/patch."""
        preset = {
            "type": "otel-collector",
            "namespace": "otel",
            "workloads": [{"kind": "Deployment", "name": "collector"}],
        }
        model = derive_permissions(config_with(load_yaml_config, token_key(preset=preset)))
        assert verbs(model, "deployments", "collector") == {("get", True), ("patch", True)}
        # No list of workloads (the optional Events list is about Events, not readers).
        assert not any(p.verb == "list" and p.resource != "events" for p in model.kubernetes)
        assert verbs(model, "secrets", "open-telemetry-collector") == {
            ("get", True),
            ("update", True),
        }

    def test_linux_agent_preset_needs_nothing_remote(self, load_yaml_config: ConfigLoader) -> None:
        """A file and a command: no Kubernetes or Vault permission, only StackState's."""
        model = derive_permissions(
            config_with(load_yaml_config, token_key(preset={"type": "linux-agent"}))
        )
        assert model.kubernetes == () and model.vault == ()
        assert [p.permission for p in model.stackstate] == ["manage-service-tokens"]


class TestEvents:
    """Events (rotator.events): optional create/patch/list where the rotator works."""

    def test_core_events_in_every_namespace_of_a_key(self, load_yaml_config: ConfigLoader) -> None:
        """core v1 only; create, patch and list; any name, optional, with the key's names."""
        consumer = {"type": "synced-secret", "namespace": "apps", "name": "s", "key": "k"}
        model = derive_permissions(
            config_with(
                load_yaml_config, token_key(targets=[secret_target()], consumers=[consumer])
            )
        )
        events = [p for p in model.kubernetes if p.resource == "events"]
        assert {(p.namespace, p.group, p.verb) for p in events} == {
            (namespace, group, verb)
            for namespace in ("monitoring", "apps")
            for group in ("",)
            for verb in ("create", "patch", "list")
        }
        assert all(p.name is None and not p.required and p.keys == ("agent",) for p in events)

    def test_none_for_the_lease_namespace_alone(self, load_yaml_config: ConfigLoader) -> None:
        """The Lease's namespace gets no Events on its own account."""
        model = derive_permissions(
            config_with(
                load_yaml_config,
                token_key(targets=[secret_target()]),
                leader_election={"enabled": True, "namespace": "rotator"},
            )
        )
        assert {p.namespace for p in model.kubernetes if p.resource == "events"} == {"monitoring"}

    def test_none_without_kubernetes(self, load_yaml_config: ConfigLoader) -> None:
        """A configuration without Kubernetes objects asks for no Events."""
        model = derive_permissions(
            config_with(load_yaml_config, token_key(preset={"type": "linux-agent"}))
        )
        assert model.kubernetes == ()


class TestLeaderElection:
    """The Lease is needed by every key when leader election is on."""

    def test_lease_get_update_by_name_and_optional_create(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """coordination.k8s.io leases: get/update by name, a name-less optional create."""
        model = derive_permissions(
            config_with(
                load_yaml_config,
                token_key(targets=[secret_target()]),
                leader_election={"enabled": True, "namespace": "rotator", "lease_name": "lock"},
            )
        )
        leases = [p for p in model.kubernetes if p.resource == "leases"]
        assert {(p.verb, p.name, p.required) for p in leases} == {
            ("get", "lock", True),
            ("update", "lock", True),
            ("create", None, False),
        }
        assert {p.group for p in leases} == {"coordination.k8s.io"}
        assert all(p.keys == () and p.namespace == "rotator" for p in leases)
        assert set(leases) <= set(model.for_key("agent").kubernetes)

    def test_no_lease_without_leader_election(self, load_yaml_config: ConfigLoader) -> None:
        """Disabled (the default): no Lease permission."""
        model = derive_permissions(
            config_with(load_yaml_config, token_key(targets=[secret_target()]))
        )
        assert not [p for p in model.kubernetes if p.resource == "leases"]


class TestRunLock:
    """The shared lock of rotate runs (``lock.type``) needs its Lease or its Vault entry."""

    def test_a_lease_lock_needs_the_lease_without_leader_election(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """lock.type lease: the leader-election Lease entries, although election is off."""
        model = derive_permissions(
            config_with(
                load_yaml_config,
                token_key(targets=[secret_target()]),
                leader_election={"enabled": False, "namespace": "rotator", "lease_name": "lock"},
                lock={"type": "lease"},
            )
        )
        leases = {(p.verb, p.name) for p in model.kubernetes if p.resource == "leases"}
        assert leases == {("get", "lock"), ("update", "lock"), ("create", None)}

    def test_a_vault_lock_needs_its_kv_v2_entry(self, load_yaml_config: ConfigLoader) -> None:
        """lock.type vault: read/create/update on <mount>/data/<path>, shared by every key."""
        model = derive_permissions(
            config_with(
                load_yaml_config,
                token_key(targets=[secret_target()]),
                vault={
                    "url": "https://vault.example.com",
                    "auth": {"method": "token", "token": "t"},
                },
                lock={"type": "vault", "mount": "kv", "path": "rotator/lock"},
            )
        )
        entry = [p for p in model.vault if p.path == "kv/data/rotator/lock"]
        assert {p.capability for p in entry} == {"read", "create", "update"}
        assert all(p.required and p.keys == () for p in entry)
        assert any(p.path == "auth/token/renew-self" for p in model.vault)

    def test_the_file_lock_needs_nothing(self, load_yaml_config: ConfigLoader) -> None:
        """The default without leader election: a local file, no remote permission."""
        model = derive_permissions(
            config_with(load_yaml_config, token_key(targets=[secret_target()]))
        )
        assert model.vault == ()
        assert not [p for p in model.kubernetes if p.resource == "leases"]


class TestVault:
    """Vault capabilities follow the KV version's calls."""

    def vault_config(
        self, loader: ConfigLoader, *targets: dict[str, Any], **vault: Any
    ) -> RotatorConfig:
        return config_with(
            loader,
            token_key(targets=list(targets)),
            vault={
                "url": "https://vault.example.com",
                "auth": {"method": "token", "token": "t"},
                **vault,
            },
        )

    def capabilities(self, model: PermissionModel) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for p in model.vault:
            if p.required:
                found.setdefault(p.path, set()).add(p.capability)
        return found

    def test_kv_v2_needs_data_and_metadata(self, load_yaml_config: ConfigLoader) -> None:
        """Data: read/create/update; metadata (custom_metadata, written first): the same."""
        model = derive_permissions(
            self.vault_config(
                load_yaml_config, {"type": "vault-kv", "path": "sts/agent", "key": "k"}
            )
        )
        assert self.capabilities(model) == {
            "secret/data/sts/agent": {"read", "create", "update"},
            "secret/metadata/sts/agent": {"read", "create", "update"},
        }

    def test_kv_v1_needs_the_path_itself(self, load_yaml_config: ConfigLoader) -> None:
        """KV v1 has one path: read, create, update."""
        target = {
            "type": "vault-kv",
            "mount": "kv",
            "path": "sts/agent",
            "key": "k",
            "kv_version": 1,
        }
        model = derive_permissions(self.vault_config(load_yaml_config, target))
        assert self.capabilities(model) == {"kv/sts/agent": {"read", "create", "update"}}

    def test_token_self_service_paths_are_optional_and_shared(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """lookup-self, renew-self and capabilities-self come from the default policy."""
        model = derive_permissions(
            self.vault_config(
                load_yaml_config, {"type": "vault-kv", "path": "a", "key": "k"}, namespace="team"
            )
        )
        optional = {(p.path, p.capability) for p in model.vault if not p.required}
        assert optional == {
            ("auth/token/lookup-self", "read"),
            ("auth/token/renew-self", "update"),
            ("sys/capabilities-self", "update"),
        }
        assert all(p.keys == () for p in model.vault if not p.required)
        assert model.vault_namespace == "team"

    def test_no_vault_target_no_vault_permission(self, load_yaml_config: ConfigLoader) -> None:
        """A vault: section alone needs nothing."""
        model = derive_permissions(self.vault_config(load_yaml_config, secret_target()))
        assert model.vault == ()


class TestStackState:
    """The rotator's own StackState credential needs the manage permission of each kind."""

    def test_one_permission_per_kind_with_its_keys(self, load_yaml_config: ConfigLoader) -> None:
        """Service tokens: manage-service-tokens; ingestion keys: manage-ingestion-api-keys."""
        model = derive_permissions(
            config_with(
                load_yaml_config,
                token_key("a", targets=[secret_target("a")]),
                token_key("b", targets=[secret_target("b")]),
                {"name": "c", "kind": "ingestion-api-key", "targets": [secret_target("c")]},
            )
        )
        assert {(p.permission, p.keys) for p in model.stackstate} == {
            ("manage-service-tokens", ("a", "b")),
            ("manage-ingestion-api-keys", ("c",)),
        }


class TestRoleRules:
    """Role rules: name-less verbs in one rule, named verbs grouped by resourceNames."""

    def perm(
        self, verb: str, name: str | None, resource: str = "secrets", required: bool = True
    ) -> KubernetesPermission:
        return KubernetesPermission(None, "ns", "", resource, verb, name, "why", required)

    def test_named_verbs_are_grouped_and_subsumed_by_name_less_ones(self) -> None:
        """get+update on two Secrets become one rule; a name-less verb is not repeated by name."""
        rules = role_rules(
            [
                self.perm("get", "a"),
                self.perm("update", "a"),
                self.perm("get", "b"),
                self.perm("update", "b"),
                self.perm("create", None, required=False),
                self.perm("create", "a"),
            ]
        )
        assert [r.to_dict() for r in rules] == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get", "update"],
                "resourceNames": ["a", "b"],
            },
        ]

    def test_optional_entries_can_be_left_out(self) -> None:
        """include_optional=False drops optional entries."""
        rules = role_rules(
            [self.perm("get", "a"), self.perm("create", None, required=False)],
            include_optional=False,
        )
        assert [r.verbs for r in rules] == [("get",)]


class TestVaultPolicy:
    """The rendered policy is valid HCL with one block per path."""

    def test_policy_blocks(self, load_yaml_config: ConfigLoader) -> None:
        """Each path once, capabilities in Vault's order, reasons as comments."""
        config = config_with(
            load_yaml_config,
            token_key(targets=[{"type": "vault-kv", "path": "sts/agent", "key": "k"}]),
            vault={"url": "https://vault.example.com", "auth": {"method": "token", "token": "t"}},
        )
        policy = render_vault_policy(derive_permissions(config), include_optional=False)
        assert (
            'path "secret/data/sts/agent" {\n  capabilities = ["create", "read", "update"]\n}'
            in policy
        )
        assert 'path "secret/metadata/sts/agent" {' in policy
        assert "lookup-self" not in policy
        assert "# keys: agent" in policy
        full = render_vault_policy(derive_permissions(config))
        assert 'path "auth/token/renew-self" {\n  capabilities = ["update"]\n}' in full


class TestSecretListReadMode:
    """``list`` on Secrets only where the configuration opts into ``read: list``."""

    def test_get_mode_grants_no_list_on_secrets(self, load_yaml_config: ConfigLoader) -> None:
        """The default reads by name: no name-less list of Secrets anywhere."""
        model = derive_permissions(
            config_with(load_yaml_config, token_key(targets=[secret_target()]))
        )
        assert verbs(model, "secrets", None) == {("create", False)}

    def test_list_mode_grants_list_in_the_namespaces_of_its_targets(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """read: list on the kubernetes section: a required name-less list per namespace of a
        Secret target, beside the GET by name (a Secret not created by the rotator)."""
        config = config_with(
            load_yaml_config,
            token_key("a", targets=[secret_target("a-key", "monitoring")]),
            token_key("b", targets=[secret_target("b-key", "apps")]),
            kubernetes={"read": "list"},
        )
        model = derive_permissions(config)
        listed = {
            (p.namespace, p.required, p.keys)
            for p in model.kubernetes
            if (p.resource, p.verb, p.name) == ("secrets", "list", None)
        }
        assert listed == {("monitoring", True, ("a",)), ("apps", True, ("b",))}
        assert ("get", True) in verbs(model, "secrets", "a-key")
        rules = role_rules(model.kubernetes_scopes()[(None, "monitoring")])
        secret_rules = [r.to_dict() for r in rules if r.resources == ("secrets",)]
        assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "create"]} in (
            secret_rules
        )

    def test_a_context_override_applies_to_that_context_only(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """contexts: {prod: {read: list}} lists in prod; the default context keeps GETs."""
        config = config_with(
            load_yaml_config,
            token_key("a", targets=[secret_target("a-key", "monitoring", context="prod")]),
            token_key("b", targets=[secret_target("b-key", "monitoring")]),
            kubernetes={"contexts": {"prod": {"read": "list"}}},
        )
        model = derive_permissions(config)
        listed = [
            p.context
            for p in model.kubernetes
            if (p.resource, p.verb, p.name) == ("secrets", "list", None)
        ]
        assert listed == ["prod"]
