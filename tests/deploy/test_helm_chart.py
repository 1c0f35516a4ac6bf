"""The Helm chart deploy/helm/stackstate-key-rotator: linted, rendered and validated.

Rendering and linting go through Helm's own Go SDK (``helm-python-sdk``, see
:mod:`tests.deploy.chart`), with the default values and with non-default ones (CronJob mode,
monitoring on, several namespaces, existing ServiceAccount). Every rendered object is validated
with ``kubernetes-validate`` against the Kubernetes 1.28 to 1.32 schemas, strictly (unknown fields
are errors). ServiceMonitor and PrometheusRule are custom resources of the Prometheus Operator and
kubernetes-validate ships no CRD schemas, so those two are checked by rendering and by the
assertions below only.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from rotator.config import load_config
from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    ROOT,
    RULES_COPY,
    RULES_SOURCE,
    Rendered,
    chart_values,
    render,
)
from tests.plugins.cli import CliRunner

#: The Kubernetes minor versions every rendered manifest is validated against.
KUBERNETES_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32")
#: Custom resources without a schema in kubernetes-validate (Prometheus Operator CRDs).
CUSTOM_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})
EXAMPLE = ROOT / "config.example.yaml"
#: Every variable config.example.yaml reads, from the chart's existing Secret.
EXAMPLE_SECRET_ENV = {
    "STS_SERVICE_TOKEN": "service-token",
    "WEBHOOK_SECRET": "webhook-secret",
    "PAGERDUTY_ROUTING_KEY": "pagerduty-routing-key",
    "SLACK_WEBHOOK_URL": "slack-webhook-url",
}
EXAMPLE_ENV = {
    "STS_SERVICE_TOKEN": "dummy-token",
    "WEBHOOK_SECRET": "dummy-secret",
    "PAGERDUTY_ROUTING_KEY": "dummy-routing-key",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
}
SEVERAL_NAMESPACES = {
    name: [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [name]}]
    for name in ("apps", "monitoring", "open-telemetry")
}

#: Values of the non-default scenarios, by name (merged over the defaults by Helm).
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cronjob": {"mode": "cronjob", "cronjob": {"schedule": "*/30 * * * *", "timeZone": "UTC"}},
    "monitoring": {
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "prometheusRule": {"enabled": True},
        }
    },
    "several-namespaces": {
        "rbac": {"rules": SEVERAL_NAMESPACES},
        "extraSecretEnv": [{"name": "VAULT_TOKEN", "secretName": "vault", "key": "token"}],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
    },
    "existing-service-account": {
        "fullnameOverride": "key-rotator",
        "serviceAccount": {"create": False, "name": "platform-rotator"},
        "replicas": 1,
        "leaderElection": {"enabled": False},
        "image": {"repository": "registry.example.com/rotator", "tag": "1.2.3"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


@pytest.fixture(scope="module", params=list(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> tuple[str, Rendered]:
    """Each scenario's name and render."""
    name: str = request.param
    return name, render(copy.deepcopy(SCENARIOS[name]))


def normalized(rules: Iterable[dict[str, Any]]) -> set[tuple[tuple[str, ...], ...]]:
    """Role rules as comparable values (order of lists and of rules ignored)."""
    return {
        (
            tuple(sorted(rule["apiGroups"])),
            tuple(sorted(rule["resources"])),
            tuple(sorted(rule["verbs"])),
            tuple(sorted(rule.get("resourceNames") or [])),
        )
        for rule in rules
    }


def granted_rules(rendered: Rendered) -> dict[str, set[tuple[tuple[str, ...], ...]]]:
    """Every Role's rules, by namespace (several Roles in one namespace united)."""
    found: dict[str, set[tuple[tuple[str, ...], ...]]] = {}
    for role in rendered.of_kind("Role"):
        namespace = role["metadata"]["namespace"]
        found[namespace] = found.get(namespace, set()) | normalized(role["rules"])
    return found


def write(path: Path, data: dict[str, Any] | str) -> Path:
    """Write YAML (or text) and return the path."""
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def default_render() -> Rendered:
    """The chart rendered for TestDeploymentMode."""
    return render()


@pytest.fixture(scope="module")
def cronjob_render() -> Rendered:
    """The chart rendered for TestCronJobMode."""
    return render(copy.deepcopy(SCENARIOS["cronjob"]))


@pytest.fixture(scope="module")
def monitoring_render() -> Rendered:
    """The chart rendered for TestMonitoring."""
    return render(copy.deepcopy(SCENARIOS["monitoring"]))


