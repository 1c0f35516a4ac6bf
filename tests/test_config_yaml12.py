"""The configuration parser: YAML 1.2 meanings under ruamel's C parser, the same values the
pure-Python parser gives, and a nesting bound that keeps the C parser from crashing."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml import main as ruamel_main
from ruamel.yaml.error import YAMLError

from rotator.config.loading import _parse_yaml
from rotator.errors import ConfigError
from tests.plugins.config import ConfigErrorText, ConfigLoader, minimal_config

#: Plain scalars whose meaning differs between YAML 1.1 and 1.2, or that a resolver could get
#: wrong: booleans, octals, sexagesimals, floats, nulls, timestamps, merge keys, tags.
SCALARS = [
    "yes", "no", "on", "off", "Yes", "NO", "y", "n", "true", "False",
    "0777", "0o17", "0b101", "0x1F", "1_000", "+12", "-3", "012345",
    "1:20", "190:20:30", "1.5", ".5", "1e3", "12e03", "-.inf", ".NaN", "1_0.5",
    "~", "null", "Null", "", "2024-01-01", "2024-01-01 10:00:00", "2024-01-01T10:00:00Z",
    "'yes'", '"0777"', "!!str 5", "!!int '7'", "!!binary aGVsbG8=", "a=b",
]  # fmt: skip


#: Pieces of YAML-ish text: indicators, quotes, anchors, blanks, the 1.1/1.2 troublemakers.
_PIECES = st.sampled_from(
    [*"ab01:-?[]{},#&*!|>'\"% .~xyz\\/", "\n", "\n", "\n  ", "  ", "\t", "\u2028", "\x85",
     "yes", "0777", "<<", "1:20", "https://a", " - ", ": ", "&a ", "*a", "&y?", "*y@"]
)  # fmt: skip
_TEXTS = st.lists(_PIECES, min_size=1, max_size=25).map("".join)
_FAILED = object()


def pure(text: str) -> Any:
    """What ruamel's pure-Python YAML 1.2 parser (the reference) makes of ``text``."""
    return YAML(typ="safe", pure=True).load(text)


