"""Finding generated modules: the catalogue's in ``optgen.generated``, or a spec file built on use.

``load("adam")`` is a catalogue name and ``load("my.opt")``, ``load("./adam")`` or
``load(Path(...))`` a spec file: a string is a path only when it ends in ``.opt`` or holds a path
separator (:func:`optgen.files.is_spec_path`), so a file called ``adam`` in the working folder
never shadows the catalogue's ``adam``.

A spec given by path is compiled once into the user cache (``$OPTGEN_CACHE_DIR``, default
``~/.cache/optgen``; created 0700, refused when it is not private to the user). The cache
keeps the module under ``modules/`` (named by its source's sha256) and, under ``index/``, an
entry keyed by the sha256 of the spec's bytes, its absolute path, the optgen version and the
compiler's own files, which records the module and the ``extends`` base it was built from
(path and sha256). A second process finds the entry, checks the base, and imports the module
without importing the compiler; Numba's ``cache=True`` keeps the machine code beside it, so
nothing is re-jitted either.

Damaged caches are rebuilt, not fatal: a truncated or corrupt ``.pyc`` is recompiled from the
module's source, a Numba index or data file that cannot be read is discarded and the function
compiled and cached afresh (with a warning), and a cached module whose bytes no longer match
its recorded sha256 is rebuilt from the spec.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

from .. import __version__, generated
from ..files import (SPEC_SUFFIX, find_spec, is_spec_path, private_folder, writable_folder,
                     write_atomic)

__all__ = ["available", "cache_dir", "load", "load_source", "private_cache_dir"]

_CACHE_HINT = "; set OPTGEN_CACHE_DIR to a folder of your own"


def available(kind: str | None = None) -> list[str]:
    """Names in the catalogue (the modules in ``optgen.generated``); ``kind`` "optimizer" or
    "schedule" keeps one kind (read from the module's header line, without importing it)."""
    folder = Path(generated.__file__).parent
    names = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    if kind is None:
        return names
    return [name for name in names if _kind(folder / f"{name}.py") == kind]


def _kind(path: Path) -> str:
    with path.open() as f:
        for line in f:
            if line.startswith("KIND = "):
                return ast.literal_eval(line.split("=", 1)[1].strip())
    return "optimizer"


def cache_dir() -> Path:
    """The user cache folder, ``$OPTGEN_CACHE_DIR`` or ``~/.cache/optgen`` (not yet checked)."""
    return Path(os.environ.get("OPTGEN_CACHE_DIR") or Path.home() / ".cache" / "optgen")


def private_cache_dir(writable: bool = False) -> Path:
    """The cache folder after the checks: private to the user (created 0700), and with
    ``writable`` proved writable by a probe. Raises :class:`optgen.files.FolderError`."""
    root = private_folder(cache_dir(), "optgen cache folder", _CACHE_HINT)
    if writable:
        for sub in ("modules", "index"):
            writable_folder(root / sub, "optgen cache folder", mode=0o700)
    return root


def load(name_or_path: str | os.PathLike) -> ModuleType:
    """The generated module for a catalogue name (``"adam"``) or a spec file path (an
    ``os.PathLike``, or a string ending in ``.opt`` or containing a path separator)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a catalogue name or a spec file path, "
                        f"got {type(name_or_path).__name__}")
    if is_spec_path(name_or_path):
        return _load_path(Path(name_or_path))
    names = available()
    if name_or_path not in names:
        hint = (f"; to use the file {name_or_path!r}, pass './{name_or_path}'"
                if Path(name_or_path).is_file() else
                f" (or pass the path of a {SPEC_SUFFIX} spec file)")
        raise ValueError(f"unknown optimizer {name_or_path!r}; the catalogue has: "
                         f"{', '.join(names)}{hint}")
    fullname = f"{generated.__name__}.{name_or_path}"
    module = sys.modules.get(fullname)
    if module is None:
        module = _import_file(fullname, Path(generated.__file__).parent / f"{name_or_path}.py")
        setattr(generated, name_or_path, module)
    return module


def _load_path(path: Path) -> ModuleType:
    if not path.is_file():
        raise ValueError(f"spec file {str(path)!r} does not exist")
    root = private_cache_dir()
    module = _load_indexed(root, path)
    if module is not None:
        return module
    private_cache_dir(writable=True)  # before the compiler's work, not after it
    from ..compiler.pipeline import compile_file  # the compiler is needed only here

    compiled = compile_file(path)
    module = load_source(compiled.name, compiled.source)
    bases = [{"name": b.path.stem, "path": str(b.path.resolve()), "sha256": b.sha256}
             for b in ([compiled.base] if compiled.base else [])]
    entry = {"module": module.__name__, "source_sha256": _sha256(compiled.source.encode()),
             "bases": bases}
    write_atomic(_index_path(root, path, compiled.file.sha256), json.dumps(entry, indent=1))
    return module


def _load_indexed(root: Path, path: Path) -> ModuleType | None:
    """The cached module for the spec at ``path`` if the index has one that is still right."""
    data = path.read_bytes()
    try:
        entry = json.loads(_index_path(root, path, _sha256(data)).read_text())
        module_name = entry["module"]
        for base in entry["bases"]:
            found = find_spec(base["name"], near=path)
            if str(found.resolve()) != base["path"] or \
                    _sha256(found.read_bytes()) != base["sha256"]:
                return None
        if module_name in sys.modules:
            return sys.modules[module_name]
        target = root / "modules" / f"{module_name}.py"
        if _sha256(target.read_bytes()) != entry["source_sha256"]:
            return None  # damaged: rebuilt from the spec
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no entry, or one that cannot be read: compile
    return _import_file(module_name, target)


def _index_path(root: Path, path: Path, spec_sha256: str) -> Path:
    key = json.dumps([__version__, _compiler_fingerprint(), str(path.resolve()), spec_sha256])
    return root / "index" / f"{_sha256(key.encode())[:32]}.json"


_fingerprint: str | None = None


def _compiler_fingerprint() -> str:
    """A sha256 of the compiler's sources, grammar and templates (read from its folder without
    importing it), and of where and when SymPy, Lark and Jinja were installed (their
    ``__init__.py``'s path, size and mtime, which an upgrade changes): either changed means a
    cache miss."""
    global _fingerprint
    if _fingerprint is None:
        spec = importlib.util.find_spec(f"{__package__.rpartition('.')[0]}.compiler")
        folder = Path(next(iter(spec.submodule_search_locations)))
        digest = hashlib.sha256()
        for file in sorted(p for p in folder.rglob("*") if p.is_file()
                           and p.suffix in (".py", ".lark", ".j2")):
            digest.update(f"{file.relative_to(folder).as_posix()}\0".encode())
            digest.update(_sha256(file.read_bytes()).encode())
        for package in ("sympy", "lark", "jinja2"):
            origin = getattr(importlib.util.find_spec(package), "origin", None) or ""
            with contextlib.suppress(OSError):
                info = os.stat(origin)
                origin += f"\0{info.st_size}\0{info.st_mtime_ns}"
            digest.update(f"{package}\0{origin}\0".encode())
        _fingerprint = digest.hexdigest()
    return _fingerprint


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_source(name: str, source: str) -> ModuleType:
    """Import generated ``source`` from the cache folder (written once, keyed by its hash)."""
    digest = _sha256(source.encode())[:16]
    module_name = f"optgen_spec_{name}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    root = private_cache_dir(writable=True)
    target = root / "modules" / f"{module_name}.py"
    if not target.is_file() or target.read_bytes() != source.encode():
        write_atomic(target, source)  # unchanged bytes keep their mtime, and Numba its cache
    return _import_file(module_name, target)


# --- importing, with damaged caches rebuilt -----------------------------------------------

def _import_file(module_name: str, path: Path) -> ModuleType:
    loader = _RepairingLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    _guard_numba_caches(module)
    return module


class _RepairingLoader(importlib.machinery.SourceFileLoader):
    """CPython's source loader, except that a damaged ``.pyc`` (truncated: "marshal data too
    short"; overwritten: "bad marshal data") is removed and the module compiled from its source
    again, instead of failing every later import."""

    def get_code(self, fullname):
        try:
            return super().get_code(fullname)
        except (EOFError, ValueError, TypeError, ImportError):
            bytecode = Path(importlib.util.cache_from_source(self.path))
            if not bytecode.is_file():
                raise  # the source's fault, not the bytecode's
            try:
                bytecode.unlink()
            except OSError:  # a read-only install: compile in memory
                return self.source_to_code(self.get_data(self.path), self.path)
            return super().get_code(fullname)  # compiles and writes a fresh .pyc


def _guard_numba_caches(module: ModuleType) -> None:
    for value in vars(module).values():
        guard_numba_cache(value)


def guard_numba_cache(function) -> None:
    """Give a Numba function (a dispatcher or a C callback) a disk cache that repairs itself
    (:class:`_RepairingNumbaCache`); nothing for one without a disk cache."""
    caching = sys.modules.get("numba.core.caching")
    if caching is None:
        return
    cache = getattr(function, "_cache", None)
    if isinstance(cache, caching.Cache):
        function._cache = _RepairingNumbaCache(cache)


class _RepairingNumbaCache:
    """One function's Numba disk cache, where an index (``*.nbi``) or data file (``*.nbc``)
    that cannot be read — Numba keeps no checksum, so a truncated or overwritten one raises
    on every call — is removed with a warning, and the function compiled and cached again."""

    def __init__(self, cache):
        self._numba_cache = cache

    def __getattr__(self, name):
        return getattr(self._numba_cache, name)

    def load_overload(self, sig, target_context):
        try:
            return self._numba_cache.load_overload(sig, target_context)
        except Exception as error:  # noqa: BLE001 - any failure to read is a damaged entry
            self._discard(error)
            return None

    def save_overload(self, sig, data):
        try:
            self._numba_cache.save_overload(sig, data)
        except Exception as error:  # noqa: BLE001 - the compiled code works without its cache
            self._discard(error)

    def _discard(self, error: Exception) -> None:
        files = self._numba_cache._cache_file
        warnings.warn(f"optgen: discarding a damaged Numba cache entry for "
                      f"{self._numba_cache._name} in {files._cache_path} "
                      f"({type(error).__name__}: {error}); compiling it again",
                      RuntimeWarning, stacklevel=3)
        with contextlib.suppress(OSError):
            os.unlink(files._index_path)