class TestChartMetadata:
    """Chart.yaml and the lint."""

    def test_api_version_2_and_app_version_is_the_package_version(self) -> None:
        """apiVersion v2; appVersion (the default image tag) equals pyproject's version."""
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert chart["apiVersion"] == "v2"
        assert chart["name"] == "stackstate-key-rotator"
        assert chart["appVersion"] == project["version"]

    @pytest.mark.parametrize("name", list(SCENARIOS))
    def test_lint_is_clean(self, name: str) -> None:
        """helm lint --strict: no error and no warning (an info about the icon is fine)."""
        report = helm_python.lint(
            CHART, copy.deepcopy(SCENARIOS[name]), strict=True, namespace=NAMESPACE
        )
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


class TestEveryManifest:
    """Every scenario's objects against the Kubernetes API schemas."""

    @pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
    def test_valid_for_kubernetes(self, scenario: tuple[str, Rendered], version: str) -> None:
        """Strict schema validation of every built-in object; custom resources are listed."""
        _, rendered = scenario
        for manifest in rendered.objects:
            if manifest["kind"] in CUSTOM_KINDS:
                continue
            kubernetes_validate.validate(manifest, version, strict=True)

    def test_namespaced_in_the_release_unless_a_role(self, scenario: tuple[str, Rendered]) -> None:
        """Everything lives in the release namespace, except Roles/Bindings of rbac.rules."""
        _, rendered = scenario
        for manifest in rendered.objects:
            if manifest["kind"] not in ("Role", "RoleBinding"):
                assert manifest["metadata"]["namespace"] == NAMESPACE, manifest["kind"]

    def test_configuration_is_valid(
        self, scenario: tuple[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The ConfigMap's rotator.yaml loads (rotator's own validation) with the Secret env."""
        _, rendered = scenario
        monkeypatch.setenv("STS_SERVICE_TOKEN", "dummy-token")
        path = write(tmp_path / "rotator.yaml", rendered.one("ConfigMap")["data"]["rotator.yaml"])
        config = load_config(path)
        assert config.server.port == 9108


class TestDeploymentMode:
    """The default: the daemon, two replicas electing a leader."""

    def test_objects(self, default_render: Rendered) -> None:
        """Deployment, Service, PDB, ConfigMap, ServiceAccount, Roles; no CRDs by default."""
        assert default_render.kinds() == {
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        }

    def test_deployment_is_hardened_and_probed(self, default_render: Rendered) -> None:
        """Two replicas, non-root, read-only root, emptyDir /tmp, probes on the server port."""
        deployment = default_render.one("Deployment")
        assert deployment["spec"]["replicas"] == 2
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        args = container["args"]
        assert args[args.index("run") :] == ["run", "--config", "/etc/rotator/rotator.yaml"]
        assert container["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        configmap = default_render.one("ConfigMap")["metadata"]["name"]
        assert volumes[mounts["/etc/rotator"]]["configMap"]["name"] == configmap
        assert pod["serviceAccountName"] == default_render.one("ServiceAccount")["metadata"]["name"]

    def test_credentials_come_from_the_existing_secret(self, default_render: Rendered) -> None:
        """STS_SERVICE_TOKEN via secretKeyRef; the configuration refers to ${STS_SERVICE_TOKEN}."""
        (container,) = default_render.one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert container["env"] == [
            {
                "name": "STS_SERVICE_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": "stackstate-key-rotator-token", "key": "service-token"}
                },
            }
        ]
        assert default_render.config()["stackstate"]["service_token"] == "${STS_SERVICE_TOKEN}"
        assert not default_render.of_kind("Secret")

    def test_leader_election_on_in_the_release_namespace(self, default_render: Rendered) -> None:
        """The default_render config elects through a Lease the chart's Role names."""
        election = default_render.config()["leader_election"]
        assert election["enabled"] is True
        assert election["namespace"] == NAMESPACE
        role = default_render.one(
            "Role", f"{default_render.one('Deployment')['metadata']['name']}-leader-election"
        )
        assert role["metadata"]["namespace"] == NAMESPACE
        assert normalized(role["rules"]) == {
            (("coordination.k8s.io",), ("leases",), ("create",), ()),
            (("coordination.k8s.io",), ("leases",), ("get", "update"), (election["lease_name"],)),
        }

    def test_server_listens_on_the_service_port(self) -> None:
        """service.port sets server.listen, the container port and the Service port."""
        rendered = render({"service": {"port": 9200}})
        assert rendered.config()["server"]["listen"] == "0.0.0.0:9200"
        (port,) = rendered.one("Service")["spec"]["ports"]
        assert (port["port"], port["targetPort"]) == (9200, "metrics")

    def test_configuration_change_rolls_the_pods(self, default_render: Rendered) -> None:
        """The pod template carries a checksum of the configuration."""
        other = render({"config": {"defaults": {"validity": "60d"}}})
        annotation = "checksum/config"

        def checksum(r: Rendered) -> str:
            value: str = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"][
                annotation
            ]
            return value

        assert checksum(default_render) != checksum(other)

    def test_user_fields_survive_the_chart_owned_ones(self) -> None:
        """Other leader_election fields come from values.config; the chart sets its three."""
        rendered = render(
            {
                "config": {
                    "leader_election": {"namespace": "elsewhere", "lease_duration": "30s"},
                    "server": {"listen": "127.0.0.1:1"},
                }
            }
        )
        election = rendered.config()["leader_election"]
        assert election["lease_duration"] == "30s"
        assert election["namespace"] == NAMESPACE
        assert rendered.config()["server"]["listen"] == "0.0.0.0:9108"

    def test_notes_tell_how_to_finish(self, default_render: Rendered) -> None:
        """NOTES name the Secret to create, rotator rbac, and doctor."""
        assert "create secret generic stackstate-key-rotator-token" in default_render.notes
        assert "rbac -o helm-values" in default_render.notes
        assert "rotator doctor" in default_render.notes


