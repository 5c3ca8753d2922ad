"""The files optgen reads and writes: spec names vs paths, atomic writes, the folders it writes to.

One rule for every place a spec is named (``optgen.optimizer``, ``optgen.torch.optimizer``,
``optgen.schedule``, ``inner=``, ``optgen build``, ``optgen verify``): a spec argument is a
**path** when it is an ``os.PathLike`` (``pathlib.Path``), ends in ``.opt``, or contains a path
separator; anything else is a **catalogue name**. A file called ``adam`` in the working folder
therefore never shadows the catalogue's ``adam``; write ``./adam`` to mean the file.

Every file optgen writes goes through :func:`write_atomic`: a temporary file in the target's
folder, flushed and fsync'ed, then renamed over the target, so a crash or a full disk leaves
the previous file intact. A folder is probed with :func:`writable_folder` (a real file created
and removed) before any work that would write into it, and the user cache is
:func:`private_folder`: created 0700, refused when another user owns it or others can write to
it (its modules are imported, so whoever can write there could run code as you).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

SPEC_SUFFIX = ".opt"


class FolderError(OSError):
    """A folder optgen must write to cannot be used: not writable, or (the cache) not private."""


# --- names and paths ------------------------------------------------------------------------

def is_spec_path(arg: str | os.PathLike) -> bool:
    """Whether a spec argument names a file (see the module docstring) rather than a catalogue
    spec: an ``os.PathLike``, or a string ending in ``.opt`` or holding a path separator."""
    if not isinstance(arg, str):
        return isinstance(arg, os.PathLike)
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return arg.endswith(SPEC_SUFFIX) or any(s in arg for s in separators)


def is_spec_name(text: str) -> bool:
    """Whether ``text`` can be a spec's name: what the grammar's NAME allows, which is also
    what a module file in an output folder may be called (``__init__`` and other names with a
    leading underscore are not: they would be ``generated/``'s own files)."""
    return text.isidentifier() and text.isascii() and not text.startswith("_")


def catalogue_dir() -> Path:
    """The folder of the shipped specs (``specs/`` in a checkout)."""
    from . import specs
    return Path(specs.__file__).parent


def find_spec(name: str, near: Path | None = None) -> Path:
    """The file of spec ``name``: beside ``near`` first, then in the catalogue.

    Raises ``FileNotFoundError`` when there is none, or when ``name`` is not a spec name (so no
    name can reach outside those folders)."""
    if not is_spec_name(name):
        raise FileNotFoundError(name)
    for folder in ([Path(near).parent] if near is not None else []) + [catalogue_dir()]:
        candidate = folder / f"{name}{SPEC_SUFFIX}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(name)


def in_catalogue(path: Path) -> bool:
    """Whether ``path`` is one of the catalogue's own spec files."""
    try:
        return Path(path).resolve().parent == catalogue_dir().resolve()
    except OSError:
        return False


# --- writing --------------------------------------------------------------------------------

def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` all at once or not at all.

    The bytes go to a temporary file beside ``path`` (a dot-name ending ``.tmp``, which no
    folder listing of modules or specs picks up), are flushed and fsync'ed, and the file is
    renamed over ``path`` (``os.replace``, atomic on POSIX; a symlink at ``path`` is replaced,
    not followed). On any failure the temporary file is removed and ``path`` is as it was. The
    new file gets the usual permissions (0666 less the umask)."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    _fsync_folder(path.parent)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (threads)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a folder that cannot be opened is left to the OS."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def writable_folder(folder: str | os.PathLike, what: str = "folder", mode: int = 0o777) -> Path:
    """Create ``folder`` if needed and prove it writable by creating and removing a file in it.

    Raises :class:`FolderError` naming ``what`` (e.g. "output folder") and the reason. This is a
    real probe, not ``os.access``: a read-only mount, a full quota or a path under a regular
    file fail here, before the work that would write there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderError(f"the {what} {str(folder)!r} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=mode)
        with tempfile.TemporaryFile(dir=folder, prefix=".optgen-probe-"):
            pass
    except OSError as error:
        raise FolderError(f"cannot write to the {what} {str(folder)!r}: "
                          f"{error.strerror or error}") from None
    return folder


def private_folder(folder: str | os.PathLike, what: str = "cache folder", hint: str = "") -> Path:
    """``folder``, created 0700 if missing, after checking that only the current user can
    write to it (pip's rule for its cache). Raises :class:`FolderError` otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError as error:
        raise FolderError(f"cannot create the {what} {str(folder)!r}: "
                          f"{error.strerror or error}{hint}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise FolderError(f"the {what} {str(folder)!r} is not a folder{hint}")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise FolderError(f"refusing the {what} {str(folder)!r}: it is owned by uid "
                          f"{info.st_uid}, not by you (uid {os.getuid()}){hint}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise FolderError(f"refusing the {what} {str(folder)!r}: others can write to it (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}); 'chmod go-w' it{hint}")
    return folder
