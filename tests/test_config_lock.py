"""The ``lock:`` section: which shared lock a writing run takes (config.LockSettings)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.plugins.config import ConfigErrorText, ConfigLoader, minimal_config

ELECTION = {"enabled": True, "namespace": "suse-observability"}
VAULT = {"url": "https://vault.example.com", "auth": {"method": "token", "token": "t"}}


def config_with(**sections: Any) -> dict[str, Any]:
    """The minimal configuration plus ``sections``."""
    return {**minimal_config(), **sections}


class TestLockSettings:
    """Defaults, the effective lock, and what each lock needs."""

    def test_defaults_to_the_file_lock_without_leader_election(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Nothing configured: the per-machine lock file only, as before."""
        config = load_yaml_config(minimal_config())
        assert config.lock.type is None
        assert config.lock.effective_type(config.leader_election) == "file"
        assert (config.lock.mount, config.lock.path) == ("secret", "stackstate-key-rotator/lock")
        assert config.lock.ttl == timedelta(seconds=60)

    def test_defaults_to_the_lease_with_leader_election(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """With leader election, rotate runs take the daemon's Lease."""
        config = load_yaml_config(config_with(leader_election=ELECTION))
        assert config.lock.effective_type(config.leader_election) == "lease"

    def test_an_explicit_type_wins(self, load_yaml_config: ConfigLoader) -> None:
        """``type: file`` keeps one-machine locking even with leader election."""
        config = load_yaml_config(config_with(leader_election=ELECTION, lock={"type": "file"}))
        assert config.lock.effective_type(config.leader_election) == "file"

    def test_a_vault_lock_loads_with_a_vault_section(self, load_yaml_config: ConfigLoader) -> None:
        """``type: vault`` with its mount, path and ttl."""
        lock = {"type": "vault", "mount": "kv2/", "path": "/locks/rotator/", "ttl": "2m"}
        config = load_yaml_config(config_with(vault=VAULT, lock=lock))
        assert (config.lock.mount, config.lock.path) == ("kv2", "locks/rotator")
        assert config.lock.ttl == timedelta(minutes=2)

    @pytest.mark.parametrize(
        ("sections", "fragment"),
        [
            ({"lock": {"type": "vault"}}, "lock.type: a vault lock needs a vault: section"),
            (
                {"lock": {"type": "lease"}},
                "lock.type: a lease lock uses the leader_election Lease: set its namespace",
            ),
            ({"lock": {"type": "redis"}}, "lock.type"),
            ({"lock": {"ttl": "0s"}}, "lock.ttl"),
            ({"lock": {"type": "vault", "path": "a//b"}, "vault": VAULT}, "lock.path"),
        ],
    )
    def test_problems_name_the_field(
        self, config_error: ConfigErrorText, sections: dict[str, Any], fragment: str
    ) -> None:
        """A lock without what it needs, or with a bad value, is a configuration error."""
        assert fragment in config_error(config_with(**sections))

    def test_a_lease_lock_without_election_uses_its_namespace(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """``type: lease`` with the election's namespace but no daemon electing is allowed."""
        election = {"namespace": "suse-observability"}
        config = load_yaml_config(config_with(leader_election=election, lock={"type": "lease"}))
        assert config.lock.effective_type(config.leader_election) == "lease"
