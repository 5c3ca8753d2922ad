"""The stages in order: spec file -> generated module source.

``parse -> check -> lower -> plan -> render``; each stage is its own module and hands the next a
typed value. This module only reads files, resolves ``extends`` and runs the stages.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy

from .. import __version__
from ..files import SPEC_SUFFIX, catalogue_dir, find_spec
from . import nodes
from .check import check
from .errors import SpecError
from .ir import CheckedSpec
from .lower import LoweredSpec, lower
from .parse import parse
from .plan import KernelPlan, plan
from .render import SourceInfo, render_module, render_schedule

__all__ = ["SPEC_SUFFIX", "Compiled", "SpecFile", "catalogue_dir", "catalogue_paths",
           "check_file", "compile_file", "find_spec", "parse_file"]


def catalogue_paths() -> list[Path]:
    return sorted(catalogue_dir().glob(f"*{SPEC_SUFFIX}"))


@dataclass(frozen=True)
class SpecFile:
    path: Path
    text: str
    sha256: str

    @classmethod
    def read(cls, path: Path) -> "SpecFile":
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise SpecError(f"not UTF-8 text ({error.reason} at byte {error.start})",
                            filename=str(path), source="") from None
        return cls(Path(path), text, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class Compiled:
    """Everything the stages produced for one spec."""

    file: SpecFile
    base: SpecFile | None
    checked: CheckedSpec
    lowered: LoweredSpec
    plan: KernelPlan | None  # None for a schedule (no kernels)
    source: str  # the generated module

    @property
    def name(self) -> str:
        return self.checked.name


def parse_file(file: SpecFile) -> nodes.SpecAST:
    return parse(file.text, str(file.path))


def check_file(path: Path | str) -> CheckedSpec:
    """Check one spec file (what ``optgen check`` runs): every stage up to the generated
    source, so that what ``check`` accepts is exactly what builds; nothing is written."""
    return compile_file(path).checked


def compile_file(path: Path | str) -> Compiled:
    file = SpecFile.read(Path(path))
    checked, base = _front(file)
    try:
        return _back(file, checked, base)
    except SpecError as error:
        raise error.located(str(file.path), file.text) from None
    except (NotImplementedError, TypeError, ValueError, KeyError, AttributeError,
            RecursionError, ArithmeticError, SyntaxError) as error:
        # a stage below check that this spec defeats
        raise SpecError(f"optgen cannot generate code for this spec ({type(error).__name__}: "
                        f"{error}); a check should have caught it: please report it",
                        filename=str(file.path), source="") from None


def _back(file: SpecFile, checked: CheckedSpec, base: SpecFile | None) -> Compiled:
    """lower -> plan -> render for a checked spec."""
    lowered = lower(checked)
    info = SourceInfo(file.path.name, file.sha256)
    if checked.kind == "schedule":
        kernel_plan = None
        source = render_schedule(lowered, info, __version__)
    else:
        kernel_plan = plan(lowered)
        source = render_module(
            lowered, kernel_plan, info,
            SourceInfo(base.path.name, base.sha256) if base else None, __version__)
    # generated code that is not Python is this stage's failure, not the import's
    compile(source, f"<module generated from {file.path.name}>", "exec")
    _requirements_at_defaults(file, checked, source)
    return Compiled(file, base, checked, lowered, kernel_plan, source)


def _requirements_at_defaults(file: SpecFile, checked: CheckedSpec, source: str) -> None:
    """The generated ``violated_requirements`` on the default hyperparameters, passed as the
    runtime passes them: a requirement the defaults break would make every optimizer built
    from the spec raise, so it is a located error here, at its ``require`` line, as a default
    outside its domain is."""
    if not checked.requires:
        return
    tree = ast.parse(source)
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef)
                    and node.name == "violated_requirements")
    # report each requirement by its index rather than its message (messages may repeat)
    index = 0
    for node in ast.walk(function):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"):
            node.args = [ast.Constant(index)]
            index += 1
    namespace = {"numpy": numpy}
    exec(compile(ast.fix_missing_locations(ast.Module([function], [])),
                 "<requirements>", "exec"), namespace)
    with numpy.errstate(all="ignore"):
        broken = namespace["violated_requirements"](*_default_values(checked))
    if not broken:
        return
    require = checked.requires[broken[0]]
    own = parse_file(file)
    if broken[0] >= len(checked.requires) - len(own.requires):
        raise SpecError(f"the default hyperparameters break this requirement "
                        f"({require.message!r})", require.span,
                        hint="change a default, or the requirement")
    # a requirement of the base, broken by a default this spec gives
    raise SpecError(f"the default hyperparameters break the requirement {require.message!r} "
                    f"of {checked.base}", own.hypers[0].span if own.hypers else own.name_span,
                    hint="change a default")


def _default_values(checked: CheckedSpec) -> list:
    """The defaults as generated host functions take them (runtime/signature.py,
    runtime/kernels.host_value): floats as float64, none as NaN, a choice as its index."""
    values = []
    for h in checked.hypers:
        if h.type == "choice":
            values.append(h.choices.index(h.default))
        elif h.type == "list":
            values.append(tuple(float(v) for v in h.default))
        elif h.type == "tuple":
            values += [numpy.float64(numpy.nan if v is None else v) for v in h.default]
        elif h.type == "float":
            values.append(numpy.float64(h.default))
        else:  # int, bool
            values.append(h.default)
    return values


def _front(file: SpecFile) -> tuple[CheckedSpec, SpecFile | None]:
    ast = parse_file(file)
    bases: list[SpecFile] = []

    def resolve(name: str) -> nodes.SpecAST:
        base = SpecFile.read(find_spec(name, near=file.path))
        bases.append(base)
        base_ast = parse_file(base)

        def resolve_its_base(other: str) -> nodes.SpecAST:  # adamw, compared with, extends adam
            return parse_file(SpecFile.read(find_spec(other, near=base.path)))

        try:  # it must stand on its own (its claims aside); mistakes are shown in its own file
            check(dataclasses.replace(base_ast, claims=()), resolve_its_base)
        except SpecError as error:
            raise error.located(str(base.path), base.text) from None
        return base_ast

    try:
        checked = check(ast, resolve)
    except SpecError as error:
        raise error.located(str(file.path), file.text) from None
    return checked, (bases[0] if bases else None)
