"""The fuzz harness's seeds and every finding it ever made (fuzz/crashes/), replayed through the real
targets: each one is refused in one line or accepted, never an uncaught exception. The timed,
coverage-guided runs (60 s per target) are in .ci/run: fuzz/run.py all --seconds 60."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ))

from run import NAMES, findings, mutate, seeds  # noqa: E402
from targets import TARGETS  # noqa: E402


def _cases():
    for name in NAMES:
        for path in sorted((FUZZ / "corpus" / name).iterdir()):
            yield pytest.param(name, path, id=f"{name}-seed-{path.name}")
        for path in findings(name):
            yield pytest.param(name, path, id=f"{name}-finding-{path.name}")


@pytest.mark.parametrize("name, path", list(_cases()))
def test_replays_without_an_uncaught_exception(name, path):
    TARGETS[name](path.read_bytes())


def test_every_target_has_seeds_and_every_finding_says_what_it_was():
    for name in NAMES:
        assert seeds(name), name
        for path in findings(name):
            assert path.with_suffix(".txt").read_text().strip(), path


def test_a_short_burst_of_mutations_finds_nothing():
    """A few thousand mutated inputs per target, in-process (no coverage feedback): a quick version of
    what .ci/run does for a minute each."""
    import random

    rng = random.Random(1)
    for name in NAMES:
        pool = seeds(name)
        for _ in range(300 if name == "http" else 1500):
            TARGETS[name](mutate(rng.choice(pool), rng, pool, 65536))
