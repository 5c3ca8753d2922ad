"""Finding generated modules: the catalogue's in ``optgen.generated``, or a spec file built on use.

A spec given by path is compiled once into the user cache (``$OPTGEN_CACHE_DIR``, default
``~/.cache/optgen``) under a name that includes its sha256, so an unchanged spec is neither
recompiled nor re-jitted (Numba caches its machine code beside the module).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .. import generated

_SPEC_SUFFIX = ".opt"


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
    return Path(os.environ.get("OPTGEN_CACHE_DIR") or Path.home() / ".cache" / "optgen")


def load(name_or_path: str | os.PathLike) -> ModuleType:
    """The generated module for a catalogue name (``"adam"``) or a spec file path."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a catalogue name or a spec file path, "
                        f"got {type(name_or_path).__name__}")
    text = os.fspath(name_or_path)
    if text.endswith(_SPEC_SUFFIX) or os.sep in text or Path(text).is_file():
        return _load_path(Path(text))
    names = available()
    if text not in names:
        raise ValueError(f"unknown optimizer {text!r}; the catalogue has: {', '.join(names)} "
                         f"(or pass the path of a {_SPEC_SUFFIX} spec file)")
    return importlib.import_module(f"{generated.__name__}.{text}")


def _load_path(path: Path) -> ModuleType:
    if not path.is_file():
        raise ValueError(f"spec file {str(path)!r} does not exist")
    from ..compiler.pipeline import compile_file  # the compiler is needed only here

    compiled = compile_file(path)
    return load_source(compiled.name, compiled.source)


def load_source(name: str, source: str) -> ModuleType:
    """Import generated ``source`` from the cache folder (written once, keyed by its hash)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    module_name = f"optgen_spec_{name}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    folder = cache_dir() / "modules"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{module_name}.py"
    if not target.exists() or target.read_text() != source:
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(source)
        partial.replace(target)  # atomic: another process never sees half a module
    spec = importlib.util.spec_from_file_location(module_name, target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
