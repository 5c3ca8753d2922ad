"""Builds and caches lose nothing: where modules go, atomic writes, damaged caches, private and
read-only folders, names vs paths, and a second process that runs no compiler.

Every scenario that writes, crashes or fills a disk runs in a subprocess with a timeout, with
``OPTGEN_CACHE_DIR`` in ``tmp_path``; nothing touches the real cache or optgen's ``generated/``.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import SIGNUM_SPEC  # noqa: E402

from optgen.compiler.build import generated_dir
from optgen.files import FolderError, private_folder, write_atomic

TIMEOUT = 120

SIGNUM = SIGNUM_SPEC

# Loads a spec, takes one step, and reports what happened: the new p, whether the compiler was
# imported, and Numba's cache hits and misses for the kernel contiguous params go through.
STEP = textwrap.dedent('''\
    import sys, warnings, numpy as np, optgen
    warnings.simplefilter("always")
    p = np.ones(4)
    opt = optgen.optimizer(sys.argv[1], [p])
    opt.step([np.array([1.0, -1.0, 2.0, 0.0])])
    stats = opt._module.step_many_cpu.stats
    print(p.tolist(), "optgen.compiler" in sys.modules,
          sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
    ''')


def run(args, tmp_path, *, cwd=None, limit_bytes=None, env=None):
    """``args`` in a fresh interpreter (``optgen ...`` through the CLI module), its files limited
    to ``limit_bytes`` (RLIMIT_FSIZE, SIGXFSZ ignored: a write past it fails with EFBIG, as
    on a full disk)."""
    if args[0] == "optgen":
        args = [sys.executable, "-m", "optgen.cli", *args[1:]]
    elif args[0] == "python":
        args = [sys.executable, *args[1:]]

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd,
                          preexec_fn=limit if limit_bytes is not None else None,
                          env={**os.environ, "OPTGEN_CACHE_DIR": str(tmp_path / "cache"),
                               "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})


def step(tmp_path, spec, **kwargs):
    result = run(["python", "-c", STEP, str(spec)], tmp_path, **kwargs)
    assert result.returncode == 0, result.stderr
    p, compiler, hits, misses = result.stdout.rsplit(None, 3)
    return p, compiler == "True", (int(hits), int(misses)), result.stderr


def one_line_error(result, status, *words):
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def signum(tmp_path) -> Path:
    spec = tmp_path / "signum.opt"
    spec.write_text(SIGNUM)
    return spec


# --- where modules go --------------------------------------------------------------------------

def test_a_user_spec_never_builds_into_the_package(tmp_path, signum):
    before = sorted(generated_dir().iterdir())
    result = run(["optgen", "build", str(signum)], tmp_path)
    one_line_error(result, 2, "not a catalogue spec", "--out")
    assert sorted(generated_dir().iterdir()) == before
    assert "signum" not in run(["optgen", "list"], tmp_path).stdout
    result = run(["optgen", "build", str(signum), "--out", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "signum.py").is_file()


def test_no_spec_name_replaces_init(tmp_path):
    (tmp_path / "init.opt").write_text(SIGNUM.replace("optimizer signum", "optimizer __init__"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "__init__.py").write_text("# the package's own\n")
    result = run(["optgen", "build", str(tmp_path / "init.opt"), "--out", str(out)], tmp_path)
    assert result.returncode == 1 and "'__init__'" in result.stderr and "reserved" in result.stderr
    assert (out / "__init__.py").read_text() == "# the package's own\n"
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py"]


def test_a_file_named_like_a_catalogue_spec_does_not_shadow_it(tmp_path):
    """A name is a path only if it ends in .opt or contains a separator."""
    (tmp_path / "adam").write_text(SIGNUM.replace("optimizer signum", "optimizer adam"))
    code = textwrap.dedent('''\
        import optgen.runtime.loader as loader
        print(loader.load("adam").__name__, loader.load("./adam").__name__.split("_")[2])
        ''')
    result = run(["python", "-c", code], tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["optgen.generated.adam", "adam"]
    assert "beta" in run(["python", "-c", "import optgen; print(optgen.optimizer("
                                          "'./adam', []).hypers)"], tmp_path,
                         cwd=tmp_path).stdout  # the file's own hyperparameters
    out = tmp_path / "out"
    assert run(["optgen", "build", "./adam", "--out", str(out)], tmp_path,
               cwd=tmp_path).returncode == 0
    assert "signSGD" in (out / "adam.py").read_text()  # the file
    result = run(["optgen", "build", "adam", "--out", str(tmp_path / "cat")], tmp_path,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Kingma" in (tmp_path / "cat" / "adam.py").read_text()  # the catalogue's adam
    result = run(["python", "-c", "import optgen; optgen.optimizer('adamm', [])"], tmp_path,
                 cwd=tmp_path)
    assert "unknown optimizer 'adamm'" in result.stderr


# --- atomic writes -----------------------------------------------------------------------------

def test_a_build_that_fills_the_disk_leaves_the_previous_module(tmp_path, signum):
    out = tmp_path / "out"
    assert run(["optgen", "build", str(signum), "--out", str(out)], tmp_path).returncode == 0
    module = out / "signum.py"
    previous = module.read_bytes()
    signum.write_text(SIGNUM.replace('p -= lr * sign(m)."', 'p -= lr * sign(m).' + "x" * 5000
                                     + '"'))
    result = run(["optgen", "build", str(signum), "--out", str(out)], tmp_path,
                 limit_bytes=len(previous) + 1000)
    one_line_error(result, 2, str(module), "File too large", "unchanged")
    assert module.read_bytes() == previous
    assert sorted(p.name for p in out.iterdir()) == ["signum.py"]  # no temporary file left
    assert run(["optgen", "build", str(signum), "--out", str(out)], tmp_path).returncode == 0
    assert b"xxxxx" in module.read_bytes()


def test_a_report_that_fills_the_disk_leaves_the_previous_report(tmp_path, signum):
    report = tmp_path / "report.md"
    report.write_text("the previous report\n")
    result = run(["optgen", "verify", str(signum), "-o", str(report), "--budget", "1"],
                 tmp_path, limit_bytes=200)
    one_line_error(result, 2, str(report), "File too large")
    assert report.read_text() == "the previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "report.md", "signum.opt"]


def test_a_cache_write_that_fills_the_disk_leaves_no_half_module(tmp_path, signum):
    result = run(["python", "-c", STEP, str(signum)], tmp_path, limit_bytes=4000)
    assert result.returncode == 1 and "File too large" in result.stderr
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert step(tmp_path, signum)[0] == "[0.99, 1.01, 0.99, 1.0]"


def test_write_atomic_replaces_a_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "link.py").symlink_to(victim)
    write_atomic(tmp_path / "link.py", "new")
    assert victim.read_text() == "keep" and not (tmp_path / "link.py").is_symlink()


# --- damaged caches ----------------------------------------------------------------------------

def test_damaged_pyc_and_numba_cache_are_rebuilt(tmp_path, signum):
    want = "[0.99, 1.01, 0.99, 1.0]"
    env = {"PYTHONDONTWRITEBYTECODE": ""}  # let Python write the module's .pyc
    assert step(tmp_path, signum, env=env)[:3] == (want, True, (0, 1))
    pycache = tmp_path / "cache" / "modules" / "__pycache__"
    (pyc,) = pycache.glob("optgen_spec_signum_*.pyc")
    size = pyc.stat().st_size
    with pyc.open("r+b") as f:
        f.truncate(size // 2)  # header intact: CPython would say "marshal data too short"
    for index in pycache.glob("*.nbi"):
        with index.open("r+b") as f:
            f.truncate(index.stat().st_size // 2)
    p, compiler, (hits, misses), stderr = step(tmp_path, signum, env=env)
    assert (p, compiler, hits, misses) == (want, False, 0, 1)
    assert "damaged Numba cache entry" in stderr
    assert pyc.stat().st_size == size  # written again
    for data in pycache.glob("*.nbc"):
        data.write_bytes(b"\x80\x04garbage" * 10)
    p, compiler, (hits, misses), stderr = step(tmp_path, signum, env=env)
    assert (p, hits, misses) == (want, 0, 1) and "damaged Numba cache entry" in stderr
    p, compiler, (hits, misses), stderr = step(tmp_path, signum, env=env)
    assert (p, compiler, hits, misses) == (want, False, 1, 0) and "damaged" not in stderr


def test_a_damaged_cached_module_is_rebuilt_from_the_spec(tmp_path, signum):
    step(tmp_path, signum)
    (module,) = (tmp_path / "cache" / "modules").glob("optgen_spec_signum_*.py")
    source = module.read_bytes()
    module.write_bytes(source[:len(source) // 2])
    p, compiler, _, _ = step(tmp_path, signum)
    assert p == "[0.99, 1.01, 0.99, 1.0]" and compiler
    assert module.read_bytes() == source


# --- the cache folder --------------------------------------------------------------------------

def test_cache_folder_is_created_private(tmp_path):
    folder = private_folder(tmp_path / "a" / "cache")
    assert folder.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("problem", ["others can write", "owned by uid"])
def test_a_cache_folder_others_control_is_refused(tmp_path, signum, monkeypatch, problem):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    if problem == "others can write":
        cache.chmod(0o777)
    else:
        if os.getuid() != 0:
            pytest.skip("chown needs root")
        os.chown(cache, os.getuid() + 12345, -1)
    monkeypatch.setenv("OPTGEN_CACHE_DIR", str(cache))
    import optgen
    with pytest.raises(FolderError, match=f"refusing the optgen cache folder .*{problem}"):
        optgen.optimizer(signum, [])
    assert list(cache.iterdir()) == []
    one_line_error(run(["optgen", "verify", str(signum)], tmp_path), 2, problem)


# --- folders that cannot be written: one line, exit status 2, before the work --------------

def test_unwritable_folders_fail_before_the_work(tmp_path):
    """A path under a regular file cannot be created (root ignores chmod, not this). The spec
    is invalid, so an error found after compiling would be exit status 1."""
    (tmp_path / "bad.opt").write_text("optimizer bad\nupdate:\n  p = p - lrr*g\n")
    (tmp_path / "file").write_text("")
    under_file = tmp_path / "file" / "sub"
    bad = str(tmp_path / "bad.opt")
    one_line_error(run(["optgen", "build", bad, "--out", str(under_file)], tmp_path), 2,
                   "cannot write to the output folder", "Not a directory")
    one_line_error(run(["optgen", "build", bad, "--out", str(tmp_path / "file")], tmp_path),
                   2, "is not a folder")
    one_line_error(run(["optgen", "verify", bad, "-o", str(under_file / "r.md")], tmp_path),
                   2, "cannot write to the report's folder")
    one_line_error(run(["optgen", "verify", bad, "-o", str(tmp_path)], tmp_path), 2,
                   "is a folder")
    one_line_error(run(["optgen", "verify", bad], tmp_path,
                       env={"OPTGEN_CACHE_DIR": str(under_file)}), 2, "optgen cache folder")
    result = run(["python", "-c", f"import optgen; optgen.optimizer({bad!r}, [])"], tmp_path,
                 env={"OPTGEN_CACHE_DIR": str(under_file)})
    assert "FolderError: cannot create the optgen cache folder" in result.stderr
    assert "lrr" not in result.stderr  # refused before compiling


def _read_only_mount_works(tmp_path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {tmp_path} "
                            f"{tmp_path} && ! touch {tmp_path}/x"], capture_output=True)
    return probe.returncode == 0


def test_read_only_folders_fail_before_the_work(tmp_path, signum):
    """A real read-only bind mount, where the machine allows one (root in a mount namespace)."""
    ro = tmp_path / "ro"
    (ro / "cache").mkdir(parents=True, mode=0o700)
    if not _read_only_mount_works(ro):
        pytest.skip("no read-only bind mount here (needs unshare -m as root)")
    optgen = f"{sys.executable} -m optgen.cli"
    script = textwrap.dedent(f'''\
        mount --bind -o ro {ro} {ro} || exit 99
        {optgen} build {signum} --out {ro}/out; echo "status $?"
        {optgen} verify {signum} -o {ro}/report.md; echo "status $?"
        OPTGEN_CACHE_DIR={ro}/cache {optgen} verify {signum}; echo "status $?"
        OPTGEN_CACHE_DIR={ro}/cache {sys.executable} -c "import optgen; optgen.optimizer('{signum}', [])"
        ''')
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                            text=True, timeout=TIMEOUT, env={**os.environ,
                                                             "OPTGEN_CACHE_DIR": str(tmp_path / "cache")})
    assert result.stdout.split() == ["status", "2"] * 3, (result.stdout, result.stderr)
    errors = result.stderr.strip().splitlines()
    assert errors[0] == f"Error: cannot write to the output folder '{ro}/out': Read-only file system"
    assert errors[1] == f"Error: cannot write to the report's folder '{ro}': Read-only file system"
    assert errors[2] == (f"Error: cannot write to the optgen cache folder '{ro}/cache/modules': "
                         f"Read-only file system")
    assert errors[-1].startswith("optgen.files.FolderError: cannot write to the optgen cache")


# --- a second process runs no compiler ---------------------------------------------------------

def test_second_process_neither_compiles_nor_jits(tmp_path, signum):
    want = "[0.99, 1.01, 0.99, 1.0]"
    assert step(tmp_path, signum)[:3] == (want, True, (0, 1))
    assert step(tmp_path, signum)[:3] == (want, False, (1, 0))  # no compiler, no JIT
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    signum.write_text(SIGNUM.replace("hyper lr = 1e-2", "hyper lr = 1e-1"))
    assert step(tmp_path, signum)[:2] == ("[0.9, 1.1, 0.9, 1.0]", True)  # the spec changed


def test_a_changed_base_is_recompiled(tmp_path, signum):
    child = tmp_path / "fast.opt"
    child.write_text("optimizer fast extends signum\nhyper lr = 0.5\n")
    assert step(tmp_path, child)[:2] == ("[0.5, 1.5, 0.5, 1.0]", True)
    assert step(tmp_path, child)[:2] == ("[0.5, 1.5, 0.5, 1.0]", False)
    signum.write_text(SIGNUM.replace("sign(m)\n", "sign(m) * 2\n"))
    assert step(tmp_path, child)[:2] == ("[0.0, 2.0, 0.0, 1.0]", True)
    assert step(tmp_path, child)[:2] == ("[0.0, 2.0, 0.0, 1.0]", False)
