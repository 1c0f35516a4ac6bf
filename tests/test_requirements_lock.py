"""requirements.lock pins the image's runtime dependencies with hashes (issue 13, item 9)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
FIX = "run `make lock` (pip-compile --generate-hashes) and commit requirements.lock"


def locked() -> dict[str, tuple[Version, list[str]]]:
    """Every entry of the lock file: canonical name -> (version, its sha256 hashes)."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text(encoding="utf-8"))
    entries: dict[str, tuple[Version, list[str]]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split(" --")
        name, _, version = requirement.strip().partition("==")
        assert version, f"requirements.lock: {line!r} is not pinned with ==; {FIX}"
        hashes = [o.strip().removeprefix("hash=sha256:") for o in options if o.startswith("hash=")]
        entries[canonicalize_name(name)] = (Version(version), hashes)
    return entries


def test_every_entry_is_pinned_and_hashed() -> None:
    """Each line pins one version and carries at least one sha256 hash (pip --require-hashes)."""
    entries = locked()
    assert entries, "requirements.lock is empty"
    for name, (_version, hashes) in entries.items():
        assert hashes, f"requirements.lock: {name} has no --hash; {FIX}"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name


def test_lock_covers_every_runtime_dependency() -> None:
    """Every dependency of pyproject.toml is locked at a version its specifier allows."""
    entries = locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{name} (pyproject.toml) is not in requirements.lock; {FIX}"
        version = entries[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement.specifier}; {FIX}"
        )


def test_lock_holds_no_test_only_package() -> None:
    """The test extra stays out of the image: none of its packages is locked."""
    entries = locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for spec in project["optional-dependencies"]["test"]:
        assert canonicalize_name(Requirement(spec).name) not in entries, spec


def test_dockerfile_installs_the_lock_with_hashes() -> None:
    """The image installs the lock with --require-hashes, then our wheel with --no-deps."""
    dockerfile = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert "COPY requirements.lock" in dockerfile
    assert re.search(r"pip install [^&]*--require-hashes [^&]*-r \S*requirements\.lock", dockerfile)
    assert re.search(r"pip install [^&]*--no-deps [^&]*/wheels/\*\.whl", dockerfile)
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text(encoding="utf-8")
