"""The training-time study's arithmetic: its cases, the moving average, the speed and the time to a loss."""

from __future__ import annotations

import pytest

from mlops.training.study import Case, StudyConfig, cases, measure, moving_average, seconds_to


def test_each_batch_size_has_one_process_then_every_strategy_at_every_larger_count():
    planned = cases(StudyConfig(processes=(2, 1, 4), strategies=("ddp", "fsdp"), batch_sizes=(8, 16)))
    assert planned[:5] == [Case(1, "none", 8), Case(2, "ddp", 8), Case(2, "fsdp", 8), Case(4, "ddp", 8), Case(4, "fsdp", 8)]
    assert len(planned) == 10 and planned[5] == Case(1, "none", 16)


def test_the_moving_average_starts_with_what_it_has():
    assert moving_average([5.0, 3.0, 1.0, 1.0, 0.0, 0.0, 5.0], window=3) == [5.0, 4.0, 3.0, 5 / 3, 2 / 3, 1 / 3, 5 / 3]


def test_speed_is_after_the_first_step():
    losses, elapsed = [4.0] + [1.0] * 11, [10.0 + i for i in range(12)]
    measured = measure(losses, elapsed, batch_size=8)
    assert measured["steps_per_second"] == 1.0 and measured["pairs_per_second"] == 8.0
    assert measured["final_loss"] == pytest.approx(1.0)  # the last 10 steps


def test_the_time_to_the_target_is_when_the_average_reaches_it_to_stay():
    losses, elapsed = [4.0, 3.0, 2.0, 9.0, 1.0, 1.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    # 10-step averages here (all the steps so far): 4, 3.5, 3, 4.5, 3.8, 3.33
    assert seconds_to(3.5, losses, elapsed) == 15.0 and seconds_to(4.0, losses, elapsed) == 14.0
    assert seconds_to(4.5, losses, elapsed) == 10.0
    assert seconds_to(3.0, losses, elapsed) is None  # reached at 12 s, but not to stay
