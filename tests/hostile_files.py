"""Hostile files for the one-line-error and fuzz tests: broken result files, broken model files, runaway templates,
and a way to drop root privileges so that file permissions apply (CI runs as root)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .conftest import STORIES

NOBODY = 65534
_CAP_V3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
_FILE_PERMISSION_BYPASS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def _capabilities(effective: int | None = None) -> int:
    """This thread's effective capabilities (low word); with `effective`, set them first (Linux capset)."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(_CAP_V3, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    if effective is not None:
        data[0].effective = effective
        if libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset")
    return data[0].effective


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block without root's file-permission bypass when the tests run as root, so that a
    read-only folder is read-only.

    On Linux the thread keeps uid 0 and drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: root's own
    files stay readable through their owner bits, wherever the checkout sits (even under a 0700
    folder, which user nobody cannot enter). Elsewhere the block runs as nobody; import what it
    needs first, since the interpreter's own files may not be readable by that user."""
    if os.geteuid() != 0:
        yield
        return
    try:
        before = _capabilities()
        _capabilities(before & ~_FILE_PERMISSION_BYPASS)
    except (AttributeError, OSError):
        before = None
    if before is not None:
        try:
            yield
        finally:
            _capabilities(before)
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@contextlib.contextmanager
def open_folder() -> Iterator[Path]:
    """A temporary folder that an ordinary user can enter (pytest's tmp_path is root-only under root)."""
    folder = Path(tempfile.mkdtemp(prefix="evalkit-open-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail with EFBIG, as on a full disk (Python ignores SIGXFSZ)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


# -- result files ----------------------------------------------------------------------------------------
def edit_results(run_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = run_dir / "results.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, allow_nan=True))


def _rename_task(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for table in (data["tasks"], data["config"]["tasks"]):
            table[name] = table.pop(next(iter(table)))
    return edit


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        keys = path.split(".")
        node = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return edit


HOSTILE_RESULTS: dict[str, Callable[[dict[str, Any]], None] | bytes | str] = {
    "wrong type": _set("tasks.sst2.n", "twenty"),
    "NaN count": _set("tasks.sst2.n", float("nan")),
    "400-digit number": _set("tasks.sst2.metrics.accuracy.value", 10**400),
    "list for an object": _set("tasks.sst2.metrics", [1, 2]),
    "list for the file": "[]",
    "broken created": _set("created", "2026-13-45T99:99:99"),
    "bad UTF-8": b'{"run_id": "\xff\xfe", "tasks": {}}',
    "nested 100k deep": '{"run_id": "x", "tasks": {}, "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "900-character task name": _rename_task("t" * 900),
    "task name with a path": _rename_task("../../escape"),
    "ANSI run id": _set("run_id", "run\x1b[2J"),
}


def make_hostile_results(good: Path, dest: Path, name: str) -> Path:
    """A copy of run `good` at `dest` with its results.json broken in the way `name` says."""
    shutil.copytree(good, dest)
    hostile = HOSTILE_RESULTS[name]
    if isinstance(hostile, bytes):
        (dest / "results.json").write_bytes(hostile)
    elif isinstance(hostile, str):
        (dest / "results.json").write_text(hostile)
    else:
        edit_results(dest, hostile)
    return dest


# -- model files ---------------------------------------------------------------------------------------
class _Pickled:
    """An object whose unpickling would create `marker` (it must never happen)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def model_folder(dest: Path, weight_name: str, data: bytes) -> Path:
    """stories260K's config and tokenizer with `data` as its only weight file."""
    shutil.copytree(STORIES, dest)
    for weights in dest.glob("*.safetensors"):
        weights.unlink()
    (dest / weight_name).write_bytes(data)
    return dest


def evil_bin(marker: Path) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"model.norm.weight": _Pickled(marker)}, buffer)
    return buffer.getvalue()


def gguf_header(version: int = 3, tensors: int = 1, kvs: int = 1) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)
