"""Run a command with a file fault made real, inside ``unshare -rm`` (user + mount namespace).

Root ignores permission bits and CI runs as root, so the file faults are made with the kernel
rather than with chmod alone::

    unshare -rm -- python -m tests.faults.nsrun MODE DIR -- COMMAND...

- ``eacces``: COMMAND runs without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER
  (dropped from the bounding set with ``setpriv``), so the permission bits the test set on DIR
  (0555) apply to it: creating a file there fails with EACCES.
- ``rofs``: DIR is bind-mounted onto itself read-only: writes fail with EROFS.
- ``enospc``: DIR is covered by a small tmpfs holding a copy of its files and filled up, so the
  next write fails with ENOSPC. When COMMAND ends, the tmpfs content (what COMMAND left there)
  is copied back into the real DIR, reached through a bind mount made before covering it, so
  the test sees the directory exactly as a full disk would have left it.

The mounts live in the private mount namespace only: the real directory is never remounted for
anyone else, and everything is undone when the namespace's last process exits. The exit code is
COMMAND's; COMMAND's standard output and error pass through.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

#: The tmpfs of ``enospc``: room for the two small files and little else.
TMPFS_SIZE: Final = "64k"
#: Capabilities that let root ignore permission bits.
DAC_CAPS: Final = "-dac_override,-dac_read_search,-fowner"
#: The file that fills the tmpfs.
FILLER: Final = ".filler"


def mount(*args: str) -> None:
    """``mount ARGS`` (raises when it fails)."""
    subprocess.run(["mount", *args], check=True)


def fill(directory: Path) -> None:
    """Write zeros into ``directory``/FILLER until the filesystem is full."""
    chunk = b"\0" * 4096
    with (directory / FILLER).open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]


def copy_back(source: Path, target: Path) -> None:
    """Make ``target`` hold exactly the files of ``source`` (flat directories)."""
    names = {p.name for p in source.iterdir() if p.name != FILLER}
    for path in target.iterdir():
        if path.name not in names:
            path.unlink()
    for name in names:
        shutil.copy2(source / name, target / name)


def main(argv: list[str]) -> int:
    """``MODE DIR -- COMMAND...``; returns COMMAND's exit code."""
    if len(argv) < 4 or argv[2] != "--":
        print("usage: nsrun eacces|rofs|enospc DIR -- COMMAND...", file=sys.stderr)
        return 2
    mode, directory, command = argv[0], Path(argv[1]), argv[3:]
    if mode == "eacces":
        return subprocess.run(
            ["setpriv", f"--bounding-set={DAC_CAPS}", "--", *command], check=False
        ).returncode
    if mode == "rofs":
        mount("--bind", str(directory), str(directory))
        mount("-o", "remount,ro,bind", str(directory))
        return subprocess.run(command, check=False).returncode
    if mode == "enospc":
        outside = directory.with_name(directory.name + ".outside")
        outside.mkdir(exist_ok=True)
        mount("--bind", str(directory), str(outside))
        mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(directory))
        for path in outside.iterdir():
            shutil.copy2(path, directory / path.name)
        fill(directory)
        try:
            return subprocess.run(command, check=False).returncode
        finally:
            (directory / FILLER).unlink()
            copy_back(directory, outside)
    print(f"nsrun: unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
