"""The configuration file: loading, models, cross-field checks, policy merge and error messages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import SecretStr, ValidationError
from ruamel.yaml import YAML

from rotator.alerts.event import AlertEvent
from rotator.cli.config_cmd import describe_key
from rotator.config import (
    DEFAULT_ALERT_EVENTS,
    CommandConsumer,
    Defaults,
    FileTarget,
    KeyKind,
    KubernetesSecretTarget,
    KubernetesWorkloadConsumer,
    LinuxAgentPreset,
    ManagedKey,
    OtelCollectorPreset,
    PagerDutyAlert,
    RotatorConfig,
    SlackAlert,
    SuseObservabilityAgentPreset,
    VaultAppRoleAuth,
    VaultKubernetesAuth,
    VaultKvTarget,
    VaultTokenAuth,
    WebhookAlert,
    config_json_schema,
    load_config,
    resolve_config_path,
    validation_error_lines,
)
from rotator.errors import ConfigError
from tests.plugins.config import ConfigErrorText, ConfigLoader, minimal_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"

#: The environment the example's header tells users to set.
EXAMPLE_ENV = {
    "STS_SERVICE_TOKEN": "example-service-token",
    "WEBHOOK_SECRET": "example-webhook-secret",
    "PAGERDUTY_ROUTING_KEY": "example-routing-key",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
}

# A copy of the public contract (shared/config-contract.yaml), which is not shipped with the
# repository: every field it names must keep loading.
CONTRACT = """
stackstate:
  url: https://observability.example.com    # base URL; http:// only with allow_insecure_http: true
  api_path: /api                             # default /api
  service_token: ${STS_SERVICE_TOKEN}        # sent as X-API-Key; or service_token_file
  # api_token: ...                           # sent as X-API-Token; or api_token_file
  # service_bearer_file: /var/run/secrets/kubernetes.io/serviceaccount/token  # X-API-ServiceBearer
  ca_file: null                              # extra CA bundle; TLS is verified by default
  timeout: 10s
  allow_insecure_http: false

kubernetes:                                  # optional; in-cluster config when nothing is given
  kubeconfig: null
  context: null                              # targets/consumers may name another context

vault:                                       # optional; needed by vault-kv targets
  url: https://vault.example.com:8200        # http:// is accepted (dev Vault); TLS verified for https
  namespace: null
  auth:
    method: kubernetes                       # token | approle | kubernetes
    role: stackstate-key-rotator             # kubernetes: role (+ jwt_file, default SA token)
    # token: ${VAULT_TOKEN}                  # token: token / token_file
    # role_id: ..., secret_id_file: ...      # approle
  ca_file: null

defaults:                                    # every managed key inherits these
  validity: 90d                              # lifetime of each new key
  rotate_before: 14d                         # rotate when expiry is this close (or "30%" of validity)
  grace_period: 10m                          # after all consumers switched, before revoking the old key
  switch_timeout: 30m                        # consumers that have not switched by then -> alert, no revoke
  orphan_min_age: 1h                         # unreferenced managed keys older than this are swept
  schedule:
    interval: 1h                             # or cron: "0 */6 * * *"
  # windows: ["0 2-5 * * 1-5"]               # optional maintenance windows for rotations

keys:
  - name: agent-prod                         # managed key name; StackState keys are named <name>-<UTC timestamp>
    kind: service-token                      # service-token | ingestion-api-key
    roles: [stackstate-ingest-telemetry]     # service-token only
    description: Agent key of cluster prod   # ingestion-api-key: stored; both: plus a managed-by marker
    validity: 90d                            # any defaults field may be overridden per key
    # adopt_key_id: 250558013078953          # id of the hand-made key the targets hold today, revoked once replaced
    preset:                                  # optional shorthand, expands to targets + consumers
      type: suse-observability-agent
      release: suse-observability-agent
      namespace: suse-observability
    targets:
      - type: kubernetes-secret
        namespace: open-telemetry
        name: open-telemetry-collector
        key: API_KEY
        # context: other-cluster
      - type: vault-kv
        mount: secret
        path: stackstate/agent-prod
        key: api_key
        kv_version: 2                        # 1 | 2
      - type: file
        path: /etc/stackstate-agent/stackstate.yaml
        format: yaml                         # raw | env | yaml
        field: api_key                       # env: variable name; yaml: dotted path
    consumers:
      - type: kubernetes-workload
        namespace: open-telemetry
        kind: Deployment                     # Deployment | DaemonSet | StatefulSet
        name: opentelemetry-collector        # or selector: {app: otel}
        action: restart                      # restart | wait (Reloader/VSO/ESO restarts it)
      - type: synced-secret                  # a Secret that ESO/VSO syncs from a vault-kv target
        namespace: apps
        name: agent-key
        key: api_key
      - type: command
        command: ["systemctl", "restart", "stackstate-agent"]
        timeout: 2m

alerts:
  - type: webhook
    url: https://hooks.example.com/rotator
    hmac_secret: ${WEBHOOK_SECRET}           # X-Rotator-Signature: sha256=<hex HMAC of body>
    events: [rotation_failed, key_expiring, key_expired, switch_timeout, recovered]
  - type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
  - type: pagerduty
    routing_key: ${PAGERDUTY_ROUTING_KEY}
  - type: alertmanager
    url: http://alertmanager.monitoring:9093
  - type: command
    command: ["/usr/local/bin/notify.sh"]    # event JSON on stdin

server:                                      # the daemon's HTTP endpoints: /metrics /healthz /readyz
  listen: 0.0.0.0:9108

leader_election:                             # several replicas, one active
  enabled: false
  namespace: suse-observability
  lease_name: stackstate-key-rotator
