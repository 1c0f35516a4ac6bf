"""The ``*_file`` twin of every secret field, read once while the configuration is validated.

A model lists its secret fields in a ``mode="before"`` validator calling
:func:`load_secret_twins`: ``token_file: /run/secrets/token`` becomes ``token: <the file's text>``
(surrounding whitespace stripped), relative paths resolved against the configuration file's
directory. An empty inline value (what ``${VAR:-}`` leaves) counts as not given, so an inline
secret can be optional next to its file twin. Messages name the file, never its content.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationInfo

from rotator.config.base import raise_problems
from rotator.config.types import resolve_path

#: Secret files are tiny; refusing big ones stops a typo (``/dev/zero``) from hanging the load.
MAX_SECRET_FILE_BYTES: Final = 64 * 1024


def _read_secret_file(path: Path) -> str:
    """Read a secret from a file, stripped; :class:`ValueError` with a message naming the path."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def load_secret_twins(data: Any, names: Iterable[str], info: ValidationInfo) -> Any:
    """Fill each secret field ``name`` from ``name_file`` when the file twin is given."""
    if not isinstance(data, dict):
        return data
    result = dict(data)
    problems: list[tuple[str, str]] = []
    for name in names:
        file_key = f"{name}_file"
        if result.get(name) == "":
            del result[name]  # `${VAR:-}` left nothing: the file twin (or the default) applies
        file_value = result.get(file_key)
        if file_value is None:
            continue
        if result.get(name) is not None:
            problems.append((file_key, f"give either {name} or {file_key}, not both"))
            continue
        if not isinstance(file_value, str | os.PathLike):
            continue  # the field's own type check reports it
        path = resolve_path(Path(file_value), info)
        try:
            result[name] = _read_secret_file(path)
        except ValueError as exc:
            problems.append((file_key, str(exc)))
    if problems:
        raise_problems(problems)
    return result
