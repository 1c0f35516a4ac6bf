"""``sys/capabilities-self`` on the Vault emulator and on a real OpenBao: the same answers."""

from __future__ import annotations

from typing import Any

import hvac.exceptions
import pytest

from tests.plugins.vault import VaultServer


def capabilities(answer: dict[str, Any], path: str) -> list[str]:
    """The capabilities of ``path`` in an answer (``data`` first, the top-level copy else)."""
    data = answer.get("data") or answer
    return sorted(data[path])


class TestCapabilitiesSelf:
    """The calling token's capabilities per path, computed from its policies."""

    def test_policy_capabilities_per_path(self, vault_server: VaultServer) -> None:
        """Exact paths and globs grant what they list; no match is deny."""
        vault_server.set_policy(
            "rotator",
            {
                "secret/data/app/agent": ["read", "create", "update"],
                "secret/metadata/app/*": ["read"],
            },
        )
        token = vault_server.create_token(["rotator"])
        paths = ["secret/data/app/agent", "secret/metadata/app/agent", "secret/data/other"]
        answer = vault_server.client(token).sys.get_capabilities(paths=paths)
        assert capabilities(answer, paths[0]) == ["create", "read", "update"]
        assert capabilities(answer, paths[1]) == ["read"]
        assert capabilities(answer, paths[2]) == ["deny"]
        assert answer[paths[0]] == answer["data"][paths[0]]  # repeated at the top level
        assert "capabilities" not in answer["data"]  # only for a single path

    def test_a_single_path_also_answers_capabilities(self, vault_server: VaultServer) -> None:
        """Backwards compatibility: one path adds a ``capabilities`` field."""
        vault_server.set_policy("reader", {"secret/data/x": ["read"]})
        token = vault_server.create_token(["reader"])
        answer = vault_server.client(token).sys.get_capabilities(paths=["secret/data/x"])
        assert answer["data"]["capabilities"] == ["read"]

    def test_root_token_has_root(self, vault_server: VaultServer) -> None:
        """A root token answers ``root`` for any path."""
        answer = vault_server.client().sys.get_capabilities(paths=["secret/data/anything"])
        assert capabilities(answer, "secret/data/anything") == ["root"]

    def test_deny_wins_on_the_matching_path(self, vault_server: VaultServer) -> None:
        """A deny in the most specific matching rule answers deny."""
        vault_server.set_policy(
            "mixed", {"secret/data/*": ["read"], "secret/data/locked": ["deny"]}
        )
        token = vault_server.create_token(["mixed"])
        answer = vault_server.client(token).sys.get_capabilities(
            paths=["secret/data/locked", "secret/data/open"]
        )
        assert capabilities(answer, "secret/data/locked") == ["deny"]
        assert capabilities(answer, "secret/data/open") == ["read"]

    def test_a_token_without_the_default_policy_may_not_ask(
        self, vault_server: VaultServer
    ) -> None:
        """The default policy grants update on sys/capabilities-self; without it: 403."""
        vault_server.set_policy("bare", {"secret/data/x": ["read"]})
        token = vault_server.create_token(["bare"], no_default_policy=True)
        with pytest.raises(hvac.exceptions.Forbidden):
            vault_server.client(token).sys.get_capabilities(paths=["secret/data/x"])
