"""Where a run's files go under ansible-runner."""

from __future__ import annotations

from ansible_collections.perfstats.profiler.plugins.plugin_utils._runner_support import (
    choose_output_dir,
    runner_output_dir,
)


def test_outside_runner_there_is_no_runner_dir() -> None:
    assert runner_output_dir({}) is None
    assert runner_output_dir({"AWX_ISOLATED_DATA_DIR": ""}) is None


def test_a_relative_artifact_dir_is_not_trusted() -> None:
    assert runner_output_dir({"AWX_ISOLATED_DATA_DIR": "artifacts/1"}) is None


def test_the_default_moves_beneath_the_artifact_dir() -> None:
    env = {"AWX_ISOLATED_DATA_DIR": "/srv/job/artifacts/42"}
    chosen, origin = choose_output_dir("/home/u/.ansible/perfstats", "default", env)
    assert chosen == "/srv/job/artifacts/42/perfstats"
    assert origin.startswith("default") and "ansible-runner" in origin


def test_a_chosen_output_dir_wins_over_the_artifact_dir() -> None:
    env = {"AWX_ISOLATED_DATA_DIR": "/srv/job/artifacts/42"}
    for origin in ("env: PERFSTATS_OUTPUT_DIR", "ini: /etc/ansible/ansible.cfg"):
        assert choose_output_dir("/data/perf", origin, env) == ("/data/perf", origin)


def test_the_default_stays_outside_runner() -> None:
    assert choose_output_dir("/home/u/.ansible/perfstats", "default", {}) == ("/home/u/.ansible/perfstats", "default")
