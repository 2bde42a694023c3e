"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Harness, install_collection, perfstats_groups  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _ensure_collection_importable() -> None:
    """Make ``ansible_collections.perfstats.profiler`` importable from the checkout."""
    tree = REPO / "build" / "pytest-tree"
    link = tree / "ansible_collections" / "perfstats" / "profiler"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    if str(tree) not in sys.path:
        sys.path.insert(0, str(tree))


_ensure_collection_importable()


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_collection(tmp_path_factory.mktemp("collection"))


@pytest.fixture
def harness(collections_path: Path, tmp_path: Path) -> Harness:
    return Harness(collections=collections_path, base=tmp_path)


@pytest.fixture(autouse=True)
def no_leaked_cgroups():
    """Every test must remove every cgroup it (or a run it started) made."""
    before = perfstats_groups()
    yield
    leaked = perfstats_groups() - before
    assert not leaked, "cgroups left behind: %s" % sorted(leaked)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = perfstats_groups()
    if leaked:
        sys.stderr.write("\nperfstats cgroups left after the test session: %s\n" % sorted(leaked))
        session.exitstatus = 1
