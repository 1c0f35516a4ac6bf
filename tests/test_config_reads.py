"""The configuration of reads: ``workers`` (how many overlap) and ``kubernetes.read`` (GET or
LIST of Secrets, per context)."""

from __future__ import annotations

import pytest

from tests.plugins.config import ConfigErrorText, ConfigLoader, minimal_config


class TestWorkers:
    """``workers``: 8 by default, 1 to 64."""

    def test_default_is_eight(self, load_yaml_config: ConfigLoader) -> None:
        """Nothing configured: eight reads in flight."""
        assert load_yaml_config(minimal_config()).workers == 8

    @pytest.mark.parametrize("value", [1, 64])
    def test_bounds_are_accepted(self, load_yaml_config: ConfigLoader, value: int) -> None:
        """1 (sequential) and 64 are valid."""
        data = minimal_config()
        data["workers"] = value
        assert load_yaml_config(data).workers == value

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [(0, "greater than or equal to 1"), (65, "less than or equal to 64"), ("many", "integer")],
    )
    def test_out_of_range_names_the_field(
        self, config_error: ConfigErrorText, value: object, fragment: str
    ) -> None:
        """A clear error naming ``workers``, never a traceback."""
        data = minimal_config()
        data["workers"] = value
        message = config_error(data)
        assert "workers" in message
        assert fragment in message


class TestSecretReadMode:
    """``kubernetes.read`` and its per-context override."""

    def test_default_is_get_everywhere(self, load_yaml_config: ConfigLoader) -> None:
        """Least privilege unless opted in."""
        kubernetes = load_yaml_config(minimal_config()).kubernetes
        assert kubernetes.read == "get"
        assert kubernetes.read_mode(None) == "get"
        assert kubernetes.read_mode("prod") == "get"

    def test_a_context_overrides_the_section(self, load_yaml_config: ConfigLoader) -> None:
        """contexts.<name>.read wins for that context; targets without a context use
        kubernetes.context's entry."""
        data = minimal_config()
        data["kubernetes"] = {
            "context": "prod",
            "read": "get",
            "contexts": {"prod": {"read": "list"}, "lab": {}},
        }
        kubernetes = load_yaml_config(data).kubernetes
        assert kubernetes.read_mode("prod") == "list"
        assert kubernetes.read_mode(None) == "list"
        assert kubernetes.read_mode("lab") == "get"
        assert kubernetes.read_mode("other") == "get"

    def test_an_unknown_mode_names_the_field(self, config_error: ConfigErrorText) -> None:
        """Only get and list exist."""
        data = minimal_config()
        data["kubernetes"] = {"contexts": {"prod": {"read": "watch"}}}
        message = config_error(data)
        assert "kubernetes.contexts[\"prod\"].read: input should be 'get' or 'list'" in message
