"""The ``optgen`` command: build, check, list, demo."""

from __future__ import annotations

import contextlib
import statistics
import sys
from pathlib import Path

import click

from . import __version__


def _print_errors(errors) -> None:
    for error in errors:
        click.echo(str(error), err=True)


class _Unusable(click.ClickException):
    """A folder or file the command must write cannot be used: ``Error: ...`` on one line,
    exit status 2, raised before the work whenever it can be known then."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="optgen")
def main() -> None:
    """optgen: a language and compiler for machine-learning optimizers."""


@main.command()
@click.argument("specs", nargs=-1)
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder for the generated modules (default: optgen's generated/, for "
                   "catalogue specs only; any other spec needs --out).")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 naming each module that is not up to date.")
def build(specs: tuple[str, ...], out: Path | None, check: bool) -> None:
    """Compile SPECS (default: the whole catalogue).

    A spec is a path when it ends in .opt or contains a '/', else a catalogue name (a file
    called 'adam' here is './adam'). Exit status 1 for spec errors and stale modules, 2 when
    the output folder cannot be written (checked before compiling).
    """
    from .compiler.build import build as run_build, resolve_spec_argument
    from .compiler.errors import SpecError
    from .files import FolderError

    try:
        paths = [resolve_spec_argument(s) for s in specs] or None
    except SpecError as error:
        _print_errors([error])
        sys.exit(1)
    total = len(paths) if paths else _catalogue_size()
    try:
        with _progress(total, "checking" if check else "building") as advance:
            report = run_build(paths, out=out, check=check, progress=lambda _: advance())
    except FolderError as error:
        raise _Unusable(str(error)) from None
    _print_errors(report.errors)
    for path in report.written:
        click.echo(f"wrote {path}")
    for path in report.stale:
        click.echo(f"stale: {path} (run 'optgen build')", err=True)
    for path in report.orphans:
        click.echo(f"stale: {path} has no spec in the catalogue", err=True)
    if check and report.ok:
        click.echo(f"up to date: {len(report.unchanged)} modules")
    elif not check and not report.errors:
        click.echo(f"{len(report.written)} written, {len(report.unchanged)} unchanged")
    sys.exit(0 if report.ok else 1)


@contextlib.contextmanager
def _progress(total: int, label: str):
    """A progress bar on a terminal; silence in logs and pipes."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True) as bar:
        yield lambda: bar.update(1)


