"""Configuration secrets: ${ENV} interpolation, *_file twins, and no secret in any message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rotator.config import (
    CommandConsumer,
    RotatorConfig,
    load_config,
)
from rotator.errors import ConfigError
from rotator.secrets import redact
from tests.plugins.config import (
    TEST_SERVICE_TOKEN,
    ConfigErrorText,
    ConfigLoader,
    minimal_config,
)

#: A value that must never show up in any message.
SECRET = "sk-live-5f4dcc3b5aa765d61d8327deb882cf99"


def with_token(value: str) -> dict[str, Any]:
    """The minimal configuration with stackstate.service_token set to ``value``."""
    data = minimal_config()
    data["stackstate"]["service_token"] = value
    return data


def token_of(config: RotatorConfig) -> str:
    """The service token of a loaded configuration."""
    token = config.stackstate.service_token
    assert token is not None
    return token.get_secret_value()


class TestEnvInterpolation:
    """${VAR}, ${VAR:-default} and $${ in every string value."""

    def test_variable_is_replaced(self, load_yaml_config: ConfigLoader) -> None:
        """${VAR} takes the variable's value."""
        config = load_yaml_config(with_token("${STS_TOKEN}"), {"STS_TOKEN": "from-env-123"})
        assert token_of(config) == "from-env-123"

    def test_replaced_inside_text_lists_and_nested_sections(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """References work mid-string, several per string, in lists and deep sections."""
        data = minimal_config()
        data["stackstate"]["url"] = "https://${HOST}:${PORT}"
        data["keys"][0]["targets"][0]["namespace"] = "${NS}"
        data["keys"][0]["consumers"] = [{"type": "command", "command": ["/bin/${CMD}", "x"]}]
        env = {"HOST": "sts.example.com", "PORT": "8443", "NS": "obs", "CMD": "true"}
        config = load_yaml_config(data, env)
        assert config.stackstate.url == "https://sts.example.com:8443"
        assert config.keys[0].targets[0].namespace == "obs"  # type: ignore[union-attr]
        consumer = config.keys[0].consumers[0]
        assert isinstance(consumer, CommandConsumer)
        assert consumer.command == ["/bin/true", "x"]

    def test_unset_variable_names_it_and_the_field(self, config_error: ConfigErrorText) -> None:
        """An unset variable is an error naming the variable and where it is used."""
        data = with_token("${STS_TOKEN}")
        data["keys"][0]["targets"][0]["namespace"] = "${NAMESPACE}"
        message = config_error(data)
        assert "stackstate.service_token: environment variable STS_TOKEN is not set" in message
        assert "keys[0].targets[0].namespace: environment variable NAMESPACE is not set" in message

    @pytest.mark.parametrize(
        ("environ", "expected"),
        [({}, "fallback-value"), ({"T": ""}, "fallback-value"), ({"T": "set-value"}, "set-value")],
        ids=["unset", "empty", "set"],
    )
    def test_default_applies_when_unset_or_empty(
        self, load_yaml_config: ConfigLoader, environ: dict[str, str], expected: str
    ) -> None:
        """${VAR:-default} falls back when VAR is unset or empty."""
        config = load_yaml_config(with_token("${T:-fallback-value}"), environ)
        assert token_of(config) == expected

    def test_empty_variable_without_default_is_kept_empty(
        self, config_error: ConfigErrorText
    ) -> None:
        """${VAR} set to "" is the empty string (then judged by the field)."""
        data = minimal_config()
        data["keys"][0]["targets"][0]["namespace"] = "${NS}"
        assert "keys[0].targets[0].namespace: must be a Kubernetes namespace name" in (
            config_error(data, {"NS": ""})
        )

    def test_escape_gives_a_literal_reference(self, load_yaml_config: ConfigLoader) -> None:
        """$${ writes a literal ${, e.g. for a shell command."""
        data = minimal_config()
        data["keys"][0]["consumers"] = [
            {"type": "command", "command": ["sh", "-c", "echo $${HOME} $$ $HOME"]}
        ]
        consumer = load_yaml_config(data).keys[0].consumers[0]
        assert isinstance(consumer, CommandConsumer)
        assert consumer.command[2] == "echo ${HOME} $$ $HOME"

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            ("pre${1ABC}post", "invalid ${...} reference"),
            ("pre${A B}", "invalid ${...} reference"),
            ("pre${}", "invalid ${...} reference"),
            ("pre${UNCLOSED", "unterminated ${"),
            ("${A:-${B}}", "cannot hold another"),
        ],
    )
    def test_malformed_references(
        self, config_error: ConfigErrorText, value: str, fragment: str
    ) -> None:
        """Malformed references are errors at their field."""
        message = config_error(with_token(value))
        assert "stackstate.service_token: " in message
        assert fragment in message

    def test_interpolated_text_is_converted_by_the_field(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Durations, booleans and numbers may come from the environment."""
        data = minimal_config()
        data["stackstate"].update(
            url="http://127.0.0.1:1",
            timeout="${TIMEOUT:-30s}",
            allow_insecure_http="${INSECURE:-false}",
        )
        data["keys"][0]["adopt_key_id"] = "${ADOPT}"
        config = load_yaml_config(data, {"INSECURE": "true", "ADOPT": "77"})
        assert config.stackstate.timeout.total_seconds() == 30
        assert config.stackstate.allow_insecure_http is True
        assert config.keys[0].adopt_key_id == 77

    def test_mapping_keys_are_not_interpolated(self, config_error: ConfigErrorText) -> None:
        """Only values are interpolated: a ${} in a field name stays an unknown field."""
        data = minimal_config()
        data["stackstate"]["${FIELD}"] = "x"
        message = config_error(data, {"FIELD": "timeout"})
        assert "stackstate[<unprintable key>]: unknown field" in message


#: Each secret field: how to build a config around it, and how to read it back.
SecretCase = tuple[str, Callable[[dict[str, Any]], dict[str, Any]], Callable[[RotatorConfig], Any]]


def _stackstate(fields: dict[str, Any]) -> dict[str, Any]:
    data = minimal_config()
    data["stackstate"] = {"url": "https://sts.example.com", **fields}
    return data


def _vault(method: str, **auth: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def build(fields: dict[str, Any]) -> dict[str, Any]:
        data = minimal_config()
        data["vault"] = {"url": "https://v.example", "auth": {"method": method, **auth, **fields}}
        return data

    return build


def _alert(kind: str, **base: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def build(fields: dict[str, Any]) -> dict[str, Any]:
        data = minimal_config()
        data["alerts"] = [{"type": kind, **base, **fields}]
        return data

    return build


SECRET_FIELDS: list[SecretCase] = [
    ("service_token", _stackstate, lambda c: c.stackstate.service_token),
    ("api_token", _stackstate, lambda c: c.stackstate.api_token),
    ("token", _vault("token"), lambda c: c.vault.auth.token),
    ("secret_id", _vault("approle", role_id="rid"), lambda c: c.vault.auth.secret_id),
    ("hmac_secret", _alert("webhook", url="https://h.example"), lambda c: c.alerts[0].hmac_secret),
    ("webhook_url", _alert("slack"), lambda c: c.alerts[0].webhook_url),
    ("routing_key", _alert("pagerduty"), lambda c: c.alerts[0].routing_key),
]
SECRET_IDS = [case[0] for case in SECRET_FIELDS]
PATHS = {
    "service_token": "stackstate.service_token",
    "api_token": "stackstate.api_token",
    "token": "vault.auth.token",
    "secret_id": "vault.auth.secret_id",
    "hmac_secret": "alerts[0].hmac_secret",
    "webhook_url": "alerts[0].webhook_url",
    "routing_key": "alerts[0].routing_key",
}
#: A value every secret field accepts (the Slack one must be a URL).
FILE_VALUE = "https://hooks.slack.com/services/T0/B0/from-a-file"


class TestSecretFileTwins:
    """Every secret field has a *_file twin read once at load time."""

    @pytest.mark.parametrize(("field", "build", "read"), SECRET_FIELDS, ids=SECRET_IDS)
    def test_file_twin_is_read_and_stripped(
        self,
        load_yaml_config: ConfigLoader,
        tmp_path: Path,
        field: str,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        read: Callable[[RotatorConfig], Any],
    ) -> None:
        """The value comes from the file, without surrounding whitespace, as a SecretStr."""
        secret_file = tmp_path / "secret"
        secret_file.write_text(f"\n  {FILE_VALUE}\n\n")
        config = load_yaml_config(build({f"{field}_file": str(secret_file)}))
        value = read(config)
        assert isinstance(value, SecretStr)
        assert value.get_secret_value() == FILE_VALUE

    @pytest.mark.parametrize(("field", "build", "read"), SECRET_FIELDS, ids=SECRET_IDS)
    def test_inline_value_works_too(
        self,
        load_yaml_config: ConfigLoader,
        field: str,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        read: Callable[[RotatorConfig], Any],
    ) -> None:
        """The inline field holds a SecretStr that does not print."""
        config = load_yaml_config(build({field: FILE_VALUE}))
        value = read(config)
        assert value.get_secret_value() == FILE_VALUE
        assert FILE_VALUE not in repr(config)
        assert FILE_VALUE not in str(config)

    @pytest.mark.parametrize(("field", "build", "read"), SECRET_FIELDS, ids=SECRET_IDS)
    def test_both_given_is_an_error(
        self,
        config_error: ConfigErrorText,
        tmp_path: Path,
        field: str,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        read: Callable[[RotatorConfig], Any],
    ) -> None:
        """Giving the value and its file is refused at the *_file field."""
        secret_file = tmp_path / "secret"
        secret_file.write_text(FILE_VALUE)
        message = config_error(build({field: FILE_VALUE, f"{field}_file": str(secret_file)}))
        assert f"{PATHS[field]}_file: give either {field} or {field}_file, not both" in message

    @pytest.mark.parametrize(("field", "build", "read"), SECRET_FIELDS, ids=SECRET_IDS)
    def test_missing_file_names_field_and_path(
        self,
        config_error: ConfigErrorText,
        tmp_path: Path,
        field: str,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        read: Callable[[RotatorConfig], Any],
    ) -> None:
        """An unreadable file is an error naming the field and the file."""
        missing = tmp_path / "no-such-file"
        message = config_error(build({f"{field}_file": str(missing)}))
        assert f"{PATHS[field]}_file: cannot read {missing}: No such file or directory" in message

    def test_directory_is_unreadable(self, config_error: ConfigErrorText, tmp_path: Path) -> None:
        """A directory in place of the file is reported."""
        message = config_error(_stackstate({"service_token_file": str(tmp_path)}))
        assert f"stackstate.service_token_file: cannot read {tmp_path}: " in message

    def test_empty_file_is_refused(self, config_error: ConfigErrorText, tmp_path: Path) -> None:
        """A file holding only whitespace is an error."""
        empty = tmp_path / "empty"
        empty.write_text(" \n")
        message = config_error(_stackstate({"service_token_file": str(empty)}))
        assert f"stackstate.service_token_file: {empty} is empty" in message

    def test_binary_file_is_refused(self, config_error: ConfigErrorText, tmp_path: Path) -> None:
        """A file that is not UTF-8 is an error, and its bytes are not shown."""
        binary = tmp_path / "bin"
        binary.write_bytes(b"\xff\xfe\xfa")
        message = config_error(_stackstate({"service_token_file": str(binary)}))
        assert f"stackstate.service_token_file: {binary} is not UTF-8 text" in message

    def test_huge_file_is_refused(self, config_error: ConfigErrorText, tmp_path: Path) -> None:
        """A file far larger than any secret is refused rather than read."""
        big = tmp_path / "big"
        big.write_text("x" * 70_000)
        assert "is larger than 64 KiB" in config_error(
            _stackstate({"service_token_file": str(big)})
        )

    def test_relative_file_follows_the_config_file(
        self, load_yaml_config: ConfigLoader, tmp_path: Path
    ) -> None:
        """A relative *_file path is resolved against the config file's directory."""
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "token").write_text("relative-token-value")
        config = load_yaml_config(_stackstate({"service_token_file": "secrets/token"}))
        assert token_of(config) == "relative-token-value"
        assert config.stackstate.service_token_file == tmp_path / "secrets" / "token"

    def test_empty_inline_value_defers_to_the_file(
        self, load_yaml_config: ConfigLoader, tmp_path: Path
    ) -> None:
        """`${VAR:-}` that yields nothing lets the file twin supply the value."""
        (tmp_path / "token").write_text("file-token-value")
        data = _stackstate(
            {"service_token": "${STS_TOKEN:-}", "service_token_file": str(tmp_path / "token")}
        )
        assert token_of(load_yaml_config(data)) == "file-token-value"

    def test_empty_inline_value_alone_counts_as_missing(
        self, config_error: ConfigErrorText
    ) -> None:
        """An empty token with nothing else is "no credential"."""
        assert "stackstate.service_token: no credential" in config_error(with_token(""))


