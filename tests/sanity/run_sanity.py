#!/usr/bin/env python
# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run ``ansible-test sanity`` on this checkout without containers.

ansible-test only works inside an ``ansible_collections/<namespace>/<name>``
tree, so the checkout's files (git-tracked ones plus untracked files git does
not ignore) are mirrored into such a tree and the tests run there with
``--venv``.  The tree lives in the user's cache directory, outside any git
work tree (inside one, ansible-test would ask that work tree's git for the
file list and find nothing to test).  It is kept between runs, so the virtual
environment ansible-test makes inside it is reused; files that left the
checkout are removed from the mirror before every run.  ``--fresh`` uses a
new temporary tree instead and removes it afterwards.

ansible-test bootstraps pip in every virtual environment it makes with a
``get-pip`` script it downloads unless a cached copy exists.  Where the
download host cannot be reached, the cached copy this script writes stands in
for it: it installs pip with ``ensurepip`` and then asks that pip for the
packages ansible-test wanted.

After ansible-test, two parse checks cover Python versions ansible-test no
longer knows: the callback must parse on Python 2.7 (old controllers get a
quiet "unavailable" instead of a traceback), and target-side code must parse on
the oldest Python ``tests/config.yml`` declares.  Each runs when that Python can
be found and otherwise says why it was skipped.

