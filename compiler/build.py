"""``optgen build``: compile specs into ``generated/``, or check that it is up to date.

A module is stale when rebuilding its spec would not give the same bytes (the spec, a spec it
extends, the compiler or its templates changed), or when its spec is gone.

Only the catalogue's own specs (``specs/*.opt``) are built into optgen's ``generated/``; any
other spec needs an output folder (``out``, ``--out DIR``), so no build of a user's spec can add
to the catalogue or make ``optgen build --check`` fail. A module is written as
``<out>/<spec name>.py``, and a spec name must be an identifier not starting with ``_`` (so no
spec can replace ``generated/__init__.py`` or write outside ``out``). The output folder is
probed before any compiling, and every module is written atomically
(:func:`optgen.files.write_atomic`): a failed build leaves the previous modules intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..files import FolderError, find_spec, in_catalogue, is_spec_name, is_spec_path, \
    writable_folder, write_atomic
from .errors import SpecError
from .pipeline import Compiled, catalogue_paths, compile_file


def generated_dir() -> Path:
    from .. import generated
    return Path(generated.__file__).parent


@dataclass
class BuildReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)     # --check: would change
    orphans: list[Path] = field(default_factory=list)   # --check: module without a spec
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.stale or self.orphans or self.errors)


def resolve_spec_argument(text: str) -> Path:
    """A spec named on the command line: a path when ``text`` ends in ``.opt`` or contains a
    path separator (:func:`optgen.files.is_spec_path`), else a catalogue spec's name. A file
    called like a catalogue spec in the working folder is not looked at: ``./adam`` names it."""
    if is_spec_path(text):
        if not Path(text).is_file():
            raise SpecError("no such spec file", filename=text)
        return Path(text)
    try:
        return find_spec(text)
    except FileNotFoundError:
        hint = (f"to build the file {text!r}, write './{text}'" if Path(text).is_file() else
                "a spec file's path ends in .opt or contains a '/'")
        raise SpecError(f"no catalogue spec named {text!r}", filename=text, hint=hint) from None


def output_folder(specs: list[Path], out: Path | None, check: bool = False) -> Path:
    """Where ``specs`` are built: ``out``, which (unless ``check``) is created and probed with a
    real write now, before any compiling; by default ``generated/``, for catalogue specs only.
    Raises :class:`optgen.files.FolderError`."""
    if out is None:
        outside = [p for p in specs if not in_catalogue(p)]
        if outside:
            raise FolderError(f"{outside[0]} is not a catalogue spec (specs/), so it is not "
                              f"built into optgen's generated/ folder: give --out DIR")
        out = generated_dir()
    out = Path(out)
    if check:
        if out.exists() and not out.is_dir():
            raise FolderError(f"the output folder {str(out)!r} is not a folder")
        return out
    return writable_folder(out, "output folder")


def build(specs: list[Path] | None = None, out: Path | None = None, check: bool = False,
          progress: Callable[[Path], None] | None = None) -> BuildReport:
    """Compile ``specs`` (default: the catalogue) into ``out`` (default: ``generated/``, which
    only catalogue specs may use; see :func:`output_folder`). Raises
    :class:`optgen.files.FolderError` before any work when ``out`` cannot be used, and when a
    module cannot be written (the file it would replace stays as it was)."""
    whole_catalogue = specs is None
    specs = catalogue_paths() if specs is None else [Path(s) for s in specs]
    out = output_folder(specs, out, check)
    report = BuildReport()
    seen: dict[str, Path] = {}
    for path in specs:
        if progress is not None:
            progress(path)
        try:
            compiled = compile_file(path)
        except SpecError as error:
            report.errors.append(error)
            continue
        except OSError as error:
            report.errors.append(SpecError(f"cannot read: {error.strerror or error}",
                                           filename=str(path)))
            continue
        if not is_spec_name(compiled.name):
            report.errors.append(SpecError(
                f"spec name {compiled.name!r} cannot be a module's file name (names starting "
                f"with '_' are reserved)", filename=str(path)))
            continue
        if compiled.name in seen:
            report.errors.append(SpecError(
                f"spec name {compiled.name!r} is also used by {seen[compiled.name]}",
                filename=str(path)))
            continue
        seen[compiled.name] = path
        _emit(compiled, out / f"{compiled.name}.py", check, report)
    if check and whole_catalogue:
        report.orphans = sorted(p for p in out.glob("*.py")
                                if not p.name.startswith("_") and p.stem not in seen)
    return report


def _emit(compiled: Compiled, target: Path, check: bool, report: BuildReport) -> None:
    current = target.read_bytes() if target.is_file() else None
    if current == compiled.source.encode():
        report.unchanged.append(target)
    elif check:
        report.stale.append(target)
    else:
        try:
            write_atomic(target, compiled.source)
        except OSError as error:
            raise FolderError(f"cannot write {target}: {error.strerror or error} (the previous "
                              f"file is unchanged)") from None
        report.written.append(target)
