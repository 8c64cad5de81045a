"""How a search sizes its trials from the Ray cluster it runs on (ray.cluster_resources(): a dict of totals, "CPU" and
"GPU" present only where the cluster has them)."""

from __future__ import annotations

import pytest

from mlops.evaluation.tune import trial_resources


@pytest.mark.parametrize(("cluster", "per_trial"), [
    ({"CPU": 2.0, "memory": 8e9}, {"cpu": 2, "gpu": 0}),                # this machine: one trial at a time, every core
    ({"CPU": 32.0, "GPU": 4.0}, {"cpu": 8, "gpu": 1}),                   # a GPU node: four side by side
    ({"CPU": 0.0, "GPU": 2.0}, {"cpu": 1, "gpu": 1}),                    # GPUs only on workers that report no CPUs
    ({}, {"cpu": 1, "gpu": 0}),
])
def test_a_trial_takes_one_gpu_and_its_share_of_the_cpus(cluster: dict, per_trial: dict):
    assert trial_resources(cluster) == per_trial