class TestSameMeaningAsThePureParser:
    """The fast path changes the speed, never a value."""

    def test_the_c_parser_is_installed(self) -> None:
        """ruamel.yaml.clib is a runtime dependency: without it loading is 4-5x slower."""
        assert getattr(ruamel_main, "CParser", None) is not None

    @pytest.mark.parametrize("scalar", SCALARS)
    def test_scalar(self, scalar: str) -> None:
        """Each scalar, as a mapping value and as a list item, means what it means in 1.2."""
        text = f"value: {scalar}\nlist: [{scalar or '~'}]\n"
        assert _parse_yaml(text, "test.yaml") == pure(text)

    def test_documented_examples_keep_their_12_meaning(self) -> None:
        """``yes``/``on`` stay strings and ``0777`` is decimal 777 (1.1 would say True and 511)."""
        data = _parse_yaml("a: yes\nb: on\nc: 0777\nd: no\ne: 0o17\n", "test.yaml")
        assert data == {"a": "yes", "b": "on", "c": 777, "d": "no", "e": 15}
        assert yaml.safe_load("a: yes\nc: 0777\n") == {"a": True, "c": 511}  # what 1.1 means

    def test_anchors_merge_keys_and_block_scalars(self) -> None:
        """Aliases, ``<<`` merges, literal and folded blocks, complex keys."""
        text = (
            "base: &b {x: 1, y: on}\n"
            "derived: {<<: *b, z: 2}\n"
            "lit: |\n  line one\n  line two\n"
            "fold: >-\n  folded\n  text\n"
            "? [a, b]\n: pair\n"
        )
        assert _parse_yaml(text, "test.yaml") == pure(text)

    @settings(
        max_examples=300,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(text=_TEXTS)
    def test_differential_fuzz(self, text: str) -> None:
        """Any text whose reference reading is a mapping reads the same (or both refuse it).

        A document that is a top-level scalar is left out: the two parsers disagree on a few
        of those (a block scalar at column 0), and the configuration refuses them either way.
        """
        try:
            expected = pure(text)
        except (YAMLError, RecursionError, TypeError):
            expected = _FAILED
        try:
            got = _parse_yaml(text, "fuzz.yaml")
        except ConfigError:
            got = _FAILED
        if isinstance(expected, dict) or isinstance(got, dict):
            assert got == expected

    def test_a_yaml_11_directive_is_still_honoured(self) -> None:
        """A document that asks for ``%YAML 1.1`` gets 1.1 meanings, as before."""
        text = "%YAML 1.1\n---\na: yes\nb: 0777\n"
        assert _parse_yaml(text, "test.yaml") == {"a": True, "b": 511}


class TestThroughLoadConfig:
    """The meanings reach the validated models."""

    def test_yes_on_and_0777_in_a_configuration(self, load_yaml_config: ConfigLoader) -> None:
        """``description: yes`` is the text "yes"; ``adopt_key_id: 0777`` is the number 777."""
        text = (
            "stackstate: {url: 'https://sts.example.com', service_token: tok-0123456789}\n"
            "keys:\n"
            "  - {name: a, kind: ingestion-api-key, description: yes, adopt_key_id: 0777,\n"
            "     targets: [{type: kubernetes-secret, namespace: on, name: s, key: K}]}\n"
        )
        key = load_yaml_config(text).keys[0]
        assert key.description == "yes"
        assert key.adopt_key_id == 777
        assert key.targets[0].namespace == "on"  # type: ignore[union-attr]

    def test_12_only_syntax_loads(self, load_yaml_config: ConfigLoader) -> None:
        """A URL in a flow mapping (``{url: https://x}``) is YAML 1.2 only: it still loads."""
        text = (
            "stackstate: {url: https://sts.example.com, service_token: tok-0123456789}\n"
            "keys: [{name: a, kind: ingestion-api-key,"
            " targets: [{type: kubernetes-secret, namespace: n, name: s, key: K}]}]\n"
        )
        assert load_yaml_config(text).stackstate.url == "https://sts.example.com"

    def test_duplicate_key_is_located_without_values(self, config_error: ConfigErrorText) -> None:
        """A duplicate key found by the C parser's path names the key and line only."""
        message = config_error("stackstate:\n  url: one-value\n  url: other-value\n")
        assert "line 3, column 3: duplicate key 'url'" in message
        assert "one-value" not in message and "other-value" not in message

    @pytest.mark.parametrize("depth", [66, 100_000])
    def test_nesting_that_would_crash_the_c_parser_is_refused(
        self, config_error: ConfigErrorText, depth: int
    ) -> None:
        """Nesting far past the bound (the C composer recurses on the C stack) is refused with
        a located message instead of crashing the process."""
        text = yaml.safe_dump(minimal_config()) + "deep: " + "[" * depth + "]" * depth + "\n"
        message = config_error(text)
        assert "nested too deeply (at most 64 levels)" in message
        assert "at line " in message

    def test_64_levels_below_the_top_pass_the_bound(self, config_error: ConfigErrorText) -> None:
        """The bound admits what the value walk admits: 64 levels under the top reach
        validation (which refuses the unknown section), not the nesting check."""
        text = yaml.safe_dump(minimal_config()) + "x_deep: " + "[" * 64 + "]" * 64 + "\n"
        message = config_error(text)
        assert "x_deep" in message
        assert "nested" not in message


class TestCollectorPause:
    """The garbage collector paused while a configuration loads runs again afterwards."""

    def test_collector_runs_again_after_a_load(self, load_yaml_config: ConfigLoader) -> None:
        """A successful load leaves the collector enabled."""
        assert gc.isenabled()
        load_yaml_config(minimal_config())
        assert gc.isenabled()

    def test_collector_runs_again_after_a_refused_load(self, config_error: ConfigErrorText) -> None:
        """A configuration error leaves it enabled too."""
        assert "duplicate key" in config_error("a: 1\na: 2\n")
        assert gc.isenabled()

    def test_a_paused_collector_stays_paused(self, load_yaml_config: ConfigLoader) -> None:
        """A caller that paused the collector itself finds it still paused."""
        gc.disable()
        try:
            load_yaml_config(minimal_config())
            assert not gc.isenabled()
        finally:
            gc.enable()
