"""Tests for rotator.secrets: masked values, fingerprints, redaction."""

from hypothesis import given
from hypothesis import strategies as st

from rotator.secrets import (
    FRAGMENT_LENGTH,
    MASK,
    Secret,
    fingerprint,
    mask_fragments,
    redact,
    register_secret,
)


class TestSecret:
    """The Secret wrapper."""

    def test_repr_and_str_are_masked(self) -> None:
        """Neither repr nor str nor an f-string reveals the value."""
        secret = Secret("super-secret-value-1")
        assert "super-secret-value-1" not in repr(secret)
        assert "super-secret-value-1" not in str(secret)
        assert "super-secret-value-1" not in f"{secret} {secret!r}"

    def test_reveal_returns_the_value(self) -> None:
        """reveal() is the one way to the value."""
        assert Secret("abc-def-ghi").reveal() == "abc-def-ghi"

    def test_equality_compares_values(self) -> None:
        """Two wrappers of the same value are equal and hash alike."""
        assert Secret("same-value-x") == Secret("same-value-x")
        assert hash(Secret("same-value-x")) == hash(Secret("same-value-x"))
        assert Secret("same-value-x") != Secret("other-value-y")


class TestFingerprint:
    """Fingerprints identify values without revealing them."""

    @given(st.text(min_size=1))
    def test_fingerprint_is_stable_and_never_contains_the_value(self, value: str) -> None:
        """The same value always gives the same fingerprint, which does not embed it."""
        first = fingerprint(value)
        assert first == fingerprint(value)
        assert first.startswith("sha256:")
        assert len(first) == len("sha256:") + 16
        if len(value) >= 4:
            assert value not in first

    def test_different_values_have_different_fingerprints(self) -> None:
        """Distinct values are told apart."""
        assert fingerprint("value-one") != fingerprint("value-two")


class TestRedact:
    """Substring redaction of registered values."""

    def test_registered_value_is_masked_inside_text(self) -> None:
        """A registered value is replaced wherever it appears."""
        register_secret("leaky-token-123456")
        assert redact("error near leaky-token-123456!") == f"error near {MASK}!"

    def test_short_values_are_not_registered(self) -> None:
        """Values too short to redact safely are ignored rather than masking common text."""
        register_secret("abc")
        assert redact("abc") == "abc"


class TestMaskFragments:
    """Masking of any run of FRAGMENT_LENGTH+ characters of a secret in a child's output."""

    KEY = "svctok-Zq8vR2mXw4LpT9sKc1YhN6bF"

    def test_prefix_of_a_registered_value_is_masked(self) -> None:
        """A 20-character prefix of a registered key becomes one mask."""
        register_secret(self.KEY)
        assert mask_fragments(f"using {self.KEY[:20]}...") == f"using {MASK}..."

    def test_seven_characters_are_left_alone(self) -> None:
        """A run shorter than FRAGMENT_LENGTH is ordinary text (svctok- is every token's prefix)."""
        register_secret(self.KEY)
        assert mask_fragments("prefix svctok- and Zq8vR2m") == "prefix svctok- and Zq8vR2m"

    def test_extra_values_are_masked_without_registration(self) -> None:
        """Values given as ``extra`` are masked in whole and in part."""
        value = "unregistered-value-0123456789"
        assert mask_fragments(f"a {value} b {value[3:15]} c", [value]) == f"a {MASK} b {MASK} c"

    @given(
        st.integers(min_value=0, max_value=len(KEY) - FRAGMENT_LENGTH),
        st.integers(min_value=FRAGMENT_LENGTH, max_value=len(KEY)),
        st.text(alphabet=" .:=\n", max_size=20),
        st.text(alphabet=" .:=\n", max_size=20),
    )
    def test_every_long_enough_substring_is_masked(
        self, start: int, length: int, before: str, after: str
    ) -> None:
        """Whatever part of the key of 8+ characters is printed, none of it survives."""
        register_secret(self.KEY)
        fragment = self.KEY[start : start + length]
        if len(fragment) < FRAGMENT_LENGTH:
            return
        masked = mask_fragments(before + fragment + after)
        assert masked == before + MASK + after
