"""Tests for the command consumer, running real subprocesses (tiny /bin/sh scripts)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from rotator.consumers.base import Consumer, SwitchRequest, SwitchState, consumer_token
from rotator.consumers.command import (
    FINGERPRINT_ENV,
    MANAGED_KEY_ENV,
    OUTPUT_TAIL_BYTES,
    CommandConsumer,
)
from rotator.secrets import MASK, Secret, register_secret, registered_secrets, reset_registry

SH = "/bin/sh"
PUSHED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
#: Exactly 40 characters (the tail test relies on the length).
VALUE = Secret("cmd-key-value-0123456789abcdef0123456789")
#: Generous bound for processes to vanish after the consumer returned (not a timing assertion).
GONE_WITHIN = 10.0


def script(tmp_path: Path, body: str, name: str = "run.sh") -> Path:
    """Write a /bin/sh script into ``tmp_path`` and return its path."""
    path = tmp_path / name
    path.write_text(body)
    return path


def request(value: Secret | None = VALUE, key: str = "agent") -> SwitchRequest:
    """A switch request for ``value``."""
    fp = value.fingerprint if value is not None else "sha256:0000000000000000"
    return SwitchRequest(key, fp, PUSHED_AT, value)


def fire(consumer: CommandConsumer, *requests: SwitchRequest) -> SwitchState:
    """Trigger ``consumer`` the way the engine does, after observe said needs-trigger."""
    state = SwitchState(consumer.id, "needs-trigger", "not run yet")
    return consumer.trigger(state, list(requests) or [request()])


def make(argv: Sequence[str], **kwargs: Any) -> CommandConsumer:
    """A command consumer with a short default timeout and a minimal environment."""
    options: dict[str, Any] = {"timeout": 10.0, "environ": {"PATH": os.environ["PATH"]}}
    options.update(kwargs)
    return CommandConsumer(command=argv, **options)


def gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def wait_gone(pid: int) -> bool:
    """Poll until ``pid`` is gone; False if it still runs after :data:`GONE_WITHIN` seconds."""
    deadline = time.monotonic() + GONE_WITHIN
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pid(path: Path) -> int:
    """A pid a script wrote into ``path``."""
    return int(path.read_text().strip())


def logged_text(events: Sequence[Mapping[str, Any]]) -> str:
    """Every captured log event as one string."""
    return "\n".join(repr(event) for event in events)


@pytest.fixture
def unregistered() -> Iterator[None]:
    """Run with an empty secret registry (so only the explicit scrub can mask), then restore."""
    saved = registered_secrets()
    reset_registry()
    yield
    for value in saved:
        register_secret(value)


@pytest.fixture
def only_value_registered(unregistered: None) -> None:
    """Only VALUE is registered: the exact masked text does not depend on the secrets other
    tests in this process registered (any 8+ characters of any of them are masked too)."""
    register_secret(VALUE.reveal())


class TestIdentity:
    """Identity, description and argument checks."""

    def test_satisfies_the_consumer_protocol(self) -> None:
        """The consumer is a runtime-checkable Consumer."""
        assert isinstance(make(["true"]), Consumer)

    def test_id_is_the_shell_quoted_argv(self) -> None:
        """The id is ``command:`` and the argv joined with shell quoting."""
        assert make(["systemctl", "restart", "stackstate-agent"]).id == (
            "command:systemctl restart stackstate-agent"
        )
        assert make(["/bin/echo", "a b"]).id == "command:/bin/echo 'a b'"

    def test_describe_names_command_timeout_and_stdin(self) -> None:
        """The description shows the command, the timeout and whether the key goes to stdin."""
        text = make(["systemctl", "restart", "x"], timeout=120, pass_key="stdin").describe()
        assert "systemctl restart x" in text
        assert "2m" in text
        assert "stdin" in text

    @pytest.mark.parametrize(
        "kwargs",
        [{"command": []}, {"command": [""]}, {"timeout": 0}, {"pass_key": "env"}],
    )
    def test_invalid_arguments_are_refused(self, kwargs: dict[str, Any]) -> None:
        """An empty argv, a non-positive timeout or an unknown pass_key is a ValueError."""
        options: dict[str, Any] = {"command": ["true"], "timeout": 1.0}
        options.update(kwargs)
        with pytest.raises(ValueError):
            CommandConsumer(**options)

    def test_trigger_without_requests_is_a_caller_bug(self) -> None:
        """trigger with no switch request raises ValueError."""
        consumer = make(["true"])
        with pytest.raises(ValueError, match="at least one"):
            consumer.trigger(SwitchState(consumer.id, "needs-trigger", ""), [])


class TestObserve:
    """Reading the recorded ``done`` tokens."""

    def test_recorded_token_is_switched_without_running(self, tmp_path: Path) -> None:
        """A token in ``done`` is switched, and nothing is run."""
        marker = tmp_path / "ran"
        consumer = make([SH, str(script(tmp_path, f"touch {marker}\n"))])
        states = consumer.observe(request(), frozenset({consumer_token(consumer.id)}))
        assert [(s.id, s.phase) for s in states] == [(consumer.id, "switched")]
        assert states[0].reason == "ran successfully after the push"
        assert not marker.exists()

    def test_without_token_needs_a_trigger(self, tmp_path: Path) -> None:
        """Without its token (another consumer's does not count) the command needs a run."""
        marker = tmp_path / "ran"
        consumer = make([SH, str(script(tmp_path, f"touch {marker}\n"))])
        states = consumer.observe(request(), frozenset({consumer_token("command:other")}))
        assert [s.phase for s in states] == ["needs-trigger"]
        assert VALUE.fingerprint in states[0].reason
        assert not marker.exists()


class TestTrigger:
    """Running the command and reading its outcome."""

    def test_exit_zero_is_switched(self, tmp_path: Path) -> None:
        """A command that exits 0 is switched and logged with command, exit code and duration."""
        consumer = make([SH, str(script(tmp_path, "echo restarted\n"))])
        with capture_logs() as events:
            state = fire(consumer)
        assert state.phase == "switched"
        assert state.id == consumer.id
        finished = [e for e in events if e["event"] == "command.finished"]
        assert len(finished) == 1
        assert finished[0]["exit_code"] == 0
        assert finished[0]["command"] == consumer.id.removeprefix("command:")
        assert finished[0]["duration_s"] >= 0

    def test_non_zero_exit_fails_with_last_line(self, tmp_path: Path) -> None:
        """A non-zero exit is failed with the exit code and the last output line."""
        body = "echo starting\necho 'Job for agent.service failed' >&2\necho\nexit 3\n"
        state = fire(make([SH, str(script(tmp_path, body))]))
        assert state.phase == "failed"
        assert state.reason == "exit 3: Job for agent.service failed"

    def test_silent_failure_says_no_output(self, tmp_path: Path) -> None:
        """A non-zero exit without output says so."""
        state = fire(make([SH, str(script(tmp_path, "exit 1\n"))]))
        assert state.reason == "exit 1 (no output)"

    def test_killed_by_signal_names_it(self, tmp_path: Path) -> None:
        """A command killed by a signal is failed naming the signal."""
        state = fire(make([SH, str(script(tmp_path, "echo dying\nkill -KILL $$\n"))]))
        assert state.phase == "failed"
        assert state.reason == "killed by signal SIGKILL: dying"

    def test_missing_program_fails(self, tmp_path: Path) -> None:
        """A program that does not exist is failed, naming it."""
        state = fire(make([str(tmp_path / "no-such-program")]))
        assert state.phase == "failed"
        assert state.reason == f"command not found: {tmp_path / 'no-such-program'}"

    def test_program_not_on_path_fails(self) -> None:
        """A bare name that is not on the PATH is failed, naming it."""
        state = fire(make(["rotator-no-such-command"], environ={"PATH": "/usr/bin:/bin"}))
        assert state.reason == "command not found: rotator-no-such-command"

    def test_not_executable_fails(self, tmp_path: Path) -> None:
        """A file without execute permission is failed with permission denied."""
        path = script(tmp_path, "#!/bin/sh\nexit 0\n")
        path.chmod(0o644)
        state = fire(make([str(path)]))
        assert state.phase == "failed"
        assert state.reason == f"permission denied: cannot execute {path}"

    def test_timeout_kills_the_whole_process_group(self, tmp_path: Path) -> None:
        """A command past its timeout is failed, and it and its children are killed."""
        body = (
            'echo $$ > "$1/child.pid"\n'
            # The grandchild ignores SIGTERM: only the SIGKILL to the group ends it.
            "sh -c 'trap \"\" TERM; exec sleep 60' &\n"
            'echo $! > "$1/grandchild.pid"\n'
            "echo still working\n"
            "wait\n"
        )
        consumer = make([SH, str(script(tmp_path, body)), str(tmp_path)], timeout=0.5)
        with capture_logs() as events:
            state = fire(consumer)
        assert state.phase == "failed"
        assert state.reason == "timed out after 0.5s; last output: still working"
        assert [e["event"] for e in events if e["event"] == "command.timed_out"]
        assert wait_gone(read_pid(tmp_path / "child.pid"))
        assert wait_gone(read_pid(tmp_path / "grandchild.pid"))

    def test_background_process_after_exit_is_left_alone(self, tmp_path: Path) -> None:
        """A process the command starts in the background and leaves running is not killed."""
        body = 'sleep 60 &\necho $! > "$1/daemon.pid"\necho started\n'
        consumer = make([SH, str(script(tmp_path, body)), str(tmp_path)])
        try:
            with capture_logs() as events:
                state = fire(consumer)
            pid = read_pid(tmp_path / "daemon.pid")
            assert state.phase == "switched"
            assert not gone(pid)
            assert [e for e in events if e["event"] == "command.output_held"]
        finally:
            os.kill(read_pid(tmp_path / "daemon.pid"), signal.SIGKILL)


class TestStdinAndEnvironment:
    """What the command receives: standard input and environment."""

    def test_stdin_mode_delivers_the_value(self, tmp_path: Path) -> None:
        """With pass_key stdin the command reads the value and a newline on stdin."""
        body = 'cat > "$1/stdin.txt"\n'
        consumer = make([SH, str(script(tmp_path, body)), str(tmp_path)], pass_key="stdin")
        assert fire(consumer).phase == "switched"
        assert (tmp_path / "stdin.txt").read_text() == VALUE.reveal() + "\n"

    def test_stdin_mode_without_value_fails_without_running(self, tmp_path: Path) -> None:
        """With pass_key stdin a request without a value is failed and nothing runs."""
        marker = tmp_path / "ran"
        consumer = make([SH, str(script(tmp_path, f"touch {marker}\n"))], pass_key="stdin")
        state = fire(consumer, request(None))
        assert state.phase == "failed"
        assert "no value" in state.reason
        assert not marker.exists()

    def test_stdin_mode_tolerates_a_command_that_does_not_read(self, tmp_path: Path) -> None:
        """A command that exits without reading its stdin still counts by its exit code."""
        consumer = make([SH, str(script(tmp_path, "exit 0\n"))], pass_key="stdin")
        assert fire(consumer).phase == "switched"

    def test_none_mode_gives_empty_stdin_and_no_value_in_environment(self, tmp_path: Path) -> None:
        """By default stdin is empty and the environment holds the hints but never the value."""
        body = 'cat > "$1/stdin.txt"\nenv > "$1/env.txt"\n'
        env = {"LEAKY": VALUE.reveal(), "KEEP": "kept"}
        consumer = make([SH, str(script(tmp_path, body)), str(tmp_path)], env=env)
        with capture_logs() as events:
            assert fire(consumer).phase == "switched"
        assert (tmp_path / "stdin.txt").read_text() == ""
        env = (tmp_path / "env.txt").read_text()
        assert VALUE.reveal() not in env
        assert "LEAKY=" not in env
        assert "KEEP=kept" in env
        assert f"{MANAGED_KEY_ENV}=agent" in env
        assert f"{FINGERPRINT_ENV}={VALUE.fingerprint}" in env
        dropped = [e for e in events if e["event"] == "command.env_dropped"]
        assert dropped[0]["variables"] == ["LEAKY"]

    def test_credentials_of_the_rotator_never_reach_the_command(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A command printing ``env`` shows PATH, HOME, LANG, LC_ALL, its configured env and
        the hints: none of the rotator's credentials or other variables."""
        credentials = {
            "STS_SERVICE_TOKEN": "sts-service-token-of-the-rotator",
            "VAULT_TOKEN": "hvs.vault-token-of-the-rotator",
            "AWS_SECRET_ACCESS_KEY": "aws-secret-of-the-rotator",
            "ROTATOR_CONSUMER_OTHER": "inherited-before",
        }
        for name, value in credentials.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HOME", "/home/rotator")
        monkeypatch.setenv("LANG", "C.UTF-8")
        monkeypatch.setenv("LC_ALL", "C.UTF-8")
        consumer = CommandConsumer(
            command=["env"], timeout=10.0, env={"AGENT_SERVICE": "stackstate-agent"}
        )
        with capture_logs(processors=[]) as events:
            assert fire(consumer).phase == "switched"
        printed = next(e for e in events if e["event"] == "command.output")["output"]
        names = {line.split("=", 1)[0] for line in printed.splitlines() if "=" in line}
        assert names == {
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "AGENT_SERVICE",
            MANAGED_KEY_ENV,
            FINGERPRINT_ENV,
        }
        assert "AGENT_SERVICE=stackstate-agent" in printed
        for value in credentials.values():
            assert value not in printed

    def test_unset_locale_is_not_invented(self, tmp_path: Path) -> None:
        """Only variables set in the rotator's environment are passed on."""
        body = 'env > "$1/env.txt"\n'
        consumer = make([SH, str(script(tmp_path, body)), str(tmp_path)])
        assert fire(consumer).phase == "switched"
        names = {line.split("=", 1)[0] for line in (tmp_path / "env.txt").read_text().splitlines()}
        assert "LC_ALL" not in names and "HOME" not in names
        assert "PATH" in names

    def test_configured_env_overrides_an_inherited_variable(self, tmp_path: Path) -> None:
        """``env:`` wins over the inherited PATH/LANG, so a user can pin them."""
        body = 'echo "$LANG" > "$1/lang.txt"\n'
        consumer = make(
            [SH, str(script(tmp_path, body)), str(tmp_path)],
            env={"LANG": "de_DE.UTF-8"},
            environ={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
        )
        assert fire(consumer).phase == "switched"
        assert (tmp_path / "lang.txt").read_text() == "de_DE.UTF-8\n"


class TestOutputHygiene:
    """The value never reaches a reason or a log through the command's output."""

    BODY = 'read key\necho "connecting with $key"\necho "rejected key $key" >&2\nexit 4\n'

    @pytest.mark.usefixtures("only_value_registered")
    def test_value_in_output_is_scrubbed(self, tmp_path: Path) -> None:
        """Output echoing the value is masked in the reason and in the logs."""
        consumer = make([SH, str(script(tmp_path, self.BODY))], pass_key="stdin")
        with capture_logs() as events:
            state = fire(consumer)
        assert state.reason == f"exit 4: rejected key {MASK}"
        failed = [e for e in events if e["event"] == "command.failed"]
        assert failed[0]["exit_code"] == 4
        assert f"connecting with {MASK}" in failed[0]["output"]
        assert VALUE.reveal() not in logged_text(events)

    @pytest.mark.usefixtures("unregistered")
    def test_unregistered_value_is_still_scrubbed(self, tmp_path: Path) -> None:
        """The request's value is masked even when the redaction registry does not know it."""
        consumer = make([SH, str(script(tmp_path, self.BODY))], pass_key="stdin")
        with capture_logs() as events:
            state = fire(consumer)
        assert VALUE.reveal() not in state.reason
        assert VALUE.reveal() not in logged_text(events)

    def test_registered_secret_in_output_is_redacted(self, tmp_path: Path) -> None:
        """Another registered secret the command prints (an admin token) is masked too."""
        admin = Secret("admin-token-should-not-leak-42")
        body = f"echo 'token {admin.reveal()}'\nexit 2\n"
        with capture_logs() as events:
            state = fire(make([SH, str(script(tmp_path, body))]))
        assert state.reason == f"exit 2: token {MASK}"
        assert admin.reveal() not in logged_text(events)

    def test_printed_prefix_of_the_new_key_is_masked(self, tmp_path: Path) -> None:
        """A command printing the first 20 characters of the key logs a mask, not the prefix."""
        body = 'read key\nprefix=$(printf "%s" "$key" | cut -c1-20)\necho "using $prefix..."\n'
        consumer = make([SH, str(script(tmp_path, body))], pass_key="stdin")
        with capture_logs() as events:
            assert fire(consumer).phase == "switched"
        output = next(e for e in events if e["event"] == "command.output")["output"]
        assert output == f"using {MASK}...\n"
        assert VALUE.reveal()[:20] not in logged_text(events)

    def test_fragment_of_another_registered_secret_is_masked(self, tmp_path: Path) -> None:
        """Eight characters from the middle of any registered secret are masked in a reason."""
        admin = Secret("admin-token-fragment-0123456789")
        body = f"echo 'failed near {admin.reveal()[6:20]} here'\nexit 3\n"
        state = fire(make([SH, str(script(tmp_path, body))]))
        assert state.reason == f"exit 3: failed near {MASK} here"

    def test_output_is_kept_to_its_tail(self, tmp_path: Path) -> None:
        """Only the last bytes of a long output are kept; the last line is still quoted."""
        body = (
            "i=0\n"
            "while [ $i -lt 2000 ]; do echo line-$i-xxxxxxxxxxxxxxxx; i=$((i+1)); done\n"
            "exit 5\n"
        )
        with capture_logs() as events:
            state = fire(make([SH, str(script(tmp_path, body))]))
        assert state.reason == "exit 5: line-1999-xxxxxxxxxxxxxxxx"
        output = next(e for e in events if e["event"] == "command.failed")["output"]
        assert len(output) <= OUTPUT_TAIL_BYTES
        assert "line-0-" not in output

    def test_value_cut_at_the_start_of_the_tail_is_not_logged_in_part(self, tmp_path: Path) -> None:
        """When the kept output starts inside a value, that fragment is dropped too."""
        # 200 lines of value + newline (41 bytes each): the kept bytes start inside a value,
        # and masking shrinks the rest so much that the start would otherwise survive.
        body = (
            "read key\ni=0\n"
            'while [ $i -lt 200 ]; do printf "%s\\n" "$key"; i=$((i+1)); done\nexit 1\n'
        )
        consumer = make([SH, str(script(tmp_path, body))], pass_key="stdin")
        with capture_logs() as events:
            state = fire(consumer)
        assert state.reason == f"exit 1: {MASK}"
        text = logged_text(events)
        for start in range(1, len(VALUE.reveal()) - 8):
            assert VALUE.reveal()[start:] not in text