class TestNoSecretInMessages:
    """No error message ever contains a secret value from the file or its environment."""

    CASES: tuple[tuple[str, Callable[[], dict[str, Any] | str]], ...] = (
        ("token in an invalid section", lambda: {**with_token(SECRET), "keys": "nope"}),
        (
            "token with a bad url",
            lambda: {
                **with_token(SECRET),
                "stackstate": {"url": "ftp://x", "service_token": SECRET},
            },
        ),
        ("token of wrong type", lambda: with_token({"nested": SECRET})),  # type: ignore[arg-type]
        ("token in a list", lambda: with_token([SECRET])),  # type: ignore[arg-type]
        (
            "token in a duration field",
            lambda: {**minimal_config(), "defaults": {"validity": SECRET}},
        ),
        (
            "token in an enum field",
            lambda: {
                **minimal_config(),
                "alerts": [{"type": "pagerduty", "routing_key": "r", "events": [SECRET]}],
            },
        ),
        ("token as a type tag", lambda: {**minimal_config(), "alerts": [{"type": SECRET}]}),
        (
            "token in a name",
            lambda: {
                **minimal_config(),
                "keys": [{"name": SECRET + " x", "kind": "service-token"}],
            },
        ),
        (
            "token in a url with credentials",
            lambda: {
                **minimal_config(),
                "alerts": [{"type": "webhook", "url": f"https://user:{SECRET}@h.example"}],
            },
        ),
        (
            "token in a slack url",
            lambda: {
                **minimal_config(),
                "alerts": [{"type": "slack", "webhook_url": f"hooks/{SECRET}"}],
            },
        ),
        ("token in a bad reference", lambda: with_token(f"{SECRET}${{{SECRET}")),
        ("token in a reference name", lambda: with_token(f"${{{SECRET}}}")),
        (
            "token with its file twin",
            lambda: {
                **minimal_config(),
                "stackstate": {
                    "url": "https://x.example",
                    "service_token": SECRET,
                    "service_token_file": "/nonexistent",
                },
            },
        ),
        ("token in a listen address", lambda: {**minimal_config(), "server": {"listen": SECRET}}),
        (
            "token in a cron line",
            lambda: {**minimal_config(), "defaults": {"windows": [f"{SECRET} * * * *"]}},
        ),
        (
            "duplicate key",
            lambda: (
                f"stackstate:\n  service_token: {SECRET}\n  service_token: {SECRET}x\nkeys: []\n"
            ),
        ),
        (
            "yaml error after token",
            lambda: f"stackstate:\n  service_token: {SECRET}\n  url: [unclosed\n",
        ),
        (
            "flow mapping without space",
            lambda: f"stackstate: {{url: https://x.example, service_token:{SECRET}}}\nkeys: []\n",
        ),
    )

    @pytest.mark.parametrize(("name", "build"), CASES, ids=[case[0] for case in CASES])
    def test_secret_is_not_in_the_error(
        self, config_error: ConfigErrorText, name: str, build: Callable[[], dict[str, Any] | str]
    ) -> None:
        """The ConfigError names fields, not the secret value."""
        message = config_error(build())
        assert message.startswith(("invalid configuration in", "invalid YAML in"))
        assert SECRET not in message
        assert SECRET[:16] not in message

    def test_secret_from_environment_is_not_in_the_error(
        self, config_error: ConfigErrorText
    ) -> None:
        """A secret interpolated into a field that rejects it is not echoed."""
        data = minimal_config()
        data["defaults"] = {"grace_period": "${LEAKY}"}
        data["keys"][0]["targets"][0]["namespace"] = "${LEAKY}"
        message = config_error(data, {"LEAKY": SECRET + "/"})
        assert "defaults.grace_period" in message
        assert "keys[0].targets[0].namespace" in message
        assert SECRET not in message

    @pytest.mark.usefixtures("clean_secret_registry")
    def test_loaded_secrets_are_registered_with_the_redactor(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """After loading, log redaction masks the configured secrets."""
        data = minimal_config()
        data["alerts"] = [{"type": "webhook", "url": "https://h.example", "hmac_secret": SECRET}]
        load_yaml_config(data)
        assert SECRET not in redact(f"header {SECRET} and {TEST_SERVICE_TOKEN}")
        assert TEST_SERVICE_TOKEN not in redact(f"token={TEST_SERVICE_TOKEN}")

    def test_secret_does_not_survive_in_exception_chain(self, tmp_path: Path) -> None:
        """Nothing reachable from the ConfigError (cause, context, args) holds the secret."""
        path = tmp_path / "c.yaml"
        path.write_text(f"stackstate: {{url: ftp://x, service_token: {SECRET}}}\nkeys: []\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        error = info.value
        assert error.__cause__ is None
        assert error.__context__ is None
        assert all(SECRET not in str(arg) for arg in error.args)
