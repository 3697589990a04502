"""Writing files so that nothing of the user's is half-written or overwritten.

Everything is written under a hidden temporary name beside its target and
renamed into place when complete. Temporary names are made here rather than
by `tempfile`, whose files and folders are private (0600/0700): the results
are the user's, with the user's umask.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def temp_sibling(path: Path) -> Path:
    """A fresh hidden name in the same folder (so the final rename is atomic)."""
    path = Path(path)
    return path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}"


def publish(tmp: Path, path: Path, overwrite: bool = False) -> None:
    """Move the finished `tmp` to `path`; without `overwrite`, fail if `path` appeared meanwhile.

    Raises FileExistsError (and removes `tmp`) when `path` exists and may not be replaced.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        if Path(tmp).is_dir():
            if Path(path).exists():
                raise FileExistsError(path)
            os.rename(tmp, path)  # a race here is left to the OS: rename onto a non-empty folder fails
        else:
            os.link(tmp, path)  # link fails if the name is taken: no window for a clobber
            os.unlink(tmp)
    except FileExistsError:
        remove(tmp)
        raise


def remove(path: Path) -> None:
    import shutil
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def write_bytes(path: Path, data: bytes, overwrite: bool = False) -> None:
    tmp = temp_sibling(path)
    try:
        tmp.write_bytes(data)
        publish(tmp, path, overwrite)
    except BaseException:
        remove(tmp)
        raise


def write_text(path: Path, text: str, overwrite: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), overwrite)
