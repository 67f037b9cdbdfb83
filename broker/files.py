"""One writer for files that must never be lost or half-written: keys, seeds, anchors, trust lists.

:func:`write_private` (mode 0600) and :func:`write_file` (any mode, e.g. a public anchor's 0644)
both write the same way:

1. a temporary file with a unique name in the target's own directory (so the rename below
   stays on one file system), created exclusively with the final mode set before any data
   (``fchmod``, so neither the umask nor a stale file decides who can read a key);
2. every byte written, then ``fsync`` of the file;
3. an atomic rename over the target (``os.replace``), or with ``keep_existing`` a link that
   fails if the target exists, so a key another process wrote meanwhile is kept, never
   replaced;
4. ``fsync`` of the directory, so that the rename itself survives a power cut.

A crash or an error at any step leaves the old file as it was and no temporary file behind.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

#: Mode of every private key and seed file.
PRIVATE = 0o600


def write_private(path: Path, data: bytes, *, keep_existing: bool = False) -> bool:
    """Write ``data`` to ``path`` with mode 0600, whole or not at all; see :func:`write_file`."""
    return write_file(path, data, mode=PRIVATE, keep_existing=keep_existing)


def write_file(path: Path, data: bytes, *, mode: int, keep_existing: bool = False) -> bool:
    """Write ``data`` to ``path`` with ``mode``: temp file, fsync, atomic rename, fsync of the directory.

    ``keep_existing``: never replace a file that is already there (a key once made is kept);
    returns ``False`` then, and ``True`` whenever ``data`` is now the file.  Raises
    :class:`OSError` as the file system does; the old file is intact then.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if keep_existing:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)
    return True


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the data itself is synced
        pass
    finally:
        os.close(fd)
