"""``optgen build``: compile specs into ``generated/``, or check that it is up to date.

A module is stale when rebuilding its spec would not give the same bytes (the spec, a spec it
extends, the compiler or its templates changed), or when its spec is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import SpecError
from .pipeline import Compiled, catalogue_paths, compile_file, find_spec


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
    """A spec named on the command line: a path, or the name of a catalogue spec."""
    path = Path(text)
    if path.is_file():
        return path
    try:
        return find_spec(text)
    except FileNotFoundError:
        raise SpecError(f"no spec file or catalogue spec named {text!r}", filename=text) from None


def build(specs: list[Path] | None = None, out: Path | None = None, check: bool = False,
          progress: Callable[[Path], None] | None = None) -> BuildReport:
    """Compile ``specs`` (default: the catalogue) into ``out`` (default: ``generated/``)."""
    whole_catalogue = specs is None
    specs = catalogue_paths() if specs is None else specs
    out = generated_dir() if out is None else Path(out)
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
    current = target.read_text() if target.is_file() else None
    if current == compiled.source:
        report.unchanged.append(target)
    elif check:
        report.stale.append(target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(compiled.source)
        report.written.append(target)