def _catalogue_size() -> int:
    from .compiler.pipeline import catalogue_paths
    return len(catalogue_paths())


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Parse and check spec FILES; print file:line:col errors."""
    from .compiler.errors import SpecError
    from .compiler.pipeline import check_file

    failed = False
    for path in files:
        try:
            spec = check_file(path)
        except FileNotFoundError:
            click.echo(f"{path}: no such file", err=True)
            failed = True
        except OSError as error:  # a folder, a file that cannot be read
            click.echo(f"{path}: cannot read it ({error.strerror or error})", err=True)
            failed = True
        except SpecError as error:
            _print_errors([error])
            failed = True
        else:
            click.echo(f"{path}: ok ({spec.name}: {len(spec.hypers)} hyperparameters, "
                       f"{len(spec.states)} states, {len(spec.statements)} statements)")
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("specs", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md",
              show_default=True, help="Report format.")
@click.option("--json", "as_json", is_flag=True, help="Shorthand for --format json.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the report here instead of standard output (its folder is probed "
                   "before the work).")
@click.option("--budget", type=click.IntRange(min=0), default=400_000, show_default=True,
              help="Symbolic work per claim, in SymPy expressions built, before it is reported "
                   "unknown (0: no limit). A count, not seconds: the same on every machine.")
def verify(specs: tuple[str, ...], fmt: str, as_json: bool, output: Path | None,
           budget: int) -> None:
    """Prove, refute or leave unknown every claim about SPECS (default: the whole catalogue).

    Exit status 1 when a spec's own claim is refuted or could not be checked (status "error"),
    or a spec is invalid; 2 when the report's
    folder or optgen's cache folder cannot be written (checked before the work).
    """
    import time

    from .compiler.build import resolve_spec_argument
    from .compiler.errors import SpecError
    from .compiler.pipeline import catalogue_paths
    from .compiler.report import to_html, to_json, to_markdown
    from .compiler.verify import verify_file
    from .files import FolderError, writable_folder, write_atomic
    from .runtime.loader import private_cache_dir

    fmt = "json" if as_json else fmt
    failed = False
    try:
        paths = [resolve_spec_argument(s) for s in specs] or catalogue_paths()
    except SpecError as error:
        _print_errors([error])
        sys.exit(1)
    try:  # a refuted claim is re-run through the generated NumPy kernel, loaded from the cache
        if output is not None:
            if output.is_dir():
                raise FolderError(f"the report's path {str(output)!r} is a folder")
            writable_folder(output.parent, "report's folder")
        private_cache_dir(writable=True)
    except FolderError as error:
        raise _Unusable(str(error)) from None
    reports = []
    start = time.perf_counter()
    with _progress(len(paths), "verifying") as advance:
        for path in paths:
            try:
                reports.append(verify_file(path, budget=budget or None))
            except SpecError as error:
                _print_errors([error])
                failed = True
            advance()
    seconds = time.perf_counter() - start
    text = {"json": lambda: to_json(reports), "md": lambda: to_markdown(reports, seconds),
            "html": lambda: to_html(reports, seconds)}[fmt]()
    if output is not None:
        try:
            write_atomic(output, text)
        except OSError as error:
            raise _Unusable(f"cannot write {output}: {error.strerror or error}") from None
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)
    for report in reports:
        for result in report.own_refuted:
            click.echo(f"{report.compiled.file.path}: claim '{result.id}' is refuted: "
                       f"{result.detail}", err=True)
            failed = True
        for result in report.results:  # a spec's own claim that could not be checked
            if result.own and result.status == "error":
                click.echo(f"{report.compiled.file.path}: claim '{result.id}': "
                           f"{result.detail}", err=True)
                failed = True
    sys.exit(1 if failed else 0)


@main.command(name="list")
def list_() -> None:
    """The catalogue: name, description and hyperparameters of each optimizer."""
    from .runtime.loader import available, load

    for name in available():
        module = load(name)
        kind = getattr(module, "KIND", "optimizer")
        click.echo(click.style(name, bold=True) + ("" if kind == "optimizer" else f"  ({kind})"))
        click.echo(f"  {module.DESCRIPTION}")
        for h in module.HYPERS:
            domain = f" in {h.domain_text}" if h.domain_text else ""
            click.echo(f"    {h.name} = {h.default!r}{domain}  {h.doc}")


@main.command()
@click.option("--steps", default=300, show_default=True, help="Steps per optimizer.")
@click.option("--backend", type=click.Choice(["cpu", "numpy"]), default="cpu", show_default=True)
def demo(steps: int, backend: str) -> None:
    """Train a small logistic regression with every catalogue optimizer and print the losses."""
    from .demo import run_demo

    run_demo(steps=steps, backend=backend, echo=click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()


@main.command()
@click.argument("names", nargs=-1)
@click.option("--many", is_flag=True,
              help="The 161 tensors of a ResNet-50 instead of one 4096 x 4096 tensor.")
@click.option("--rounds", default=10, show_default=True, help="Interleaved timing rounds.")
@click.option("--startup", is_flag=True,
              help="Also time import plus first step in a fresh process, warm and cold cache.")
def bench(names: tuple[str, ...], many: bool, rounds: int, startup: bool) -> None:
    """Time NAMES (default: the catalogue's optimizers) against torch.optim's fastest CPU path;
    print a Markdown table. Needs torch (pip install "optgen[torch]")."""
    try:
        import torch  # noqa: F401
    except ImportError:
        click.echo("optgen bench needs PyTorch: pip install 'optgen[torch]'", err=True)
        sys.exit(1)
    from .bench import SINGLE_SHAPE, SKIPPED, bench_one, format_table, resnet50_shapes, \
        startup_seconds
    from .runtime.loader import available, load

    optimizers = [n for n in available("optimizer")
                  if getattr(load(n), "KIND", "optimizer") == "optimizer"]
    chosen = list(names) or [n for n in optimizers if n not in SKIPPED]
    for name in chosen:
        if name not in optimizers:
            raise click.BadParameter(f"{name!r} is not an optimizer of the catalogue "
                                     f"({', '.join(optimizers)})", param_hint="NAMES")
    shapes = resnet50_shapes() if many else [SINGLE_SHAPE]
    rows = []
    with _progress(len(chosen), "timing") as advance:
        for name in chosen:
            rows.append(bench_one(name, shapes, rounds))
            advance()
    workload = (f"{len(shapes)} tensors (ResNet-50), {rows[0].values:,} float32 values"
                if many else f"one {SINGLE_SHAPE[0]} x {SINGLE_SHAPE[1]} float32 tensor")
    click.echo(f"{workload}; median of {rounds} interleaved rounds; in-place add() reached "
               f"{statistics.median([r.add_gbps for r in rows]):.1f} GB/s\n")
    click.echo(format_table(rows))
    skipped = [f"{n}: {SKIPPED[n]}" for n in SKIPPED if not names and n in optimizers]
    if skipped:
        click.echo("\nnot timed: " + "; ".join(skipped))
    if startup:
        startup_seconds(cold=False)  # a first run fills the cache if the kernels changed
        warm, cold = startup_seconds(cold=False), startup_seconds(cold=True)
        click.echo(f"\nimport + first Adam step, fresh process, warm Numba cache: NumPy front "
                   f"end {warm['numpy']:.2f} s; 'import torch' {warm['torch_import']:.2f} s; "
                   f"optgen.torch after it "
                   f"{warm['torch']:.2f} s (of which torch.optim's first Optimizer() "
                   f"{warm['torch_construct']:.2f} s). Cold cache (compiling): "
                   f"{cold['numpy']:.2f} s and {cold['torch']:.2f} s.")
