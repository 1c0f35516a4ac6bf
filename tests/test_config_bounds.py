"""Bounded input: what load_config and ``check-config`` refuse before it can cost a run
(file size, alias expansion, nesting, durations a date cannot hold, files that are one file),
the ``env:`` of command consumers and hooks, and a fuzz of ``check-config``: any text gives
exit 0 or exit 2 with a message, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator.config import CommandAlert, CommandConsumer
from tests.plugins.cli import CliRunner
from tests.plugins.config import ConfigErrorText, ConfigLoader, minimal_config

#: The documented size limit of a configuration file.
ONE_MIB = 1024 * 1024


def with_key(**fields: Any) -> dict[str, Any]:
    """The minimal configuration, its one key with ``fields`` replaced."""
    data = minimal_config()
    data["keys"][0].update(fields)
    return data


def file_target(path: Path, **extra: Any) -> dict[str, Any]:
    """A raw file target."""
    return {"type": "file", "path": str(path), **extra}


class TestSizeAndShape:
    """The file and the document it holds are bounded."""

    def test_file_over_one_mib_is_refused_naming_it(
        self, tmp_path: Path, config_error: ConfigErrorText
    ) -> None:
        """A file over 1 MiB (here valid YAML, one long comment) is refused unparsed."""
        text = yaml.safe_dump(minimal_config()) + "# " + "x" * ONE_MIB + "\n"
        message = config_error(text)
        assert message.startswith(f"configuration file {tmp_path / 'rotator.yaml'} is larger")
        assert "1 MiB" in message

    def test_alias_bomb_is_refused(self, config_error: ConfigErrorText) -> None:
        """Nested aliases expanding to 10**9 values ("billion laughs") are refused at once."""
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
        text = yaml.safe_dump(minimal_config()) + "\n".join(lines) + "\n"
        assert "expands to more than 100000 values" in config_error(text)

    def test_recursive_alias_is_refused(self, config_error: ConfigErrorText) -> None:
        """A list containing itself is refused, not a RecursionError."""
        text = yaml.safe_dump(minimal_config()) + "loop: &a [*a]\n"
        assert "nested deeper than 64 levels" in config_error(text)

    @pytest.mark.parametrize("depth", [65, 3000])
    def test_deep_nesting_is_refused(self, config_error: ConfigErrorText, depth: int) -> None:
        """Past 64 levels (or past what the parser can take) a document is refused cleanly."""
        text = yaml.safe_dump(minimal_config()) + "deep: " + "[" * depth + "]" * depth + "\n"
        assert "nested" in config_error(text) and "64 levels" in config_error(text)

    def test_aliases_within_bounds_still_work(self, load_yaml_config: ConfigLoader) -> None:
        """Ordinary anchors and aliases (a shared target list) keep loading."""
        data = minimal_config()
        text = yaml.safe_dump(data).replace("targets:", "targets: &t", 1)
        text += "alerts: []\n"
        assert load_yaml_config(text).keys[0].name == "agent"


class TestDurationBounds:
    """Durations stay within what a date can hold; validity is at most ten years."""

    def test_validity_over_3650d_names_the_field(self, config_error: ConfigErrorText) -> None:
        """validity: 3651d on a key is refused, naming keys[0].validity."""
        message = config_error(with_key(validity="3651d"))
        assert "keys[0].validity: must be at most 3650d" in message

    def test_default_validity_over_3650d_names_the_field(
        self, config_error: ConfigErrorText
    ) -> None:
        """The same bound holds in defaults."""
        data = minimal_config()
        data["defaults"] = {"validity": "4000d"}
        assert "defaults.validity: must be at most 3650d" in config_error(data)

    def test_validity_3650d_is_accepted(self, load_yaml_config: ConfigLoader) -> None:
        """Ten years exactly is the limit, not beyond it."""
        config = load_yaml_config(with_key(validity="3650d"))
        assert config.keys[0].policy.validity.days == 3650

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("validity", "3650000d"),
            ("orphan_min_age", "3650000d"),
            ("grace_period", 10**12),
            ("switch_timeout", "9" * 400 + "s"),
        ],
    )
    def test_durations_a_date_cannot_hold_are_refused(
        self, config_error: ConfigErrorText, field: str, value: object
    ) -> None:
        """Any duration beyond 100 years is a validation error naming its field."""
        message = config_error(with_key(**{field: value}))
        assert f"keys[0].{field}: duration is too large: at most 36500d" in message

    def test_huge_validity_exits_2_in_check_config_and_rotate(
        self, run_cli: CliRunner, tmp_path: Path
    ) -> None:
        """validity: 3650000d used to pass check-config and crash rotate with OverflowError."""
        path = tmp_path / "rotator.yaml"
        path.write_text(yaml.safe_dump(with_key(validity="3650000d")))
        for command in ("check-config", "rotate"):
            result = run_cli("--config", str(path), command)
            assert result.code == 2, result.err
            assert "keys[0].validity" in result.err
            assert "Traceback" not in result.err and "OverflowError" not in result.err


class TestSameFileTwice:
    """Two file targets reaching one file through a symlinked directory are one target."""

    def test_symlinked_directory_is_a_collision(
        self, tmp_path: Path, config_error: ConfigErrorText
    ) -> None:
        """/etc/agent/key and /link/key (link -> etc/agent) are refused like one path twice."""
        real = tmp_path / "etc" / "agent"
        real.mkdir(parents=True)
        link = tmp_path / "link"
        link.symlink_to(real)
        data = minimal_config()
        data["keys"][0]["targets"] = [file_target(real / "key")]
        data["keys"].append(
            {**data["keys"][0], "name": "second", "targets": [file_target(link / "key")]}
        )
        message = config_error(data)
        assert f"keys[1].targets[0]: file {link / 'key'} is also written by keys[0].targets[0]" in (
            message
        )


class TestChildEnv:
    """``env:`` of command consumers and command alert hooks."""

    def test_consumer_and_hook_accept_env_with_interpolation(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """Values may use ${VAR} (interpolated at load) and numbers become text."""
        consumer = {
            "type": "command",
            "command": ["systemctl", "restart", "agent"],
            "env": {"SERVICE": "${SERVICE_NAME}", "RETRIES": 3},
        }
        data = with_key(consumers=[consumer])
        data["alerts"] = [{"type": "command", "command": ["notify"], "env": {"CHANNEL": "#ops"}}]
        config = load_yaml_config(data, environ={"SERVICE_NAME": "stackstate-agent"})
        (loaded,) = config.keys[0].consumers
        assert isinstance(loaded, CommandConsumer)
        assert loaded.env == {"SERVICE": "stackstate-agent", "RETRIES": "3"}
        (hook,) = config.alerts
        assert isinstance(hook, CommandAlert)
        assert hook.env == {"CHANNEL": "#ops"}

    def test_env_defaults_to_nothing(self, load_yaml_config: ConfigLoader) -> None:
        """Without env: the child gets only what the rotator always gives."""
        data = with_key(consumers=[{"type": "command", "command": ["true"]}])
        (consumer,) = load_yaml_config(data).keys[0].consumers
        assert isinstance(consumer, CommandConsumer)
        assert consumer.env == {}

    def test_invalid_variable_name_is_refused(self, config_error: ConfigErrorText) -> None:
        """A name that is not a variable name is a validation error of that field."""
        consumer = {"type": "command", "command": ["true"], "env": {"1BAD-NAME": "x"}}
        message = config_error(with_key(consumers=[consumer]))
        assert "keys[0].consumers[0].env" in message
        assert "must be a variable name" in message


# -- fuzzing ------------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["90d", "3650000d", "30%", "${HOME}", "${NOPE}", "$${x}", "0s", "-1d"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = st.sampled_from(
    [
        "validity",
        "rotate_before",
        "grace_period",
        "switch_timeout",
        "orphan_min_age",
        "schedule",
        "windows",
        "targets",
        "consumers",
        "preset",
        "kind",
        "roles",
        "name",
        "alert_before",
    ]
)


def _mutated_config(field: str, value: Any, section: str, section_value: Any) -> str:
    data = minimal_config()
    data["keys"][0][field] = value
    data[section] = section_value
    return yaml.safe_dump(data, allow_unicode=True)


_TEXTS = st.one_of(
    st.text(max_size=300),
    st.builds(lambda v: yaml.safe_dump(v, allow_unicode=True), _VALUES),
    st.builds(
        _mutated_config,
        _FIELDS,
        _VALUES,
        st.sampled_from(["defaults", "alerts", "stackstate", "server", "vault", "history"]),
        _VALUES,
    ),
    st.builds(
        lambda prefix, cut: (yaml.safe_dump(minimal_config()) + prefix)[:cut],
        st.sampled_from(["x: &a [*a, *a]\n", "y: *nope\n", "'\n", "z: !!python/object {}\n"]),
        st.integers(min_value=0, max_value=2000),
    ),
)


class TestCheckConfigFuzz:
    """``check-config`` over arbitrary files: exit 0, or exit 2 with a message; no traceback."""

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(text=_TEXTS)
    def test_any_text_gives_exit_0_or_2(
        self, run_cli: CliRunner, tmp_path: Path, text: str
    ) -> None:
        """Whatever the file holds, the answer is ok (0) or a readable error (2)."""
        path = tmp_path / "fuzz.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = run_cli("--config", str(path), "check-config")
        assert result.code in (0, 2), result.err
        assert "Traceback" not in result.err + result.out
        if result.code == 2:
            assert result.err.startswith("error: "), result.err
        else:
            assert result.out.startswith("ok: ")