class TestCronJobMode:
    """mode: cronjob renders a CronJob running ``rotator rotate`` instead of the Deployment."""

    def test_a_cronjob_and_no_daemon(self, cronjob_render: Rendered) -> None:
        """CronJob; no Deployment, Service, PDB or leader-election Role."""
        assert "CronJob" in cronjob_render.kinds()
        assert not {"Deployment", "Service", "PodDisruptionBudget"} & cronjob_render.kinds()
        assert not [r for r in cronjob_render.of_kind("Role") if "leader" in r["metadata"]["name"]]
        assert cronjob_render.config()["leader_election"]["enabled"] is False

    def test_runs_rotate_once_per_schedule(self, cronjob_render: Rendered) -> None:
        """rotate, never overlapping, no retry within a run, never restarted in place."""
        cronjob = cronjob_render.one("CronJob")
        assert cronjob["spec"]["schedule"] == "*/30 * * * *"
        assert cronjob["spec"]["timeZone"] == "UTC"
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        job = cronjob["spec"]["jobTemplate"]["spec"]
        assert job["backoffLimit"] == 0
        pod = job["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (container,) = pod["containers"]
        args = container["args"]
        assert args[args.index("rotate") :] == ["rotate", "--config", "/etc/rotator/rotator.yaml"]
        assert "livenessProbe" not in container and "ports" not in container
        assert container["securityContext"]["readOnlyRootFilesystem"] is True

    def test_monitoring_is_refused(self) -> None:
        """No /metrics in this mode: asking for a ServiceMonitor fails the render, saying why."""
        values = copy.deepcopy(SCENARIOS["cronjob"]) | SCENARIOS["monitoring"]
        with pytest.raises(helm_python.HelmError, match="need mode: deployment"):
            render(values)


class TestMonitoring:
    """ServiceMonitor and PrometheusRule: off by default, from the one rules source when on."""

    def test_the_chart_copy_of_the_rules_is_identical(self) -> None:
        """files/prometheusrule.yaml is byte for byte deploy/kubernetes/prometheusrule.yaml."""
        assert RULES_COPY.read_bytes() == RULES_SOURCE.read_bytes(), (
            f"copy {RULES_SOURCE.relative_to(ROOT)} to {RULES_COPY.relative_to(ROOT)}"
        )

    def test_prometheus_rule_carries_the_source_rules(self, monitoring_render: Rendered) -> None:
        """Rendered spec == the source's spec, Prometheus templates untouched by Helm."""
        source = yaml.safe_load(RULES_SOURCE.read_text())
        rule = monitoring_render.one("PrometheusRule")
        assert rule["apiVersion"] == source["apiVersion"]
        assert rule["spec"] == source["spec"]
        assert "{{ $labels.key }}" in yaml.safe_dump(rule["spec"])

    def test_service_monitor_scrapes_the_service_as_the_rules_job(
        self, monitoring_render: Rendered
    ) -> None:
        """Selects the Service's labels; the job label is the chart name the rules select."""
        monitor = monitoring_render.one("ServiceMonitor")
        service = monitoring_render.one("Service")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        assert selector.items() <= service["spec"]["selector"].items()
        job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
        assert f'up{{job="{job}"}}' in RULES_SOURCE.read_text()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == service["spec"]["ports"][0]["name"]
        assert monitor["metadata"]["labels"]["release"] == "prometheus"

    def test_off_by_default(self) -> None:
        """Without the operator's CRDs the cluster would reject them: not rendered by default."""
        assert not CUSTOM_KINDS & render().kinds()


class TestRbac:
    """Roles from rbac.rules, bound to the ServiceAccount."""

    def test_one_role_and_binding_per_namespace(self) -> None:
        """Each namespace of rbac.rules gets exactly its rules, bound to the release's SA."""
        rendered = render(copy.deepcopy(SCENARIOS["several-namespaces"]))
        granted = granted_rules(rendered)
        for namespace, rules in SEVERAL_NAMESPACES.items():
            assert granted[namespace] == normalized(rules)
        account = rendered.one("ServiceAccount")["metadata"]
        for binding in rendered.of_kind("RoleBinding"):
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
            ]

    def test_an_existing_service_account(self) -> None:
        """serviceAccount.create false: none rendered, the pods and bindings use the name."""
        rendered = render(copy.deepcopy(SCENARIOS["existing-service-account"]))
        assert not rendered.of_kind("ServiceAccount")
        pod = rendered.one("Deployment")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "platform-rotator"
        assert {b["subjects"][0]["name"] for b in rendered.of_kind("RoleBinding")} == {
            "platform-rotator"
        }
        assert "PodDisruptionBudget" not in rendered.kinds()  # one replica
        assert rendered.config()["leader_election"]["enabled"] is False

    def test_rbac_create_false_renders_no_role(self) -> None:
        """For clusters where RBAC is managed elsewhere."""
        assert not {"Role", "RoleBinding"} & render({"rbac": {"create": False}}).kinds()

    def test_default_rules_are_what_the_default_config_needs(
        self, run_cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """values.yaml's rbac.rules == ``rotator rbac -o helm-values`` of its own config."""
        monkeypatch.setenv("STS_SERVICE_TOKEN", "dummy-token")
        rendered = render()
        path = write(tmp_path / "rotator.yaml", rendered.one("ConfigMap")["data"]["rotator.yaml"])
        result = run_cli("--config", str(path), "rbac", "-o", "helm-values")
        printed = yaml.safe_load(result.out)["rbac"]["rules"]
        defaults = chart_values()["rbac"]["rules"]
        assert {ns: normalized(r) for ns, r in defaults.items()} == {
            ns: normalized(r) for ns, r in printed.items()
        }
        assert {ns: len(r) for ns, r in defaults.items()} == {
            ns: len(r) for ns, r in printed.items()
        }

    @pytest.mark.parametrize(
        ("mode", "extra"),
        [("deployment", {}), ("cronjob", {"lock": {"type": "lease"}}), ("cronjob", {})],
        ids=["deployment", "cronjob-lease-lock", "cronjob"],
    )
    def test_grants_exactly_what_rotator_rbac_prints_for_the_example(
        self,
        run_cli: CliRunner,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        mode: str,
        extra: dict[str, Any],
    ) -> None:
        """config.example.yaml with its ``rbac -o helm-values`` as values: the rendered Roles
        grant exactly what ``rotator rbac`` prints for the configuration the chart renders (the
        Lease in the release namespace included when it is used), nothing more."""
        for name, value in EXAMPLE_ENV.items():
            monkeypatch.setenv(name, value)
        config = yaml.safe_load(EXAMPLE.read_text()) | extra
        source = write(tmp_path / "source.yaml", config)
        printed = run_cli("--config", str(source), "rbac", "-o", "helm-values")
        assert printed.code == 0, printed.err
        values = yaml.safe_load(printed.out)
        values |= {"mode": mode, "config": config, "secretEnv": EXAMPLE_SECRET_ENV}
        rendered = render(values)

        path = write(tmp_path / "rotator.yaml", rendered.one("ConfigMap")["data"]["rotator.yaml"])
        account = rendered.one("ServiceAccount")["metadata"]["name"]
        needed = run_cli(
            "--config", str(path), "rbac", "-o", "json",
            "--service-account", account, "--namespace", NAMESPACE,
        )  # fmt: skip
        assert needed.code == 0, needed.err
        expected: dict[str, set[tuple[tuple[str, ...], ...]]] = {}
        for role in yaml.safe_load(needed.out)["kubernetes"]:
            expected[role["namespace"]] = normalized(role["rules"])
        # The Lease of the rendered configuration, when it is used.
        assert (NAMESPACE in expected) == (mode == "deployment" or bool(extra))
        assert granted_rules(rendered) == expected
        workload = rendered.one("Deployment" if mode == "deployment" else "CronJob")
        pod = (
            workload["spec"]["template"]
            if mode == "deployment"
            else (workload["spec"]["jobTemplate"]["spec"]["template"])
        )
        (container,) = pod["spec"]["containers"]
        assert {e["name"] for e in container["env"]} == set(EXAMPLE_SECRET_ENV)
