"""The ``file`` target: a value in a local file, for STS Agents on hosts and mounted configs.

Formats:

- ``raw``: the file holds just the value (read with surrounding whitespace stripped);
- ``env``: one ``NAME=value`` line (``export NAME=value`` kept as such), other lines preserved;
- ``yaml``: a dotted field (``api_key``, ``agent.auth.key``) updated in place with ruamel.yaml
  round-tripping, so comments, key order and quoting elsewhere are preserved.

Every write goes to a temporary file in the same directory, is fsynced and renamed over the
original, then the directory is fsynced: a reader sees the old file or the new one, never half.
The new file gets mode 0600 (or the original's mode when that is stricter, or the configured
``mode``) and keeps the original's owner and group. A path that is a symlink is followed only
when it resolves inside the same directory.

Only regular files are read or replaced: a path (or sidecar) that is a FIFO, a directory, a
device or a socket is refused with :class:`~rotator.errors.TargetInvalid` without ever blocking
on it (it is opened non-blocking and checked with ``fstat`` before anything is read). File
targets built from one configuration share a :class:`FileTargetGroup`; a target refuses to read
or write when another target of the group reaches the same real file (through a symlinked
directory, say) and writes an overlapping field of it, since two targets writing one data key
would overwrite each other. The configuration check compares real paths too, but on the machine
where it ran; this check runs where the files are.

Metadata lives in a sidecar ``<path>.rotator.json``, keyed by field and then by fingerprint of
the value it describes (the current and the previous value). The sidecar is written *before*
the value: if the process dies between the two writes, the value still held is described by the
sidecar's previous entry, and the new key (described but never pushed) is an orphan the sweep
removes. Written the other way round, a crash would leave a managed key in the file that no
metadata describes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Final, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from rotator.errors import TargetError, TargetForbidden, TargetInvalid, TargetUnavailable
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata, TargetState

FileFormat = Literal["raw", "env", "yaml"]

#: Mode of files the rotator writes, unless the original is stricter.
DEFAULT_MODE = 0o600
SIDECAR_SUFFIX = ".rotator.json"
_RAW_FIELD = "_value"
_ENV_LINE = re.compile(
    r"^(?P<prefix>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<rest>.*)$"
)
_ENV_SAFE = re.compile(r"^[A-Za-z0-9._~+/=:@%-]*$")


class FileTargetGroup:
    """The file targets of one configuration, so that each can tell whether another one
    writes the same data key of the same real file."""

    def __init__(self) -> None:
        self._members: list[FileTarget] = []

    def add(self, target: FileTarget) -> None:
        """Make ``target`` a member."""
        self._members.append(target)

    def check(self, target: FileTarget, real: Path) -> None:
        """Raise TargetInvalid when another member writes an overlapping field of ``real``."""
        mine = os.path.realpath(real)
        for other in self._members:
            if other is target or os.path.realpath(other.path) != mine:
                continue
            if other.format == target.format and not _fields_overlap(other.field, target.field):
                continue
            raise TargetInvalid(
                f"{target.id}: {mine} is also the file of target {other.id}; two targets must "
                "not write the same data key of one file (a symlinked directory?)"
            )


class FileTarget:
    """A value in a file on this machine."""

    def __init__(
        self,
        path: Path,
        *,
        file_format: FileFormat = "raw",
        field: str | None = None,
        mode: int | None = None,
        group: FileTargetGroup | None = None,
    ) -> None:
        """``group`` holds the other file targets of the configuration (see the module
        docstring); this target joins it."""
        if file_format in ("env", "yaml") and not field:
            raise TargetInvalid(f"file target {path}: format {file_format} needs a field")
        self.path = Path(path)
        self.format: FileFormat = file_format
        self.field = field
        self.mode = mode
        self._group = group
        if group is not None:
            group.add(self)

    # -- Target protocol -----------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``file:/path[field]``."""
        suffix = f"[{self.field}]" if self.field else ""
        return f"file:{self.path}{suffix}"

    def describe(self) -> str:
        """One line for plans."""
        where = f" field {self.field}" if self.field else ""
        return f"file {self.path} ({self.format}{where})"

    def read(self) -> TargetState:
        """Read the value and the sidecar entry describing it."""
        real = self._resolve_alone()
        text = self._read_text(real)
        value = None if text is None else self._extract(text)
        metadata = None
        if value is not None:
            entries = self._read_sidecar(real).get(self._sidecar_field(), {})
            metadata = KeyMetadata.from_dict(entries.get(value.fingerprint))
        version = None
        if text is not None:
            version = str(real.stat().st_mtime_ns)
        return TargetState(value=value, metadata=metadata, version=version)

    def write(self, value: Secret, metadata: KeyMetadata) -> None:
        """Write the sidecar (current + previous entries), then the value, both atomically."""
        real = self._resolve_alone()
        original = self._read_text(real)
        previous_value = None if original is None else self._extract(original)
        sidecar = self._read_sidecar(real)
        entries: dict[str, Any] = sidecar.get(self._sidecar_field(), {})
        kept: dict[str, Any] = {}
        if previous_value is not None and previous_value.fingerprint in entries:
            kept[previous_value.fingerprint] = entries[previous_value.fingerprint]
        kept[metadata.fingerprint] = metadata.to_dict()
        sidecar[self._sidecar_field()] = kept
        self._write_sidecar(real, sidecar)
        self._atomic_write(real, self._render(original, value.reveal()))

    def write_metadata(self, metadata: KeyMetadata) -> None:
        """Replace the sidecar entry for the value currently held."""
        real = self._resolve_alone()
        sidecar = self._read_sidecar(real)
        entries: dict[str, Any] = sidecar.get(self._sidecar_field(), {})
        entries[metadata.fingerprint] = metadata.to_dict()
        sidecar[self._sidecar_field()] = entries
        self._write_sidecar(real, sidecar)

    # -- paths -----------------------------------------------------------------------------------

    def _resolve(self) -> Path:
        """The file to work on: the path itself, or a symlink's target inside its directory."""
        path = self.path
        if not path.is_absolute():
            raise TargetInvalid(f"{self.id}: path must be absolute")
        if path.is_symlink():
            real = path.resolve()
            if real.parent != path.parent.resolve():
                raise TargetInvalid(
                    f"{self.id}: refusing to follow a symlink out of {path.parent} (to {real})"
                )
            return real
        if not path.parent.is_dir():
            raise TargetInvalid(f"{self.id}: directory {path.parent} does not exist")
        return path

    def _resolve_alone(self) -> Path:
        """:meth:`_resolve`, then refuse a file another target of the group also writes."""
        real = self._resolve()
        if self._group is not None:
            self._group.check(self, real)
        return real

    def _sidecar_field(self) -> str:
        return self.field or _RAW_FIELD

    def _read_text(self, real: Path) -> str | None:
        try:
            return _read_regular(real, self.id)
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise TargetForbidden(f"{self.id}: cannot read: permission denied") from exc
        except UnicodeDecodeError as exc:
            raise TargetInvalid(f"{self.id}: not UTF-8 text") from exc
        except OSError as exc:
            raise TargetUnavailable(f"{self.id}: cannot read: {exc.strerror}") from exc

    # -- formats ---------------------------------------------------------------------------------

    def _extract(self, text: str) -> Secret | None:
        if self.format == "raw":
            stripped = text.strip()
            return Secret(stripped) if stripped else None
        if self.format == "env":
            for line in text.splitlines():
                match = _ENV_LINE.match(line)
                if match and match["name"] == self.field:
                    raw = _unquote(match["rest"].strip())
                    return Secret(raw) if raw else None
            return None
        data = self._load_yaml(text)
        node: Any = data
        for part in self._yaml_path():
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        if node is None or node == "":
            return None
        if not isinstance(node, str):
            raise TargetInvalid(f"{self.id}: field {self.field} is not a string")
        return Secret(node)

    def _render(self, original: str | None, value: str) -> str:
        if self.format == "raw":
            return value
        if self.format == "env":
            return _render_env(original or "", str(self.field), value)
        data = self._load_yaml(original or "")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise TargetInvalid(f"{self.id}: top level of the YAML file is not a mapping")
        node: Any = data
        parts = self._yaml_path()
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                node[part] = {}
                child = node[part]
            if not isinstance(child, dict):
                raise TargetInvalid(f"{self.id}: {part} in {self.field} is not a mapping")
            node = child
        node[parts[-1]] = value
        out = io.StringIO()
        _yaml().dump(data, out)
        return out.getvalue()

    def _yaml_path(self) -> list[str]:
        return str(self.field).split(".")

    def _load_yaml(self, text: str) -> Any:
        try:
            return _yaml().load(text)
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise TargetInvalid(f"{self.id}: invalid YAML{where}") from None

    # -- atomic writes ---------------------------------------------------------------------------

    def _target_mode(self, real: Path) -> int:
        if self.mode is not None:
            return self.mode
        try:
            current = stat.S_IMODE(real.stat().st_mode)
        except FileNotFoundError:
            return DEFAULT_MODE
        # Never looser than 0600; keep a stricter original (e.g. 0400) as it is.
        return (current & DEFAULT_MODE) or DEFAULT_MODE

    def _atomic_write(self, real: Path, content: str) -> None:
        directory = real.parent
        mode = self._target_mode(real)
        try:
            owner = real.stat()
        except FileNotFoundError:
            owner = None
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=directory)
        except PermissionError as exc:
            raise TargetForbidden(f"{self.id}: cannot write in {directory}") from exc
        except OSError as exc:
            raise _os_error(f"{self.id}: cannot write", exc) from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), mode)
                if owner is not None:
                    _chown(handle.fileno(), owner.st_uid, owner.st_gid)
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(real)
            _fsync_dir(directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _os_error(self.id, exc) from exc

    def _sidecar_path(self, real: Path) -> Path:
        return real.with_name(real.name + SIDECAR_SUFFIX)

    def _read_sidecar(self, real: Path) -> dict[str, Any]:
        path = self._sidecar_path(real)
        try:
            data = json.loads(_read_regular(path, f"{self.id} (metadata {path.name})"))
        except FileNotFoundError:
            return {}
        except ValueError:
            # A damaged sidecar only costs us metadata: the value is then treated as adopted.
            return {}
        except OSError as exc:
            raise _os_error(f"{self.id} (metadata {path.name})", exc) from exc
        return data if isinstance(data, dict) else {}

    def _write_sidecar(self, real: Path, data: dict[str, Any]) -> None:
        sidecar = FileTarget(self._sidecar_path(real), file_format="raw", mode=DEFAULT_MODE)
        sidecar._atomic_write(sidecar.path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fields_overlap(first: str | None, second: str | None) -> bool:
    """Two fields of one file collide: equal, whole-file (None), or nested YAML paths."""
    if not first or not second or first == second:
        return True
    return first.startswith(second + ".") or second.startswith(first + ".")


#: What ``stat`` calls each kind of file that is not a regular one, for the refusal message.
_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read_regular(path: Path, where: str) -> str:
    """The UTF-8 text of ``path`` if it is a regular file; TargetInvalid for anything else.

    Opened non-blocking, so a FIFO never hangs the run (nobody may ever write to it), and
    checked with fstat on the open descriptor, so what is read is what was checked.
    FileNotFoundError, PermissionError, other OSErrors and UnicodeDecodeError propagate.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise TargetInvalid(
            f"{where}: {path} is {kind}, not a regular file; refusing to read or replace it"
        )
    with os.fdopen(fd, "rb") as handle:
        return handle.read().decode("utf-8")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        inner = raw[1:-1]
        return inner.replace('\\"', '"').replace("\\\\", "\\") if raw[0] == '"' else inner
    # An unquoted value ends at an inline comment.
    return raw.split(" #", 1)[0].strip()


def _render_env(original: str, name: str, value: str) -> str:
    rendered = (
        value
        if _ENV_SAFE.match(value)
        else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )
    lines = original.splitlines()
    replaced = False
    for index, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if match and match["name"] == name:
            lines[index] = f"{match['prefix']}{name}={rendered}"
            replaced = True
    if not replaced:
        lines.append(f"{name}={rendered}")
    return "\n".join(lines) + "\n"


def _chown(fd: int, uid: int, gid: int) -> None:
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        # Not root: the new file is ours; that is only a change when the original was not.
        if os.geteuid() != uid:
            raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: errno values a retry cannot fix: the location itself is wrong (a read-only filesystem, a
#: path through a non-directory, a name too long); they are configuration problems.
_LOCATION_ERRNOS = frozenset(
    {errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.ENOENT}
)


def _os_error(where: str, exc: OSError) -> TargetError:
    if isinstance(exc, PermissionError):
        return TargetForbidden(f"{where}: permission denied")
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _LOCATION_ERRNOS:
        return TargetInvalid(f"{where}: {reason}")
    return TargetUnavailable(f"{where}: {reason}")
