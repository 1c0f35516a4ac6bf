"""Doctor checks of what the key writes and who reads it: files and commands on this host, the
owners of its Secrets, and the workloads that read it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rotator import config as cfg
from rotator.doctor.base import CheckResult, DoctorEnv


def file_writable(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Each file target can be written atomically: its directory is writable, the file readable."""
    del env
    rows = []
    for target in key.effective_targets:
        if isinstance(target, cfg.FileTarget):
            rows.append(_file_row(target.path))
    return rows


def _file_row(path: Path) -> CheckResult:
    name, subject = "file-writable", str(path)
    directory = path.parent
    fix = (
        f"run the rotator as a user that may write {directory} (writes are atomic: a "
        "temporary file is created beside the target)"
    )
    if not directory.is_dir():
        return CheckResult(
            name, subject, False, f"directory {directory} does not exist", f"create {directory}"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        return CheckResult(name, subject, False, f"directory {directory} is not writable", fix)
    if path.exists() and not os.access(path, os.R_OK):
        return CheckResult(name, subject, False, "the file is not readable", fix)
    state = "exists" if path.exists() else "does not exist yet (it will be created)"
    return CheckResult(name, subject, True, f"directory writable; the file {state}")


def command_available(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Each command consumer's program can be found (only the program is shown: arguments
    may hold anything)."""
    del env
    rows = []
    for consumer in key.effective_consumers:
        if isinstance(consumer, cfg.CommandConsumer):
            program = consumer.command[0]
            found = shutil.which(program)
            subject = f"command {program}"
            if found is None:
                rows.append(
                    CheckResult(
                        "command-available",
                        subject,
                        False,
                        f"{program} is not found (PATH of this process)",
                        "install it, or give its absolute path in the command consumer",
                    )
                )
            else:
                rows.append(CheckResult("command-available", subject, True, f"found: {found}"))
    return rows


def secret_owner(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Who owns each Secret the key writes: Helm, Argo CD, Flux or a controller would write
    their own value back, so the rotator refuses such a target (``allow_foreign_owner``)."""
    from rotator.wiring import build_target  # noqa: PLC0415 - the one place adapters are built

    labels = env.config.kubernetes.foreign_owner_labels
    rows = []
    hint = key.helm_hint
    for spec in key.effective_targets:
        if not isinstance(spec, cfg.KubernetesSecretTarget):
            continue
        target = build_target(spec, env.kube, None, labels)
        subject = f"Secret {spec.namespace}/{spec.name} ({env.context_label(spec.context)})"
        state = target.read()
        if state.version is None:
            detail = "does not exist yet: the rotator creates it, labelled as its own"
            rows.append(CheckResult("secret-owner", subject, True, detail, hint))
        elif state.owner is None:
            rows.append(CheckResult("secret-owner", subject, True, "no other owner", None))
        elif state.owner_allowed:
            rows.append(
                CheckResult(
                    "secret-owner",
                    subject,
                    True,
                    f"owned by {state.owner}; written anyway (allow_foreign_owner: true)",
                    "make sure that owner renders the rotator's value, or its next sync writes "
                    "the old key back",
                )
            )
        else:
            fix = hint or (
                "let the rotator write a Secret of its own and point the chart at it "
                "(suse-observability-agent: global.apiKey.fromSecret)"
            )
            rows.append(
                CheckResult(
                    "secret-owner",
                    subject,
                    False,
                    f"owned by {state.owner}: its next sync writes its own value back",
                    f"{fix}; or set allow_foreign_owner: true if that owner renders our value",
                )
            )
    return rows


def consumers(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Which workloads read the key (discovered ones included), and what would stop them from
    switching: no reader, readers on another Secret, paused or unrollable workloads."""
    from rotator.wiring import build_consumers  # noqa: PLC0415 - the one place adapters are built

    rows = []
    for spec in key.effective_consumers:
        for consumer in build_consumers(spec, env.kube, key, env.config.kubernetes.context):
            resolution = consumer.resolve()
            rows += [
                CheckResult(
                    "consumers",
                    reader.id,
                    True,
                    f"reads the key: {reader.how}",
                    None if reader.restarted else "not restarted by the rotator (Job/CronJob)",
                )
                for reader in resolution.readers
            ]
            problems = [*resolution.blocking, *resolution.before_create]
            rows += [
                CheckResult("consumers", consumer.id, False, problem, _consumer_fix(problem))
                for problem in problems
            ]
            rows += [
                CheckResult("consumers", consumer.id, True, warning, "grant list on batch/v1")
                for warning in resolution.warnings
            ]
            if not resolution.readers and not problems:
                rows.append(CheckResult("consumers", consumer.id, True, consumer.describe()))
    return rows


def _consumer_fix(problem: str) -> str:
    if "paused" in problem:
        return "kubectl rollout resume it, or the rotation waits"
    if "Point the chart at it" in problem:
        return problem[problem.index("Point the chart at it") :]
    return "fix the workload or the consumer's configuration (see the detail)"