Exit status: 0 when everything passed, 1 when a check failed, 2 when the
checks could not run at all.  Everything after ``--`` goes to ansible-test
unchanged (for example ``-- --test pep8``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Paths of the checkout that never belong in the collection tree under test.
EXCLUDED = (".git", ".venv", "build", "tests/output", "demo/output")

# A stand-in for ansible-test's cached get-pip script.  It runs as __main__
# through ansible-test's quiet pip wrapper, with pip install arguments in
# sys.argv.  ensurepip runs in a child process because it switches pip's
# configuration files off in its own process, and with them any index, proxy
# or certificate settings the machine needs.  ensurepip may bring setuptools
# along; where ansible-test asked for none it is removed again.
STAND_IN_MARK = "# perfstats.profiler sanity: get-pip stand-in"
STAND_IN = (
    STAND_IN_MARK
    + """
import subprocess
import sys

DROPPED = ("--no-setuptools", "--no-wheel")
args = [arg for arg in sys.argv[1:] if arg not in DROPPED]
had_setuptools = subprocess.call(
    [sys.executable, "-c", "import setuptools"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
) == 0
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args)
if "--no-setuptools" in sys.argv[1:] and not had_setuptools:
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"])
"""
)


def log(message: str) -> None:
    print("run_sanity: %s" % message, flush=True)


def ansible_test_pip_versions() -> list[str]:
    """The pip versions ansible-test bootstraps into its virtual environments."""
    import ansible_test  # only the package location is needed; nothing runs on import

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    text = source.read_text(encoding="utf-8")
    start = text.find("def get_venv_packages(")
    body = text[start : text.find("\ndef ", start + 1)] if start >= 0 else ""
    versions = sorted(set(re.findall(r"""\bpip\s*[=:]\s*['"]([0-9][0-9A-Za-z.]*)['"]""", body)))
    if not versions:
        raise RuntimeError("cannot tell which pip version ansible-test bootstraps (read %s)" % source)
    return versions


def ensure_get_pip_stand_in() -> None:
    """Write the get-pip stand-in where ansible-test looks for a cached script.

    A genuine cached get-pip script (one without our mark) is left alone.
    """
    cache = Path(os.path.expanduser("~/.ansible/test/cache"))
    cache.mkdir(parents=True, exist_ok=True)
    for version in ansible_test_pip_versions():
        path = cache / ("get_pip_%s.py" % version.replace(".", "_"))
        if path.exists():
            current = path.read_text(encoding="utf-8", errors="replace")
            if not current.startswith(STAND_IN_MARK) or current == STAND_IN:
                continue
        tmp = path.with_name("%s.%d.tmp" % (path.name, os.getpid()))  # simultaneous runs never share one
        tmp.write_text(STAND_IN, encoding="utf-8")
        tmp.replace(path)
        log("wrote the get-pip %s stand-in: %s" % (version, path))


def is_excluded(relpath: str) -> bool:
    return any(relpath == prefix or relpath.startswith(prefix + "/") for prefix in EXCLUDED)


# Without git (a checkout made from an archive), these never belong to the collection either.
UNVERSIONED_SKIP = {"__pycache__", ".ruff_cache", ".pytest_cache", ".mypy_cache", ".tox", ".nox"}
UNVERSIONED_SKIP_SUFFIXES = (".pyc", ".pyo", ".tar.gz")


def checkout_files() -> list[str]:
    """Tracked files plus untracked, non-ignored ones, relative to the checkout."""
    if not (REPO / ".git").exists():
        log("%s is not a git work tree; taking every file except caches and %s" % (REPO, ", ".join(EXCLUDED)))
        return unversioned_files()
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError("cannot list the checkout's files with git: %s" % exc) from exc
    names = sorted({name.decode("utf-8", "surrogateescape") for name in out.split(b"\0") if name})
    # Tracked files deleted from the working tree are not part of what is tested.
    return [name for name in names if not is_excluded(name) and os.path.lexists(REPO / name)]


def unversioned_files() -> list[str]:
    found = []
    for top, dirs, names in os.walk(REPO):
        rel_top = os.path.relpath(top, REPO)
        rel_top = "" if rel_top == "." else rel_top + "/"
        dirs[:] = sorted(d for d in dirs if d not in UNVERSIONED_SKIP and not is_excluded(rel_top + d))
        found.extend(rel_top + n for n in names if not n.endswith(UNVERSIONED_SKIP_SUFFIXES))
    return sorted(found)


def collection_name() -> tuple[str, str]:
    text = (REPO / "galaxy.yml").read_text(encoding="utf-8")
    found = {}
    for key in ("namespace", "name"):
        match = re.search(r"^%s:\s*['\"]?([A-Za-z0-9_]+)" % key, text, re.MULTILINE)
        if not match:
            raise RuntimeError("galaxy.yml has no %s" % key)
        found[key] = match.group(1)
    return found["namespace"], found["name"]


def same_file(src: Path, dst: Path) -> bool:
    if src.is_symlink() or dst.is_symlink():
        return src.is_symlink() and dst.is_symlink() and os.readlink(src) == os.readlink(dst)
    try:
        a, b = src.stat(), dst.stat()
    except OSError:
        return False
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns and a.st_mode == b.st_mode


def mirror(files: list[str], dest: Path) -> None:
    """Make dest hold exactly files (plus ansible-test's own tests/output)."""
    wanted = set(files)
    for name in files:
        src, dst = REPO / name, dest / name
        if dst.exists() or dst.is_symlink():
            if same_file(src, dst):
                continue
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            else:
                dst.unlink()
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    # Remove what left the checkout, bottom-up so emptied directories go too.
    for top, dirs, names in os.walk(dest, topdown=False):
        rel_top = os.path.relpath(top, dest)
        rel_top = "" if rel_top == "." else rel_top + "/"
        if rel_top.startswith("tests/output/") or rel_top == "tests/output/":
            continue
        for name in names:
            if rel_top + name not in wanted:
                os.unlink(os.path.join(top, name))
        for name in dirs:
            path = os.path.join(top, name)
            if os.path.islink(path):
                if rel_top + name not in wanted:
                    os.unlink(path)
            elif rel_top + name != "tests/output" and not os.listdir(path):
                os.rmdir(path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One sanity run per mirror at a time; others wait their turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another sanity run uses %s; waiting for it" % path.parent)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_ansible_test(root: Path, python: str, extra: list[str]) -> tuple[int, list[str]]:
    """Run ansible-test sanity in root, echoing its output; return rc and what it reported as failed."""
    ansible_test = BIN / "ansible-test"
    if not ansible_test.exists():
        found = shutil.which("ansible-test")
        if not found:
            raise RuntimeError("ansible-test not found next to %s or on PATH" % sys.executable)
        ansible_test = Path(found)
    command = [str(ansible_test), "sanity", "--venv", "--python", python, "--color", "no", *extra]
    env = dict(os.environ)
    # ansible-test looks for pythonX.Y on PATH; prefer the interpreters next to this one.
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    log("in %s: %s" % (root, " ".join(command)))
    reported: list[str] = []
    listing = False  # inside "The N sanity test(s) listed below ... failed", one name per line
    with subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            sys.stdout.write(raw)
            sys.stdout.flush()
            line = raw.rstrip("\n")
            if line.startswith("FATAL: Command "):
                continue  # ansible-test's own re-run of itself failing: says nothing new
            if line.startswith(("ERROR:", "FATAL:")):
                listing = "listed below" in line
                reported.append(line)
            elif listing and line.strip():
                reported.append("    " + line.strip())
            elif "All targets skipped" in line:
                # Nothing was tested: a pass here would mean nothing.
                reported.append("ansible-test found nothing to test in %s" % root)
    rc = proc.returncode
    if rc == 0 and reported:
        rc = 1
    return rc, reported


def find_python(version: str) -> str | None:
    """An interpreter for version X.Y: on PATH, or among pyenv's installed versions."""
    candidates = [shutil.which("python%s" % version)]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    versions = Path(pyenv_root) / "versions"
    if versions.is_dir():
        candidates += [str(p / "bin" / "python") for p in sorted(versions.glob(version + ".*"), reverse=True)]
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                check=False,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


PARSE_CHECK = """
import sys
failed = 0
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        source = handle.read()
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        failed += 1
        print("%s:%s:%s: SyntaxError: %s" % (path, exc.lineno, exc.offset, exc.msg))
sys.exit(1 if failed else 0)
"""


def oldest_target_python() -> str | None:
    """The lowest X.Y tests/config.yml allows for modules (its python_requires)."""
    config = REPO / "tests" / "config.yml"
    if not config.exists():
        return None
    match = re.search(r"python_requires:\s*['\"]?\s*>=\s*([0-9]+\.[0-9]+)", config.read_text(encoding="utf-8"))
    return match.group(1) if match else None


def parse_checks(root: Path) -> list[str]:
    """Parse checks for Pythons ansible-test does not cover; return failures."""
    checks = []
    callbacks = sorted(str(p.relative_to(root)) for p in (root / "plugins" / "callback").glob("*.py"))
    if callbacks:
        checks.append(("2.7", callbacks, "callback plugins must parse on Python 2.7"))
    oldest = oldest_target_python()
    targets = sorted(
        str(p.relative_to(root)) for sub in ("modules", "module_utils") for p in (root / "plugins" / sub).rglob("*.py")
    )
    if oldest and targets:
        checks.append((oldest, targets, "target code must parse on Python %s (tests/config.yml)" % oldest))
    failures = []
    for version, files, why in checks:
        python = find_python(version)
        if python is None:
            log("SKIPPED parse check on Python %s (%s): no python%s found on PATH or in pyenv" % (version, why, version))
            continue
        out = subprocess.run([python, "-c", PARSE_CHECK, *files], cwd=root, capture_output=True, check=False, text=True)
        if out.returncode == 0:
            log("parse check on Python %s passed: %d file(s)" % (version, len(files)))
        else:
            details = (out.stdout + out.stderr).strip().splitlines()
            failures.append("parse check on Python %s failed (%s):" % (version, why))
            failures.extend("  " + line for line in details)
    return failures


def default_work_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    checkout = hashlib.sha256(str(REPO).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return Path(cache) / "perfstats.profiler" / ("sanity-%s" % checkout)


def inside_git_work_tree(path: Path) -> Path | None:
    for parent in (path, *path.parents):
        if (parent / ".git").exists():
            return parent
    return None


def run(args: argparse.Namespace, work: Path, extra: list[str]) -> int:
    started = time.monotonic()
    try:
        namespace, name = collection_name()
        ensure_get_pip_stand_in()
        files = checkout_files()
    except (OSError, RuntimeError) as exc:
        log("cannot run: %s" % exc)
        return 2
    enclosing = inside_git_work_tree(work)
    if enclosing is not None:
        log("cannot run in %s: it is inside the git work tree %s, where ansible-test sees no files" % (work, enclosing))
        return 2
    root = work / "ansible_collections" / namespace / name
    with locked(work / ".lock"):
        mirror(files, root)
        log("mirrored %d files of %s into %s" % (len(files), REPO, root))
        try:
            rc, reported = run_ansible_test(root, args.python, extra)
        except (OSError, RuntimeError) as exc:
            log("cannot run ansible-test: %s" % exc)
            return 2
        failures = [] if args.no_parse_checks else parse_checks(root)

    elapsed = time.monotonic() - started
    if rc == 0 and not failures:
        log("all sanity checks passed (%.0f s)" % elapsed)
        return 0
    print("", flush=True)
    log("FAILED (%.0f s):" % elapsed)
    if rc != 0:
        print("ansible-test sanity exited with %d; it reported:" % rc)
        for line in reported:
            print("  " + line)
        print("  (paths are relative to the collection root, the same as in the checkout)")
    for line in failures:
        print(line)
    sys.stdout.flush()
    return 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--python",
        default="%d.%d" % sys.version_info[:2],
        help="Python version ansible-test runs with (default: this interpreter's, %(default)s)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--work-dir",
        type=Path,
        default=default_work_dir(),
        help="where the ansible_collections tree is kept between runs (default: %(default)s)",
    )
    where.add_argument("--fresh", action="store_true", help="use a new temporary tree and remove it afterwards")
    parser.add_argument("--no-parse-checks", action="store_true", help="skip the Python 2.7 / oldest-target parse checks")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments passed to ansible-test sanity")
    args = parser.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    if not args.fresh:
        return run(args, args.work_dir.resolve(), extra)
    work = Path(tempfile.mkdtemp(prefix="perfstats-sanity-"))
    try:
        return run(args, work, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