"""  # noqa: E501 - a verbatim copy of the contract, its long comments included


def key_with(**fields: Any) -> dict[str, Any]:
    """The minimal managed key with some fields replaced (None removes a field)."""
    key: dict[str, Any] = minimal_config()["keys"][0]
    key.update(fields)
    return {name: value for name, value in key.items() if value is not None}


def config_with(*keys: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """The minimal configuration with other keys and sections."""
    data = minimal_config()
    if keys:
        data["keys"] = list(keys)
    data.update(sections)
    return data


def secret_target(name: str = "agent-key", key: str = "API_KEY", **extra: Any) -> dict[str, Any]:
    """A kubernetes-secret target."""
    return {
        "type": "kubernetes-secret",
        "namespace": "monitoring",
        "name": name,
        "key": key,
    } | extra


VAULT = {"url": "https://vault.example.com:8200", "auth": {"method": "kubernetes", "role": "r"}}


class TestLoadingTheFile:
    """load_config reads one YAML file and reports file-level problems as ConfigError."""

    def test_minimal_file_loads(self, load_yaml_config: ConfigLoader) -> None:
        """A file with a stackstate section and one key loads with defaults everywhere else."""
        config = load_yaml_config(minimal_config())
        assert config.stackstate.url == "https://sts.example.com"
        assert config.keys[0].kind is KeyKind.SERVICE_TOKEN
        assert config.vault is None
        assert config.alerts == []
        assert config.kubernetes.kubeconfig is None
        assert config.server.port == 9108

    def test_missing_file_names_it_and_the_ways_to_choose_one(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming the file, --config and ROTATOR_CONFIG."""
        with pytest.raises(ConfigError) as info:
            load_config(tmp_path / "nope.yaml", environ={})
        message = str(info.value)
        assert str(tmp_path / "nope.yaml") in message
        assert "--config" in message
        assert "ROTATOR_CONFIG" in message

    def test_directory_is_refused(self, tmp_path: Path) -> None:
        """A directory given as the file is a ConfigError naming it."""
        with pytest.raises(ConfigError, match="is a directory"):
            load_config(tmp_path, environ={})

    def test_non_utf8_file_is_refused(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 text is a ConfigError."""
        path = tmp_path / "rotator.yaml"
        path.write_bytes(b"stackstate: \xff\xfe\n")
        with pytest.raises(ConfigError, match="not UTF-8"):
            load_config(path, environ={})

    def test_yaml_syntax_error_gives_line_and_column(self, config_error: ConfigErrorText) -> None:
        """A YAML syntax error names the file, line and column."""
        message = config_error("stackstate:\n  url: [https://x\nkeys: []\n")
        assert "invalid YAML in" in message
        assert "rotator.yaml" in message
        assert "line " in message
        assert "column " in message

    def test_tab_indentation_is_located(self, config_error: ConfigErrorText) -> None:
        """A tab where YAML forbids one is reported at its line."""
        message = config_error("stackstate:\n\turl: https://x\n")
        assert "line 2, column 1" in message

    def test_duplicate_keys_are_refused_without_their_values(
        self, config_error: ConfigErrorText
    ) -> None:
        """A key given twice is an error naming the key, never the two values."""
        message = config_error(
            "stackstate:\n  service_token: first-secret-value\n  service_token: second-secret\n"
        )
        assert "duplicate key 'service_token'" in message
        assert "line 3" in message
        assert "first-secret-value" not in message
        assert "second-secret" not in message

    @pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
    def test_empty_file_is_refused(self, config_error: ConfigErrorText, text: str) -> None:
        """An empty file (or one with only comments) is a ConfigError saying so."""
        assert "is empty" in config_error(text)

    @pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("hello\n", "str")])
    def test_top_level_must_be_a_mapping(
        self, config_error: ConfigErrorText, text: str, kind: str
    ) -> None:
        """A top level that is not a mapping is a ConfigError naming what it is."""
        message = config_error(text)
        assert "top level must be a mapping" in message
        assert kind in message

    def test_yaml_1_2_keeps_no_and_on_as_strings(self, load_yaml_config: ConfigLoader) -> None:
        """YAML 1.2 rules: `no` is a string (the Norway problem does not exist here)."""
        text = (
            "stackstate: {url: https://x.example, service_token: abcdefgh}\n"
            "kubernetes: {context: no}\n"
            "keys: []\n"
        )
        assert load_yaml_config(text).kubernetes.context == "no"

    def test_anchors_and_merge_keys_share_settings(self, load_yaml_config: ConfigLoader) -> None:
        """YAML anchors and `<<:` merge keys let keys share their settings."""
        text = (
            "stackstate: {url: https://x.example, service_token: abcdefgh}\n"
            "keys:\n"
            "  - &base\n"
            "    name: a\n"
            "    kind: service-token\n"
            "    roles: [r]\n"
            "    validity: 30d\n"
            "    targets: [{type: kubernetes-secret, namespace: n, name: s, key: A}]\n"
            "  - <<: *base\n"
            "    name: b\n"
            "    targets: [{type: kubernetes-secret, namespace: n, name: s, key: B}]\n"
        )
        first, second = load_yaml_config(text).keys
        assert second.name == "b"
        assert second.roles == first.roles == ["r"]
        assert second.policy.validity == timedelta(days=30)

    def test_source_is_the_absolute_file(self, load_yaml_config: ConfigLoader) -> None:
        """The loaded config remembers its file, and does not dump it."""
        config = load_yaml_config(minimal_config())
        assert config.source is not None
        assert config.source.is_absolute()
        assert config.source.name == "rotator.yaml"
        assert "source" not in config.model_dump()

    def test_source_is_not_a_user_setting(self, config_error: ConfigErrorText) -> None:
        """Writing `source:` in the file is an unknown field."""
        assert "  source: unknown field" in config_error(config_with(source="/tmp/x"))

    def test_accepts_a_string_path(self, tmp_path: Path) -> None:
        """load_config takes a str as well as a Path."""
        path = tmp_path / "c.yaml"
        path.write_text("stackstate: {url: https://x.example, service_token: abcdefgh}\nkeys: []\n")
        assert load_config(str(path), environ={}).keys == []

    def test_process_environment_is_the_default(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without environ, ${VAR} reads the process environment."""
        monkeypatch.setenv("ROTATOR_TEST_TOKEN", "from-the-process-env")
        path = tmp_path / "c.yaml"
        path.write_text(
            "stackstate: {url: https://x.example, service_token: '${ROTATOR_TEST_TOKEN}'}\n"
            "keys: []\n"
        )
        token = load_config(path).stackstate.service_token
        assert token is not None
        assert token.get_secret_value() == "from-the-process-env"


class TestResolveConfigPath:
    """--config wins over $ROTATOR_CONFIG, which wins over ./rotator.yaml."""

    def test_cli_value_wins(self) -> None:
        """--config is used when given."""
        assert resolve_config_path("/a.yaml", {"ROTATOR_CONFIG": "/b.yaml"}) == Path("/a.yaml")

    def test_environment_variable_is_next(self) -> None:
        """$ROTATOR_CONFIG is used without --config."""
        assert resolve_config_path(None, {"ROTATOR_CONFIG": "/b.yaml"}) == Path("/b.yaml")

    def test_default_is_rotator_yaml_in_the_working_directory(self) -> None:
        """Neither given (or both empty): ./rotator.yaml."""
        assert resolve_config_path(None, {}) == Path("rotator.yaml")
        assert resolve_config_path("", {"ROTATOR_CONFIG": ""}) == Path("rotator.yaml")

    def test_home_is_expanded(self) -> None:
        """~ in the path is expanded."""
        assert resolve_config_path("~/r.yaml", {}) == Path.home() / "r.yaml"


class TestErrorMessages:
    """Validation problems become one readable block of `path: message` lines."""

    def test_block_names_the_file_then_one_indented_line_per_problem(
        self, config_error: ConfigErrorText, tmp_path: Path
    ) -> None:
        """The first line names the file; every problem follows on its own indented line."""
        data = config_with(
            key_with(targets=[{"type": "kubernetes-secret", "name": "x", "key": "k"}]),
        )
        data["stackstate"]["timout"] = "5s"
        lines = config_error(data).splitlines()
        assert lines[0] == f"invalid configuration in {tmp_path / 'rotator.yaml'}:"
        assert "  stackstate.timout: unknown field; did you mean 'timeout'?" in lines
        assert "  keys[0].targets[0].namespace: field required" in lines

    def test_discriminator_tags_are_not_part_of_paths(self, config_error: ConfigErrorText) -> None:
        """A field inside a tagged union is shown as keys[1].targets[0].namespace."""
        data = config_with(
            key_with(),
            key_with(
                name="second", targets=[{"type": "kubernetes-secret", "name": "s", "key": "k"}]
            ),
        )
        message = config_error(data)
        assert "keys[1].targets[0].namespace: field required" in message
        assert "kubernetes-secret." not in message

    def test_unknown_type_lists_the_known_ones(self, config_error: ConfigErrorText) -> None:
        """An unknown target type names the known types."""
        message = config_error(config_with(key_with(targets=[{"type": "secret"}])))
        assert (
            "keys[0].targets[0]: unknown type; expected one of: kubernetes-secret, "
            "vault-kv, file" in message
        )

    def test_missing_type_lists_the_known_ones(self, config_error: ConfigErrorText) -> None:
        """A consumer without type says which types exist."""
        data = config_with(key_with(consumers=[{"namespace": "a"}]))
        assert (
            "keys[0].consumers[0]: missing type (one of: kubernetes-workload, synced-secret, "
            "command)" in config_error(data)
        )

    def test_unknown_vault_auth_method_is_named(self, config_error: ConfigErrorText) -> None:
        """The vault auth union is keyed by method."""
        data = config_with(vault={"url": "https://v.example", "auth": {"method": "ldap"}})
        assert "vault.auth: unknown method; expected one of: token, approle, kubernetes" in (
            config_error(data)
        )

    def test_fields_inside_a_tagged_union_keep_their_own_names(
        self, config_error: ConfigErrorText
    ) -> None:
        """The command consumer's command field is not mistaken for its tag."""
        data = config_with(key_with(consumers=[{"type": "command", "command": []}]))
        assert "keys[0].consumers[0].command: must not be empty" in config_error(data)

    def test_wrong_shapes_are_named(self, config_error: ConfigErrorText) -> None:
        """A list where a mapping belongs, and the reverse, say what was expected."""
        message = config_error(config_with(keys="agent", server=["x"]))
        assert "keys: must be a list" in message
        assert "server: must be a mapping" in message

    def test_unknown_top_level_section(self, config_error: ConfigErrorText) -> None:
        """A misspelt section is named, with a suggestion."""
        assert "alert: unknown field; did you mean 'alerts'?" in config_error(config_with(alert=[]))

    def test_misspelt_field_with_null_value_is_still_reported(
        self, config_error: ConfigErrorText
    ) -> None:
        """`namspace:` with no value is an unknown field, not silently dropped."""
        data = config_with(key_with(targets=[secret_target(namspace=None)]))
        assert "keys[0].targets[0].namspace: unknown field; did you mean 'namespace'?" in (
            config_error(data)
        )

    def test_lines_of_a_direct_validation(self) -> None:
        """validation_error_lines formats a ValidationError of RotatorConfig.model_validate."""
        data = config_with(key_with(targets=[{"type": "vault-kv", "key": "k"}]))
        with pytest.raises(ValidationError) as info:
            RotatorConfig.model_validate(data)
        assert validation_error_lines(info.value) == ["keys[0].targets[0].path: field required"]

    def test_error_is_not_chained_to_the_validation_error(self, tmp_path: Path) -> None:
        """The ConfigError carries no pydantic exception (whose text quotes inputs)."""
        path = tmp_path / "c.yaml"
        path.write_text("stackstate: {url: ftp://x}\nkeys: []\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        assert info.value.__cause__ is None
        assert info.value.__context__ is None


class TestStackStateSection:
    """The stackstate: section."""

    def test_trailing_slash_of_url_is_removed(self, load_yaml_config: ConfigLoader) -> None:
        """https://sts.example.com/ becomes https://sts.example.com."""
        data = config_with(stackstate={"url": "https://sts.example.com/", "api_token": "abcdefgh"})
        settings = load_yaml_config(data).stackstate
        assert settings.url == "https://sts.example.com"
        assert settings.api_path == "/api"
        assert settings.api_url == "https://sts.example.com/api"

    def test_api_path_must_start_with_a_slash(self, config_error: ConfigErrorText) -> None:
        """api_path: api is refused at stackstate.api_path."""
        data = minimal_config()
        data["stackstate"]["api_path"] = "api"
        assert 'stackstate.api_path: must start with "/"' in config_error(data)

    def test_api_path_trailing_slash_is_removed(self, load_yaml_config: ConfigLoader) -> None:
        """api_path /sts/api/ becomes /sts/api; a bare / stays."""
        data = minimal_config()
        data["stackstate"]["api_path"] = "/sts/api/"
        assert load_yaml_config(data).stackstate.api_url == "https://sts.example.com/sts/api"
        data["stackstate"]["api_path"] = "/"
        assert load_yaml_config(data).stackstate.api_url == "https://sts.example.com"

    def test_plain_http_needs_allow_insecure_http(self, config_error: ConfigErrorText) -> None:
        """http:// without the flag is refused at stackstate.url."""
        data = minimal_config()
        data["stackstate"]["url"] = "http://sts.local:7070"
        assert (
            "stackstate.url: http:// URLs need stackstate.allow_insecure_http: true"
            in config_error(data)
        )

    def test_plain_http_with_the_flag_loads(self, load_yaml_config: ConfigLoader) -> None:
        """http:// with allow_insecure_http: true is accepted."""
        data = minimal_config()
        data["stackstate"].update(url="http://127.0.0.1:7070", allow_insecure_http=True)
        assert load_yaml_config(data).stackstate.url == "http://127.0.0.1:7070"

    @pytest.mark.parametrize(
        ("url", "fragment"),
        [
            ("ftp://sts.example.com", "http:// or https://"),
            ("sts.example.com", "http:// or https://"),
            ("https://", "no host"),
            ("https://admin:pw@sts.example.com", "must not contain credentials"),
            ("https://sts.example.com/?x=1", "query string"),
            ("https://sts.example.com:99999", "invalid port"),
        ],
    )
    def test_bad_urls_are_refused_without_echo(
        self, config_error: ConfigErrorText, url: str, fragment: str
    ) -> None:
        """Malformed URLs are refused at stackstate.url, and the URL is not repeated."""
        data = minimal_config()
        data["stackstate"]["url"] = url
        message = config_error(data)
        assert "stackstate.url: " in message
        assert fragment in message
        assert url not in message

    def test_a_credential_is_required(self, config_error: ConfigErrorText) -> None:
        """Without any credential the error is at stackstate.service_token."""
        data = config_with(stackstate={"url": "https://sts.example.com"})
        assert "stackstate.service_token: no credential" in config_error(data)

    def test_service_bearer_file_alone_is_a_credential(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """The service-account bearer file is kept as a path and counts as a credential."""
        data = config_with(
            stackstate={"url": "https://sts.example.com", "service_bearer_file": "/var/run/t"}
        )
        settings = load_yaml_config(data).stackstate
        assert settings.service_bearer_file == Path("/var/run/t")
        assert settings.service_token is None

    def test_timeout_and_ca_file(self, load_yaml_config: ConfigLoader, tmp_path: Path) -> None:
        """timeout takes a duration; ca_file must exist and relative paths follow the file."""
        (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
        data = minimal_config()
        data["stackstate"].update(timeout="30s", ca_file="ca.pem")
        settings = load_yaml_config(data).stackstate
        assert settings.timeout == timedelta(seconds=30)
        assert settings.ca_file == tmp_path / "ca.pem"

    def test_missing_ca_file_is_named(self, config_error: ConfigErrorText) -> None:
        """A ca_file that does not exist is reported with its path."""
        data = minimal_config()
        data["stackstate"]["ca_file"] = "/nonexistent/ca.pem"
        assert "stackstate.ca_file: file not found: /nonexistent/ca.pem" in config_error(data)

    def test_null_means_default(self, load_yaml_config: ConfigLoader) -> None:
        """api_path: null and timeout: null take their defaults."""
        data = minimal_config()
        data["stackstate"].update(api_path=None, timeout=None)
        settings = load_yaml_config(data).stackstate
        assert settings.api_path == "/api"
        assert settings.timeout == timedelta(seconds=10)

    def test_models_are_frozen(self, load_yaml_config: ConfigLoader) -> None:
        """Assigning to a loaded setting fails."""
        settings = load_yaml_config(minimal_config()).stackstate
        with pytest.raises(ValidationError):
            settings.url = "https://other.example"  # type: ignore[misc]


class TestVaultSection:
    """The vault: section and its three auth methods."""

    def test_kubernetes_auth_defaults(self, load_yaml_config: ConfigLoader) -> None:
        """Kubernetes auth defaults to the pod's SA token and the kubernetes mount."""
        vault = load_yaml_config(config_with(vault=VAULT)).vault
        assert vault is not None
        assert isinstance(vault.auth, VaultKubernetesAuth)
        assert vault.auth.jwt_file == Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
        assert vault.auth.mount == "kubernetes"
        assert vault.timeout == timedelta(seconds=10)

    def test_token_auth(self, load_yaml_config: ConfigLoader) -> None:
        """Token auth holds the token as a secret."""
        data = config_with(
            vault={"url": "http://127.0.0.1:8200/", "auth": {"method": "token", "token": "hvs.x"}}
        )
        vault = load_yaml_config(data).vault
        assert vault is not None
        assert vault.url == "http://127.0.0.1:8200"
        assert isinstance(vault.auth, VaultTokenAuth)
        assert vault.auth.token == SecretStr("hvs.x")

    def test_token_auth_needs_a_token(self, config_error: ConfigErrorText) -> None:
        """Token auth without token or token_file is refused at vault.auth.token."""
        data = config_with(vault={"url": "https://v.example", "auth": {"method": "token"}})
        assert "vault.auth.token: give token or token_file" in config_error(data)

    def test_approle_auth(self, load_yaml_config: ConfigLoader) -> None:
        """AppRole takes role_id, secret_id and a mount defaulting to approle."""
        auth = {"method": "approle", "role_id": "rid", "secret_id": "sid-123456", "mount": "/ar/"}
        vault = load_yaml_config(
            config_with(vault={"url": "https://v.example", "auth": auth})
        ).vault
        assert vault is not None
        assert isinstance(vault.auth, VaultAppRoleAuth)
        assert vault.auth.mount == "ar"
        assert vault.auth.secret_id is not None

    def test_approle_needs_a_secret_id(self, config_error: ConfigErrorText) -> None:
        """AppRole without secret_id is refused at vault.auth.secret_id."""
        auth = {"method": "approle", "role_id": "rid"}
        data = config_with(vault={"url": "https://v.example", "auth": auth})
        assert "vault.auth.secret_id: give secret_id or secret_id_file" in config_error(data)

    def test_auth_is_required(self, config_error: ConfigErrorText) -> None:
        """A vault section without auth is refused at vault.auth."""
        data = config_with(vault={"url": "https://v.example"})
        assert "vault.auth: field required" in config_error(data)


class TestDefaultsAndPolicy:
    """defaults: is merged into every key's effective policy."""

    def test_built_in_defaults(self, load_yaml_config: ConfigLoader) -> None:
        """Without a defaults section the documented defaults apply."""
        policy = load_yaml_config(minimal_config()).keys[0].policy
        assert policy.validity == timedelta(days=90)
        assert policy.rotate_before == timedelta(days=14)
        assert policy.rotate_before_percent is None
        assert policy.grace_period == timedelta(minutes=10)
        assert policy.switch_timeout == timedelta(minutes=30)
        assert policy.orphan_min_age == timedelta(hours=1)
        assert policy.schedule.interval == timedelta(hours=1)
        assert policy.schedule.cron is None
        assert policy.windows == ()
        assert policy.alert_before == timedelta(days=7)

    def test_keys_inherit_the_defaults_section(self, load_yaml_config: ConfigLoader) -> None:
        """Every key without overrides gets the defaults section's values."""
        defaults = {
            "validity": "30d",
            "rotate_before": "5d",
            "grace_period": "1m",
            "switch_timeout": "15m",
            "orphan_min_age": "2h",
            "schedule": {"cron": "0 */6 * * *"},
            "windows": ["* 2-5 * * 1-5"],
            "alert_before": "2d",
        }
        config = load_yaml_config(config_with(key_with(), defaults=defaults))
        policy = config.keys[0].policy
        assert policy.validity == timedelta(days=30)
        assert policy.rotate_before == timedelta(days=5)
        assert policy.grace_period == timedelta(minutes=1)
        assert policy.switch_timeout == timedelta(minutes=15)
        assert policy.orphan_min_age == timedelta(hours=2)
        assert policy.schedule.cron == "0 */6 * * *"
        assert policy.schedule.interval is None
        assert policy.windows == ("* 2-5 * * 1-5",)
        assert policy.alert_before == timedelta(days=2)

    def test_per_key_override_affects_only_that_key(self, load_yaml_config: ConfigLoader) -> None:
        """A key's override wins for that key; the other key keeps the defaults."""
        config = load_yaml_config(
            config_with(
                key_with(name="short", validity="30d", grace_period="0s", windows=[]),
                key_with(name="normal", targets=[secret_target(name="other")]),
                defaults={"windows": ["* 2-5 * * *"]},
            )
        )
        short, normal = config.keys
        assert short.policy.validity == timedelta(days=30)
        assert short.policy.grace_period == timedelta(0)
        assert short.policy.windows == ()
        assert short.policy.rotate_before == timedelta(days=14)
        assert normal.policy.validity == timedelta(days=90)
        assert normal.policy.windows == ("* 2-5 * * *",)
        assert short.overrides() == {"validity", "grace_period", "windows"}

    def test_percentage_resolves_against_the_keys_own_validity(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """rotate_before 30% in defaults is 30% of each key's effective validity."""
        config = load_yaml_config(
            config_with(
                key_with(name="a"),
                key_with(name="b", validity="10d", targets=[secret_target(name="b")]),
                defaults={"rotate_before": "30%"},
            )
        )
        assert config.keys[0].policy.rotate_before == timedelta(days=27)
        assert config.keys[1].policy.rotate_before == timedelta(days=3)
        assert config.keys[1].policy.rotate_before_percent == 30
        assert str(config.defaults.rotate_before) == "30%"

    def test_cron_schedule_override(self, load_yaml_config: ConfigLoader) -> None:
        """A key may switch to a cron schedule while others keep the interval."""
        config = load_yaml_config(config_with(key_with(schedule={"cron": "15 3 * * *"})))
        schedule = config.keys[0].policy.schedule
        assert (schedule.interval, schedule.cron) == (None, "15 3 * * *")

    def test_interval_and_cron_together_are_refused(self, config_error: ConfigErrorText) -> None:
        """A schedule gives interval or cron, not both."""
        data = config_with(defaults={"schedule": {"interval": "1h", "cron": "0 * * * *"}})
        assert "defaults.schedule.cron: give either interval or cron, not both" in (
            config_error(data)
        )

    def test_invalid_cron_is_located(self, config_error: ConfigErrorText) -> None:
        """Bad cron lines are named by their path, in defaults and in keys."""
        data = config_with(
            key_with(windows=["* * * * *", "0 25 * * *"]),
            defaults={"schedule": {"cron": "* * *"}},
        )
        message = config_error(data)
        assert "defaults.schedule.cron: a cron expression has 5 fields" in message
        assert "keys[0].windows[1]: hour field" in message

    def test_rotate_before_must_be_shorter_than_validity(
        self, config_error: ConfigErrorText
    ) -> None:
        """rotate_before >= validity in defaults is refused at defaults.rotate_before."""
        data = config_with(defaults={"validity": "10d", "rotate_before": "10d"})
        assert (
            "defaults.rotate_before: rotate_before (10d) must be shorter than validity (10d)"
            in (config_error(data))
        )

    def test_short_key_validity_against_inherited_rotate_before(
        self, config_error: ConfigErrorText
    ) -> None:
        """A key whose validity undercuts the inherited rotate_before is refused at its validity."""
        message = config_error(config_with(key_with(validity="7d")))
        assert (
            "keys[0].validity: rotate_before (14d) must be shorter than validity (7d), or every "
            "key would be rotated at once (rotate_before from defaults)" in message
        )

    @pytest.mark.parametrize("percent", ["0%", "100%", "150%", "abc%"])
    def test_percentage_out_of_range(self, config_error: ConfigErrorText, percent: str) -> None:
        """Percentages must lie between 1% and 99%."""
        message = config_error(config_with(defaults={"rotate_before": percent}))
        assert "defaults.rotate_before: " in message
        assert "%" in message

    def test_alert_before_must_be_shorter_than_rotate_before(
        self, config_error: ConfigErrorText
    ) -> None:
        """An explicit alert_before at or above rotate_before would fire before every rotation."""
        message = config_error(
            config_with(key_with(rotate_before="5d"), defaults={"alert_before": "7d"})
        )
        assert (
            "keys[0].rotate_before: alert_before (7d) must be shorter than rotate_before (5d), or "
            "key_expiring would fire before every rotation (alert_before from defaults)" in message
        )

    def test_default_alert_before_is_capped_at_half_of_rotate_before(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Unset, alert_before is 7d or half of rotate_before, whichever is shorter."""
        config = load_yaml_config(
            config_with(
                key_with(name="a", rotate_before="5d"),
                key_with(name="b", targets=[secret_target(name="b")]),
            )
        )
        assert config.keys[0].policy.alert_before == timedelta(days=2, hours=12)
        assert config.keys[1].policy.alert_before == timedelta(days=7)

    def test_rotation_must_outlast_switch_timeout_and_grace(
        self, config_error: ConfigErrorText
    ) -> None:
        """rotate_before must leave room for consumers to switch before expiry."""
        data = config_with(
            defaults={
                "validity": "1d",
                "rotate_before": "30m",
                "switch_timeout": "30m",
                "alert_before": "10m",
                "schedule": {"interval": "5m"},
            }
        )
        assert "defaults.rotate_before: rotate_before (30m) must be longer than switch_timeout" in (
            config_error(data)
        )

    def test_interval_must_be_shorter_than_rotate_before(
        self, config_error: ConfigErrorText
    ) -> None:
        """A schedule slower than rotate_before could let a key expire between runs."""
        data = config_with(key_with(schedule={"interval": "20d"}))
        assert "keys[0].schedule: schedule.interval (20d) must be shorter than rotate_before" in (
            config_error(data)
        )

    @pytest.mark.parametrize("field", ["switch_timeout", "validity", "orphan_min_age"])
    def test_positive_durations(self, config_error: ConfigErrorText, field: str) -> None:
        """switch_timeout, validity and orphan_min_age must be longer than 0s."""
        assert f"defaults.{field}: must be longer than 0s" in config_error(
            config_with(defaults={field: "0s"})
        )

    def test_bad_duration_names_the_field(self, config_error: ConfigErrorText) -> None:
        """A malformed duration is reported at its path."""
        message = config_error(config_with(defaults={"grace_period": "5 minutes", "validity": 1.5}))
        assert "defaults.grace_period: " in message
        assert "defaults.validity: expected a duration" in message

    def test_integer_durations_are_seconds(self, load_yaml_config: ConfigLoader) -> None:
        """A plain integer duration means seconds."""
        config = load_yaml_config(config_with(defaults={"grace_period": 90}))
        assert config.defaults.grace_period == timedelta(seconds=90)

    def test_policy_of_a_standalone_key_uses_built_in_defaults(self) -> None:
        """A ManagedKey validated on its own resolves against the built-in defaults."""
        key = ManagedKey.model_validate(key_with(validity="30d"))
        assert key.policy.validity == timedelta(days=30)
        assert key.policy.rotate_before == timedelta(days=14)

    def test_defaults_model_checks_itself(self) -> None:
        """Defaults validated directly reports inconsistent values."""
        with pytest.raises(ValidationError, match="rotate_before"):
            Defaults.model_validate({"validity": "1d"})


class TestManagedKeys:
    """keys: entries."""

    @pytest.mark.parametrize("name", ["", "-agent", ".agent", "a b", "agent/prod", "é", "x" * 201])
    def test_bad_names(self, config_error: ConfigErrorText, name: str) -> None:
        """Names must be usable as StackState key name prefixes."""
        message = config_error(config_with(key_with(name=name)))
        assert "keys[0].name: must be 1-200 characters" in message

    @pytest.mark.parametrize("name", ["a", "agent-prod", "Agent_1.eu", "9" * 200])
    def test_good_names(self, load_yaml_config: ConfigLoader, name: str) -> None:
        """Letters, digits, '.', '_' and '-' starting alphanumeric are accepted."""
        assert load_yaml_config(config_with(key_with(name=name))).keys[0].name == name

    @pytest.mark.parametrize("roles", [None, []])
    def test_service_token_needs_roles(self, config_error: ConfigErrorText, roles: Any) -> None:
        """A service-token without roles is refused at keys[0].roles."""
        data = config_with(key_with())
        data["keys"][0]["roles"] = roles
        if roles is None:
            del data["keys"][0]["roles"]
        assert "keys[0].roles: a service-token needs roles" in config_error(data)

    def test_ingestion_key_refuses_roles_and_says_why(self, config_error: ConfigErrorText) -> None:
        """Roles on an ingestion-api-key are refused with the reason."""
        message = config_error(config_with(key_with(kind="ingestion-api-key")))
        assert (
            "keys[0].roles: ingestion API keys carry no roles (only service tokens do)" in message
        )

    def test_ingestion_key_refuses_dedicated_subject(self, config_error: ConfigErrorText) -> None:
        """dedicated_subject is service-token only."""
        data = config_with(key_with(kind="ingestion-api-key", roles=None, dedicated_subject="x"))
        assert "keys[0].dedicated_subject: only service tokens have a subject" in (
            config_error(data)
        )

    def test_ingestion_key_loads(self, load_yaml_config: ConfigLoader) -> None:
        """An ingestion-api-key without roles, with a description, loads."""
        data = config_with(key_with(kind="ingestion-api-key", roles=None, description="host"))
        key = load_yaml_config(data).keys[0]
        assert key.kind == "ingestion-api-key"
        assert key.roles is None
        assert key.description == "host"

    def test_unknown_kind(self, config_error: ConfigErrorText) -> None:
        """kind is one of the two key kinds."""
        assert "keys[0].kind: input should be 'service-token' or 'ingestion-api-key'" in (
            config_error(config_with(key_with(kind="token")))
        )

    def test_needs_a_target_or_a_preset(self, config_error: ConfigErrorText) -> None:
        """A key that is delivered nowhere is refused at keys[0].targets."""
        assert "keys[0].targets: give at least one target or a preset" in config_error(
            config_with(key_with(targets=[]))
        )

    def test_preset_alone_is_enough(self, load_yaml_config: ConfigLoader) -> None:
        """A key with only a preset loads (expansion happens elsewhere)."""
        preset = {"type": "suse-observability-agent", "release": "agent", "namespace": "obs"}
        key = load_yaml_config(config_with(key_with(targets=None, preset=preset))).keys[0]
        assert isinstance(key.preset, SuseObservabilityAgentPreset)
        assert key.preset.action == "restart"
        assert key.targets == []

    def test_linux_agent_preset_defaults(self, load_yaml_config: ConfigLoader) -> None:
        """linux-agent defaults to the agent's YAML file, api_key and the systemd unit."""
        key = load_yaml_config(config_with(key_with(preset={"type": "linux-agent"}))).keys[0]
        assert isinstance(key.preset, LinuxAgentPreset)
        assert key.preset.path == Path("/etc/stackstate-agent/stackstate.yaml")
        assert (key.preset.field, key.preset.service) == ("api_key", "stackstate-agent")

    def test_otel_collector_release_has_a_default(self, load_yaml_config: ConfigLoader) -> None:
        """otel-collector needs only its namespace; the release defaults to the chart's name."""
        preset = {"type": "otel-collector", "namespace": "open-telemetry"}
        key = load_yaml_config(config_with(key_with(preset=preset))).keys[0]
        assert isinstance(key.preset, OtelCollectorPreset)
        assert key.preset.release == "opentelemetry-collector"

    def test_preset_overrides_are_validated(self, config_error: ConfigErrorText) -> None:
        """Preset overrides (workloads, secret_name) are checked like any other field."""
        preset = {
            "type": "otel-collector",
            "release": "otel",
            "namespace": "open-telemetry",
            "secret_name": "Bad_Name",
            "workloads": [{"kind": "Pod", "name": "x"}],
        }
        message = config_error(config_with(key_with(preset=preset)))
        assert "keys[0].preset.secret_name: must be a Kubernetes object name" in message
        assert "keys[0].preset.workloads[0].kind: " in message

    def test_duplicate_names(self, config_error: ConfigErrorText) -> None:
        """Two keys with one name: the second is named, with the first's index."""
        data = config_with(key_with(), key_with(targets=[secret_target(name="other")]))
        assert "keys[1].name: duplicate managed key name 'agent' (also keys[0])" in (
            config_error(data)
        )

    def test_adopt_key_id(
        self, load_yaml_config: ConfigLoader, config_error: ConfigErrorText
    ) -> None:
        """adopt_key_id is a positive integer (YAML number or digit string)."""
        config = load_yaml_config(config_with(key_with(adopt_key_id="250558013078953")))
        assert config.keys[0].adopt_key_id == 250558013078953
        assert "keys[0].adopt_key_id: " in config_error(config_with(key_with(adopt_key_id=0)))

    def test_roles_are_deduplicated(self, load_yaml_config: ConfigLoader) -> None:
        """Repeated roles are kept once, in order."""
        data = config_with(key_with(roles=["b", "a", "b"]))
        assert load_yaml_config(data).keys[0].roles == ["b", "a"]

    def test_config_key_lookup(self, load_yaml_config: ConfigLoader) -> None:
        """RotatorConfig.key finds a managed key by name."""
        config = load_yaml_config(minimal_config())
        assert config.key("agent") is config.keys[0]
        with pytest.raises(KeyError):
            config.key("nope")


class TestTargets:
    """targets: kubernetes-secret, vault-kv and file."""

    def test_kubernetes_secret(self, load_yaml_config: ConfigLoader) -> None:
        """A kubernetes-secret target keeps namespace, name, key and context."""
        data = config_with(key_with(targets=[secret_target(context="prod")]))
        target = load_yaml_config(data).keys[0].targets[0]
        assert isinstance(target, KubernetesSecretTarget)
        assert (target.namespace, target.name, target.key, target.context) == (
            "monitoring",
            "agent-key",
            "API_KEY",
            "prod",
        )

    @pytest.mark.parametrize(
        ("field", "value", "fragment"),
        [
            ("namespace", "Monitoring", "Kubernetes namespace name"),
            ("namespace", "a" * 64, "Kubernetes namespace name"),
            ("name", "agent_key", "Kubernetes object name"),
            ("key", "api key", "Secret data key"),
        ],
    )
    def test_kubernetes_names_are_checked(
        self, config_error: ConfigErrorText, field: str, value: str, fragment: str
    ) -> None:
        """Invalid Kubernetes names are refused at their path."""
        data = config_with(key_with(targets=[secret_target(**{field: value})]))
        assert f"keys[0].targets[0].{field}: must be a {fragment}" in config_error(data)

    def test_vault_kv_defaults(self, load_yaml_config: ConfigLoader) -> None:
        """vault-kv defaults to mount secret and KV v2; paths lose surrounding slashes."""
        target = {"type": "vault-kv", "path": "/stackstate/agent/", "key": "api_key"}
        config = load_yaml_config(config_with(key_with(targets=[target]), vault=VAULT))
        loaded = config.keys[0].targets[0]
        assert isinstance(loaded, VaultKvTarget)
        assert (loaded.mount, loaded.path, loaded.kv_version) == ("secret", "stackstate/agent", 2)

    @pytest.mark.parametrize(("given", "expected"), [(1, 1), ("1", 1), (2, 2)])
    def test_vault_kv_version(
        self, load_yaml_config: ConfigLoader, given: Any, expected: int
    ) -> None:
        """kv_version is 1 or 2, also as a string (from ${ENV})."""
        target = {"type": "vault-kv", "path": "p", "key": "k", "kv_version": given}
        target_loaded = load_yaml_config(config_with(key_with(targets=[target]), vault=VAULT))
        assert target_loaded.keys[0].targets[0].kv_version == expected  # type: ignore[union-attr]

    def test_vault_kv_version_3_is_refused(self, config_error: ConfigErrorText) -> None:
        """Only KV versions 1 and 2 exist."""
        target = {"type": "vault-kv", "path": "p", "key": "k", "kv_version": 3}
        assert "keys[0].targets[0].kv_version: input should be 1 or 2" in config_error(
            config_with(key_with(targets=[target]), vault=VAULT)
        )

    def test_vault_kv_needs_a_vault_section(self, config_error: ConfigErrorText) -> None:
        """A vault-kv target without vault: is refused at the target."""
        targets = [secret_target(), {"type": "vault-kv", "path": "p", "key": "k"}]
        data = config_with(key_with(), key_with(name="second", targets=targets))
        assert "keys[1].targets[1]: a vault-kv target needs a vault: section" in config_error(data)

    def test_file_target_formats(self, load_yaml_config: ConfigLoader, tmp_path: Path) -> None:
        """raw, env and yaml file targets; relative paths follow the config file."""
        targets = [
            {"type": "file", "path": "key.txt"},
            {"type": "file", "path": "/etc/default/agent", "format": "env", "field": "STS_API_KEY"},
            {"type": "file", "path": "/etc/agent.yaml", "format": "yaml", "field": "a.api_key"},
        ]
        loaded = load_yaml_config(config_with(key_with(targets=targets))).keys[0].targets
        assert all(isinstance(target, FileTarget) for target in loaded)
        raw, env, yml = loaded
        assert isinstance(raw, FileTarget)
        assert raw.path == tmp_path / "key.txt"
        assert (raw.format, raw.field, raw.mode) == ("raw", None, None)
        assert isinstance(env, FileTarget)
        assert env.field == "STS_API_KEY"
        assert isinstance(yml, FileTarget)
        assert yml.field == "a.api_key"

    @pytest.mark.parametrize(
        ("target", "fragment"),
        [
            ({"format": "raw", "field": "x"}, "field: a raw file holds only the key"),
            ({"format": "env"}, "field: format env needs field"),
            ({"format": "yaml"}, "field: format yaml needs field"),
            ({"format": "env", "field": "1BAD"}, "field: must be a variable name"),
            ({"format": "yaml", "field": "a..b"}, "field: must be a dotted path"),
            ({"format": "json", "field": "a"}, "format: input should be 'raw', 'env' or 'yaml'"),
        ],
    )
    def test_file_field_rules(
        self, config_error: ConfigErrorText, target: dict[str, Any], fragment: str
    ) -> None:
        """field is required for env and yaml, forbidden for raw, and well-formed."""
        data = config_with(key_with(targets=[{"type": "file", "path": "/x"} | target]))
        assert f"keys[0].targets[0].{fragment}" in config_error(data)

    @pytest.mark.parametrize(("mode", "expected"), [("0640", 0o640), ("600", 0o600), (640, 0o640)])
    def test_file_mode_is_octal(
        self, load_yaml_config: ConfigLoader, mode: Any, expected: int
    ) -> None:
        """Modes are octal whether quoted or not."""
        data = config_with(key_with(targets=[{"type": "file", "path": "/x", "mode": mode}]))
        target = load_yaml_config(data).keys[0].targets[0]
        assert isinstance(target, FileTarget)
        assert target.mode == expected

    def test_integer_mode_from_python_is_the_mode(self) -> None:
        """FileTarget(mode=0o640) built in code keeps 0o640."""
        target = FileTarget.model_validate({"type": "file", "path": "/x", "mode": 0o640})
        assert target.mode == 0o640
        assert target.model_dump(mode="json")["mode"] == "0640"

    def test_unquoted_yaml_mode(self, load_yaml_config: ConfigLoader) -> None:
        """An unquoted 0600 in YAML (read as decimal 600 by YAML 1.2) still means 0o600."""
        text = (
            "stackstate: {url: https://x.example, service_token: abcdefgh}\n"
            "keys:\n- name: k\n  kind: ingestion-api-key\n"
            "  targets: [{type: file, path: /x, mode: 0600}]\n"
        )
        target = load_yaml_config(text).keys[0].targets[0]
        assert isinstance(target, FileTarget)
        assert target.mode == 0o600

    @pytest.mark.parametrize("mode", ["0999", "1777", "rw", True])
    def test_bad_file_mode(self, config_error: ConfigErrorText, mode: Any) -> None:
        """Modes beyond 0777 or not octal are refused."""
        data = config_with(key_with(targets=[{"type": "file", "path": "/x", "mode": mode}]))
        assert "keys[0].targets[0].mode: " in config_error(data)


class TestTargetCollisions:
    """Two targets must not write the same data key of one Secret, Vault path or file."""

    def test_same_secret_key_in_two_keys(self, config_error: ConfigErrorText) -> None:
        """The second writer is named, with the first."""
        data = config_with(key_with(), key_with(name="second"))
        message = config_error(data)
        assert (
            "keys[1].targets[0]: key API_KEY of Secret monitoring/agent-key is also written by "
            "keys[0].targets[0]" in message
        )

    def test_same_target_twice_in_one_key(self, config_error: ConfigErrorText) -> None:
        """A key listing one target twice is refused too."""
        data = config_with(key_with(targets=[secret_target(), secret_target()]))
        assert "keys[0].targets[1]: key API_KEY of Secret monitoring/agent-key" in (
            config_error(data)
        )

    def test_default_context_equals_its_explicit_name(self, config_error: ConfigErrorText) -> None:
        """A target without context writes to kubernetes.context."""
        data = config_with(
            key_with(),
            key_with(name="second", targets=[secret_target(context="prod")]),
            kubernetes={"context": "prod"},
        )
        assert "keys[1].targets[0]: " in config_error(data)

    def test_different_data_keys_contexts_or_paths_may_share(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Other data keys of one Secret, other clusters and other YAML fields are fine."""
        data = config_with(
            key_with(),
            key_with(name="b", targets=[secret_target(key="OTHER_KEY")]),
            key_with(name="c", targets=[secret_target(context="other-cluster")]),
            key_with(
                name="d",
                targets=[{"type": "file", "path": "/f.yaml", "format": "yaml", "field": "a.x"}],
            ),
            key_with(
                name="e",
                targets=[{"type": "file", "path": "/f.yaml", "format": "yaml", "field": "a.y"}],
            ),
            key_with(name="f", targets=[{"type": "vault-kv", "path": "p", "key": "one"}]),
            key_with(name="g", targets=[{"type": "vault-kv", "path": "p", "key": "two"}]),
            vault=VAULT,
        )
        assert len(load_yaml_config(data).keys) == 7

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            (
                {"type": "vault-kv", "path": "p", "key": "k"},
                {"type": "vault-kv", "path": "/p/", "key": "k"},
            ),
            (
                {"type": "file", "path": "/f"},
                {"type": "file", "path": "/f", "format": "env", "field": "K"},
            ),
            ({"type": "file", "path": "/f"}, {"type": "file", "path": "/f"}),
            (
                {"type": "file", "path": "/f", "format": "yaml", "field": "agent"},
                {"type": "file", "path": "/f", "format": "yaml", "field": "agent.api_key"},
            ),
            (
                {"type": "file", "path": "/f", "format": "env", "field": "K"},
                {"type": "file", "path": "/f", "format": "env", "field": "K"},
            ),
        ],
    )
    def test_colliding_targets(
        self, config_error: ConfigErrorText, first: dict[str, Any], second: dict[str, Any]
    ) -> None:
        """Same Vault key, whole-file vs field, nested YAML paths and equal fields collide."""
        data = config_with(
            key_with(name="a", targets=[first]), key_with(name="b", targets=[second]), vault=VAULT
        )
        assert "keys[1].targets[0]: " in config_error(data)


class TestConsumers:
    """consumers: kubernetes-workload, synced-secret and command."""

    def test_workload_by_name_and_by_selector(self, load_yaml_config: ConfigLoader) -> None:
        """A workload is named or selected; action defaults to restart; label values are text."""
        consumers = [
            {"type": "kubernetes-workload", "namespace": "o", "kind": "Deployment", "name": "c"},
            {
                "type": "kubernetes-workload",
                "namespace": "o",
                "kind": "DaemonSet",
                "selector": {"app": "otel", "tier": 1},
                "action": "wait",
            },
            {"type": "synced-secret", "namespace": "apps", "name": "s", "key": "api_key"},
            {"type": "command", "command": ["systemctl", "restart", "x"]},
        ]
        loaded = load_yaml_config(config_with(key_with(consumers=consumers))).keys[0].consumers
        by_name, by_selector, _synced, command = loaded
        assert isinstance(by_name, KubernetesWorkloadConsumer)
        assert by_name.action == "restart"
        assert isinstance(by_selector, KubernetesWorkloadConsumer)
        assert by_selector.selector == {"app": "otel", "tier": "1"}
        assert isinstance(command, CommandConsumer)
        assert command.timeout == timedelta(minutes=2)
        assert command.pass_key == "none"

    @pytest.mark.parametrize(
        "extra", [{}, {"name": "c", "selector": {"app": "x"}}], ids=["neither", "both"]
    )
    def test_name_xor_selector(self, config_error: ConfigErrorText, extra: dict[str, Any]) -> None:
        """Exactly one of name, selector and discover."""
        consumer = {"type": "kubernetes-workload", "namespace": "o", "kind": "Deployment"} | extra
        assert (
            "keys[0].consumers[0].name: give exactly one of name, selector or discover"
            in config_error(config_with(key_with(consumers=[consumer])))
        )

    def test_discover_needs_a_secret_target_in_its_namespace(
        self, config_error: ConfigErrorText
    ) -> None:
        """discover: true finds readers of the key's Secret there; none there is an error."""
        consumer = {"type": "kubernetes-workload", "namespace": "elsewhere", "discover": True}
        assert "keys[0].consumers[0].discover: finds the readers" in config_error(
            config_with(key_with(consumers=[consumer]))
        )

    def test_discover_takes_no_kind_and_legacy_secrets_need_discover(
        self, config_error: ConfigErrorText
    ) -> None:
        """kind goes with name/selector; legacy_secrets only with discover."""
        with_kind = {
            "type": "kubernetes-workload",
            "namespace": "monitoring",
            "discover": True,
            "kind": "Deployment",
        }
        assert "keys[0].consumers[0].kind: discover finds every kind" in config_error(
            config_with(key_with(consumers=[with_kind]))
        )
        legacy = {
            "type": "kubernetes-workload",
            "namespace": "monitoring",
            "kind": "Deployment",
            "name": "x",
            "legacy_secrets": ["old"],
        }
        assert "legacy_secrets: only used with discover: true" in config_error(
            config_with(key_with(consumers=[legacy]))
        )

    def test_discover_in_the_targets_namespace_loads(self, load_yaml_config: ConfigLoader) -> None:
        """A discovering consumer next to a Secret target of the same namespace is valid."""
        consumer = {"type": "kubernetes-workload", "namespace": "monitoring", "discover": True}
        (loaded,) = load_yaml_config(config_with(key_with(consumers=[consumer]))).keys[0].consumers
        assert isinstance(loaded, KubernetesWorkloadConsumer)
        assert (loaded.discover, loaded.kind, loaded.legacy_secrets) == (True, None, [])

    def test_workload_kind_and_action(self, config_error: ConfigErrorText) -> None:
        """kind and action take their documented values only."""
        consumer = {
            "type": "kubernetes-workload",
            "namespace": "o",
            "kind": "Pod",
            "name": "c",
            "action": "kill",
        }
        message = config_error(config_with(key_with(consumers=[consumer])))
        assert "keys[0].consumers[0].kind: input should be 'Deployment', 'DaemonSet' or" in message
        assert "keys[0].consumers[0].action: input should be 'restart' or 'wait'" in message

    def test_command_pass_key(self, config_error: ConfigErrorText) -> None:
        """pass_key is none or stdin."""
        consumer = {"type": "command", "command": ["x"], "pass_key": "env"}
        assert "keys[0].consumers[0].pass_key: input should be 'none' or 'stdin'" in (
            config_error(config_with(key_with(consumers=[consumer])))
        )


class TestAlerts:
    """alerts: webhook, slack, pagerduty, alertmanager and command hooks."""

    def test_every_hook_type(self, load_yaml_config: ConfigLoader) -> None:
        """All five hook types load with their defaults."""
        alerts = [
            {"type": "webhook", "url": "https://h.example/r", "headers": {"Authorization": "x"}},
            {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/X"},
            {"type": "pagerduty", "routing_key": "R0UT1NG"},
            {"type": "alertmanager", "url": "http://am:9093/"},
            {"type": "command", "command": ["/bin/notify"], "name": "notify"},
        ]
        webhook, slack, pagerduty, alertmanager, command = load_yaml_config(
            config_with(alerts=alerts)
        ).alerts
        assert isinstance(webhook, WebhookAlert)
        assert webhook.hmac_secret is None
        assert webhook.headers["Authorization"] == SecretStr("x")
        assert webhook.events == list(DEFAULT_ALERT_EVENTS)
        assert webhook.timeout == timedelta(seconds=10)
        assert webhook.repeat_interval == timedelta(hours=4)
        assert isinstance(slack, SlackAlert)
        assert isinstance(pagerduty, PagerDutyAlert)
        assert pagerduty.url == "https://events.pagerduty.com/v2/enqueue"
        assert alertmanager.url == "http://am:9093"  # type: ignore[union-attr]
        assert command.name == "notify"

    def test_default_events_are_the_failures_and_recovered(self) -> None:
        """By default hooks get every failure event and recovered, not successes."""
        assert AlertEvent.RECOVERED in DEFAULT_ALERT_EVENTS
        assert AlertEvent.ROTATION_SUCCEEDED not in DEFAULT_ALERT_EVENTS

    def test_events_are_checked_and_deduplicated(
        self, load_yaml_config: ConfigLoader, config_error: ConfigErrorText
    ) -> None:
        """Unknown events are located; repeated ones are kept once; an empty list is refused."""
        alert = {"type": "alertmanager", "url": "http://am", "events": ["recovered", "recovered"]}
        assert load_yaml_config(config_with(alerts=[alert])).alerts[0].events == ["recovered"]
        alert["events"] = ["rotation_failed", "key_expird"]
        assert "alerts[0].events[1]: input should be" in config_error(config_with(alerts=[alert]))
        alert["events"] = []
        assert "alerts[0].events: must not be empty" in config_error(config_with(alerts=[alert]))

    @pytest.mark.parametrize(
        ("alert", "fragment"),
        [
            ({"type": "slack"}, "alerts[0].webhook_url: give webhook_url or webhook_url_file"),
            ({"type": "pagerduty"}, "alerts[0].routing_key: give routing_key or routing_key_file"),
            ({"type": "webhook"}, "alerts[0].url: field required"),
            ({"type": "command", "command": []}, "alerts[0].command: must not be empty"),
            ({"type": "email"}, "alerts[0]: unknown type; expected one of: webhook"),
        ],
    )
    def test_required_fields(
        self, config_error: ConfigErrorText, alert: dict[str, Any], fragment: str
    ) -> None:
        """Each hook's required fields are named when missing."""
        assert fragment in config_error(config_with(alerts=[alert]))

    def test_slack_webhook_url_is_a_secret_checked_without_echo(
        self, config_error: ConfigErrorText
    ) -> None:
        """A malformed Slack URL is refused without repeating it."""
        alert = {"type": "slack", "webhook_url": "hooks.slack.com/services/T/B/SECRETPART"}
        message = config_error(config_with(alerts=[alert]))
        assert "alerts[0].webhook_url: must be an http:// or https:// URL" in message
        assert "SECRETPART" not in message


class TestServerAndLeaderElection:
    """server: and leader_election:."""

    @pytest.mark.parametrize(
        ("listen", "host", "port"),
        [
            ("0.0.0.0:9108", "0.0.0.0", 9108),  # noqa: S104 - parsing the default, not binding
            ("[::]:80", "::", 80),
            ("127.0.0.1:0", "127.0.0.1", 0),
        ],
    )
    def test_listen(
        self, load_yaml_config: ConfigLoader, listen: str, host: str, port: int
    ) -> None:
        """listen splits into host and port (IPv6 brackets removed)."""
        server = load_yaml_config(config_with(server={"listen": listen})).server
        assert (server.host, server.port) == (host, port)

    @pytest.mark.parametrize("listen", ["9108", "host:", ":9108", "h:99999", "h:http", "a b:1"])
    def test_bad_listen(self, config_error: ConfigErrorText, listen: str) -> None:
        """listen must be host:port with a valid port."""
        assert "server.listen: must be" in config_error(config_with(server={"listen": listen}))

    def test_leader_election_defaults(self, load_yaml_config: ConfigLoader) -> None:
        """Leader election is off with client-go's usual timings."""
        election = load_yaml_config(minimal_config()).leader_election
        assert election.enabled is False
        assert election.lease_name == "stackstate-key-rotator"
        assert (election.lease_duration, election.renew_deadline, election.retry_period) == (
            timedelta(seconds=15),
            timedelta(seconds=10),
            timedelta(seconds=2),
        )

    @pytest.mark.parametrize(
        ("settings", "fragment"),
        [
            ({"renew_deadline": "15s"}, "renew_deadline: must be shorter than lease_duration"),
            ({"retry_period": "9s"}, "retry_period: must be shorter than renew_deadline / 1.2"),
            ({"enabled": True}, "namespace: required when leader election is enabled"),
        ],
    )
    def test_leader_election_checks(
        self, config_error: ConfigErrorText, settings: dict[str, Any], fragment: str
    ) -> None:
        """Timings must be consistent and an enabled election needs its namespace."""
        assert f"leader_election.{fragment}" in config_error(config_with(leader_election=settings))


class TestExampleAndContract:
    """The shipped example and the public contract both load."""

    def test_example_loads_with_the_documented_environment(self) -> None:
        """config.example.yaml loads with the variables its header lists."""
        header = EXAMPLE.read_text().split("\nstackstate:")[0]
        for name in EXAMPLE_ENV:
            assert name in header
        config = load_config(EXAMPLE, environ=EXAMPLE_ENV)
        assert [key.name for key in config.keys] == ["agent-prod", "otel-prod", "legacy-host-agent"]
        assert config.key("otel-prod").policy.rotate_before == timedelta(days=27)
        assert config.key("legacy-host-agent").policy.windows == ("0 2-5 * * 1-5",)
        assert len(config.alerts) == 5

    def test_example_needs_its_environment(self) -> None:
        """Without the variables, each is named at its field."""
        with pytest.raises(ConfigError) as info:
            load_config(EXAMPLE, environ={})
        message = str(info.value)
        assert "stackstate.service_token: environment variable STS_SERVICE_TOKEN is not set" in (
            message
        )
        assert "alerts[1].webhook_url: environment variable SLACK_WEBHOOK_URL is not set" in message

    def test_contract_loads(self, load_yaml_config: ConfigLoader) -> None:
        """Every field of the agreed contract is accepted as written."""
        config = load_yaml_config(CONTRACT, environ=EXAMPLE_ENV)
        key = config.keys[0]
        assert key.name == "agent-prod"
        assert [target.type for target in key.targets] == ["kubernetes-secret", "vault-kv", "file"]
        assert [consumer.type for consumer in key.consumers] == [
            "kubernetes-workload",
            "synced-secret",
            "command",
        ]
        assert [alert.type for alert in config.alerts] == [
            "webhook",
            "slack",
            "pagerduty",
            "alertmanager",
            "command",
        ]
        assert config.leader_election.namespace == "suse-observability"


class TestJsonSchema:
    """config_json_schema describes the file as users write it."""

    @pytest.fixture(scope="class")
    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The schema, generated once."""
        return config_json_schema()

    def test_is_a_valid_draft_2020_12_schema(self, schema: dict[str, Any]) -> None:
        """The schema itself is valid."""
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"].endswith("2020-12/schema")

    @pytest.mark.parametrize("text", [EXAMPLE.read_text(), CONTRACT], ids=["example", "contract"])
    def test_example_and_contract_validate(self, schema: dict[str, Any], text: str) -> None:
        """The example and the contract, ${VAR} and all, satisfy the schema."""
        data = YAML(typ="safe", pure=True).load(text)
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
        assert [error.message for error in errors] == []

    def test_typos_fail_the_schema(self, schema: dict[str, Any]) -> None:
        """Unknown fields are flagged by editors too."""
        data = minimal_config()
        data["stackstate"]["timout"] = "5s"
        assert not jsonschema.Draft202012Validator(schema).is_valid(data)

    def test_secret_file_twins_are_present_and_source_is_not(self, schema: dict[str, Any]) -> None:
        """Every *_file twin is in the schema; the internal source field is not."""
        defs = schema["$defs"]
        assert {"service_token_file", "api_token_file"} <= set(
            defs["StackStateSettings"]["properties"]
        )
        assert "token_file" in defs["VaultTokenAuth"]["properties"]
        assert "secret_id_file" in defs["VaultAppRoleAuth"]["properties"]
        assert "hmac_secret_file" in defs["WebhookAlert"]["properties"]
        assert "webhook_url_file" in defs["SlackAlert"]["properties"]
        assert "routing_key_file" in defs["PagerDutyAlert"]["properties"]
        assert "source" not in schema["properties"]

    def test_defaults_read_as_users_write_them(self, schema: dict[str, Any]) -> None:
        """Duration defaults show as 10s / 90d, with field descriptions."""
        assert schema["$defs"]["StackStateSettings"]["properties"]["timeout"]["default"] == "10s"
        validity = schema["$defs"]["Defaults"]["properties"]["validity"]
        assert validity["default"] == "90d"
        assert validity["description"] == "Lifetime of each new key."


class TestDescribeKey:
    """describe_key gives the one-line summary of check-config."""

    def test_summary_line(self, load_yaml_config: ConfigLoader) -> None:
        """Kind, policy, counts and schedule in one line."""
        consumer = {"type": "command", "command": ["true"]}
        key = key_with(
            name="agent-prod",
            targets=[secret_target(), secret_target(key="OTHER")],
            consumers=[consumer],
        )
        config = load_yaml_config(config_with(key))
        assert describe_key(config.keys[0]) == (
            "agent-prod: service-token, validity 90d, rotate 14d before expiry, 2 targets, "
            "1 consumer, schedule every 1h"
        )

    def test_percentages_cron_windows_presets_and_adoption(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Optional parts are appended when set."""
        key = key_with(
            kind="ingestion-api-key",
            roles=None,
            rotate_before="30%",
            schedule={"cron": "0 */6 * * *"},
            windows=["* 2-5 * * 1-5"],
            preset={"type": "linux-agent"},
            adopt_key_id=42,
        )
        assert describe_key(load_yaml_config(config_with(key)).keys[0]) == (
            "agent: ingestion-api-key, validity 90d, rotate 27d (30% of validity) before expiry, "
            "1 target, 0 consumers, schedule cron '0 */6 * * *', 1 window, preset linux-agent, "
            "adopts key 42"
        )

    def test_json_dump_is_readable_and_masked(self, load_yaml_config: ConfigLoader) -> None:
        """model_dump(mode='json') writes durations as users do and masks secrets."""
        dumped = load_yaml_config(config_with(defaults={"rotate_before": "30%"})).model_dump(
            mode="json"
        )
        assert dumped["defaults"]["validity"] == "90d"
        assert dumped["defaults"]["rotate_before"] == "30%"
        assert dumped["stackstate"]["service_token"] == "**********"
