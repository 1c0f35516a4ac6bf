"""Tests for the suite's secret-leak guard (tests/plugins/leak_guard.py)."""

from __future__ import annotations

import base64

from tests.plugins.leak_guard import FRAGMENT, forms, leaks

VALUE = "svctok-Zm9vYmFyYmF6cXV4cXV1eHl6enkxMjM0NTY3ODkw"


class TestLeaks:
    """leaks() finds a value in every form a leak takes, and names only the form."""

    def test_clean_text_has_no_leak(self) -> None:
        """Text without any form of the value is clean."""
        assert leaks([VALUE], ["fingerprint sha256:0123456789abcdef", "svctok-"]) == []

    def test_whole_prefix_suffix_and_base64_are_found(self) -> None:
        """Each form is found on its own, in any of the texts."""
        found = {
            name: leaks([VALUE], ["x", f"...{form}..."]) for name, form in forms(VALUE).items()
        }
        assert all(found.values())
        assert leaks([VALUE], [base64.b64encode(VALUE.encode()).decode()])

    def test_report_never_holds_the_value(self) -> None:
        """The finding names the value by position and form, never the value."""
        (finding, *_) = leaks([VALUE], [VALUE])
        assert VALUE[len("svctok-") :][:FRAGMENT] not in finding
        assert finding.startswith("issued value #1 appears as its")
