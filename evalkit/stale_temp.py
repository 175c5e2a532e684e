"""Temporary files and folders left behind by a killed write, removed on the next start.

Every temporary name evalkit makes carries `evalkit-tmp-<host>-<pid>-`: result files are written as
`.results.json.evalkit-tmp-<host>-<pid>-<random>.tmp` and renamed into place, a converted GGUF model
is saved into `.evalkit-tmp-<host>-<pid>-<random>/` and renamed. When `evalkit run` starts, it
removes those of this machine whose process is gone (a live writer's are left alone), and any older
than a day (a writer on another machine sharing the disk is never judged by a local pid). Names from before this scheme (the `legacy`
patterns: `.tmp-*` conversion folders, `.results.json.*.tmp` in run folders) are removed once they
are a day old, and only in the folders evalkit owns (a run folder holds results.json).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

MARK = "evalkit-tmp-"
MAX_AGE_SECONDS = 24 * 3600
_OWNER = re.compile(re.escape(MARK) + r"(.+)-(\d+)-[^-]*$")
RUN_LEGACY = (".results.json.*.tmp", ".*.samples.jsonl.*.tmp")
GGUF_LEGACY = (".tmp-*",)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:32] or "host"


def temp_prefix(base: str = ".", pid: int | None = None) -> str:
    """The prefix for a temporary name made by this process (pass it to tempfile.mkstemp/mkdtemp)."""
    return f"{base}{MARK}{_host()}-{os.getpid() if pid is None else pid}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _stale(path: Path, now: float) -> bool:
    try:
        age = now - path.lstat().st_mtime
    except OSError:
        return False
    match = _OWNER.search(path.name)
    if match is None or match.group(1) != _host():
        return age > MAX_AGE_SECONDS
    return age > MAX_AGE_SECONDS or not _alive(int(match.group(2)))


def remove_stale_temp(folder: str | os.PathLike, legacy: tuple[str, ...] = (), runs: bool = False) -> list[Path]:
    """Remove stale temporary files and folders in `folder` (with `runs`: in its run folders too); return them."""
    folder = Path(folder)
    try:
        if not folder.is_dir():
            return []
        levels = [folder] + ([p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()] if runs else [])
    except OSError:  # a folder this user may not read: nothing to clean there
        return []
    now = time.time()
    removed = []
    for level in levels:
        try:
            owned = (level / "results.json").is_file() if runs else True  # legacy names only where evalkit writes
            patterns = (f".*{MARK}*", *(legacy if owned else ()))
            candidates = {p for pattern in patterns for p in level.glob(pattern)}
        except OSError:
            continue
        for path in sorted(candidates):
            if not _stale(path, now):
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
            except OSError:  # read-only, or another process removed it first
                pass
    return removed


def remove_leftovers(output: str | os.PathLike) -> list[Path]:
    """What killed writes left in the run's output folder and in the converted-GGUF cache."""
    from .cachedir import cache_root

    return remove_stale_temp(output, RUN_LEGACY, runs=True) + remove_stale_temp(cache_root() / "gguf", GGUF_LEGACY)
