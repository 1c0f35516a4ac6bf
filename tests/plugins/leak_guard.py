"""The secret-leak guard over the whole suite (invariant I4).

After every test, every key value a StackState emulator handed out during that test is searched
for — whole, as a 16-character prefix or suffix, and base64-encoded — in everything the test let
escape: its captured stdout, stderr and log records, and every alert payload a receiver accepted.
A hit fails the test, naming the form found, never the value.

A test of a leak check itself, which plants a value on purpose, is marked ``leaks_on_purpose``.
Values a test prints on purpose stay inside its CLI runner result (``keys create`` is the one
command that prints a value, and only to its own stdout); what reaches pytest's capture is what
would reach a terminal, a log collector or an alerting system.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Iterable

import pytest

from rotator_sandbox.stackstate import issued_in_process
from tests.plugins.alert_receiver import ALL_RECEIVED

#: Length of the prefix and suffix forms searched (a value cut by a log shortener or a child).
FRAGMENT = 16


def forms(value: str) -> dict[str, str]:
    """The forms of ``value`` a leak may take, by name."""
    found = {
        "value": value,
        "base64": base64.b64encode(value.encode()).decode(),
        "prefix": value[:FRAGMENT],
        "suffix": value[-FRAGMENT:],
    }
    if value.startswith("svctok-"):
        # The constant prefix is not secret; its random part is.
        found["prefix"] = value[: len("svctok-") + FRAGMENT]
    return found


def leaks(values: Iterable[str], texts: Iterable[str]) -> list[str]:
    """Which forms of which value (by position) appear in ``texts``; empty when none."""
    corpus = "\n".join(texts)
    return [
        f"issued value #{index} appears as its {name}"
        for index, value in enumerate(values, start=1)
        for name, form in forms(value).items()
        if form and form in corpus
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """Remember where the process-wide registries stood when the test started."""
    item.stash[_START] = (len(issued_in_process()), len(ALL_RECEIVED))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Fail a test whose captured output or alert payloads hold a value it was issued."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "teardown" or item.stash.get(_START, None) is None:
        return
    if item.get_closest_marker("leaks_on_purpose") is not None:
        return
    issued_from, received_from = item.stash[_START]
    values = issued_in_process()[issued_from:]
    if not values:
        return
    texts = [content for _when, _key, content in item._report_sections]
    texts += [r.body.decode("utf-8", "replace") for r in ALL_RECEIVED[received_from:]]
    found = leaks(values, texts)
    if found:
        report.outcome = "failed"
        report.longrepr = "secret leak (I4): " + "; ".join(found)


_START = pytest.StashKey[tuple[int, int]]()
