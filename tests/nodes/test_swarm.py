"""A swarm of seeds: the seeds parsed, one seed played in this process, many in worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes.swarm import Job, parse_seeds, play_seed, swarm
from tests.helpers import ROOT

#: Fails for the seeds whose delay (drawn between 1 and 10 s) lets more than 6 ticks through (t = 0..6).
SOMETIMES = """\
nodes: [clock, iopin, buzzer]
params: {clock: {tacks: 0}}
steps:
  - delay: 1s..10s
  - expect-count: {key: clock/tick, at-most: 6}
"""


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("7", [7]), ("1-4", [1, 2, 3, 4]), ("1,5,10-12", [1, 5, 10, 11, 12]), ("3-4,1-4", [3, 4, 1, 2]), ("0", [0])],
)
def test_seeds_parsed(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "4-1", "1-", "-3", "1,,2"])
def test_bad_seeds_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"seeds|lower to the higher"):
        parse_seeds(text)


def sometimes(tmp_path: Path) -> Job:
    path = tmp_path / "sometimes.yaml"
    path.write_text(SOMETIMES)
    return Job(scenario=str(path), grid=str(ROOT / "grid.yaml"))


def test_one_seed_played_here_says_how_it_went(tmp_path: Path) -> None:
    """A seed's outcome: its failure (the step's line, what was seen, when) or None, and how long it took."""
    job = sometimes(tmp_path)
    outcomes = [play_seed(job, seed) for seed in range(1, 6)]
    failed = [o for o in outcomes if o.failure is not None]
    assert failed and len(failed) < len(outcomes)  # the draws differ from seed to seed
    for outcome in failed:
        assert outcome.failure.startswith(f"{job.scenario}:5: expect-count clock/tick: ")
        assert outcome.simulated >= 6.0
    assert play_seed(job, failed[0].seed).failure == failed[0].failure  # the same again


@pytest.mark.e2e
def test_a_swarm_plays_every_seed_in_worker_processes_and_keeps_their_order(tmp_path: Path) -> None:
    job = sometimes(tmp_path)
    told = []
    outcomes = swarm(job, range(1, 6), workers=2, done=told.append)
    assert [o.seed for o in outcomes] == list(range(1, 6))
    assert sorted(o.seed for o in told) == list(range(1, 6))
    assert [o.failure for o in outcomes] == [play_seed(job, seed).failure for seed in range(1, 6)]
