"""Fair training-speed figures from a run's per-epoch seconds."""

import pytest

from effunet.run import epoch_timing


def history(seconds):
    return [{"epoch": k + 1, "seconds": s} for k, s in enumerate(seconds)]


def test_first_epoch_apart_median_of_the_rest_and_time_to_best():
    # epoch 1 builds the graph (36 s); then 1, 3, 2, 100 (a hiccup), 2 s
    timing = epoch_timing(history([36.0, 1.0, 3.0, 2.0, 100.0, 2.0]), best_epoch=3, train_images=50)
    assert timing["first_epoch_seconds"] == 36.0
    assert timing["seconds_per_epoch"] == 2.0  # median of 1, 3, 2, 100, 2
    assert timing["seconds_to_best"] == 40.0  # 36 + 1 + 3
    assert timing["train_images_per_s"] == 25.0


def test_even_number_of_later_epochs_and_a_single_epoch():
    assert epoch_timing(history([9.0, 1.0, 3.0]), 2, 10)["seconds_per_epoch"] == 2.0
    single = epoch_timing(history([5.0]), 1, 10)
    assert single["seconds_per_epoch"] == single["first_epoch_seconds"] == single["seconds_to_best"] == 5.0
    assert single["train_images_per_s"] == pytest.approx(2.0)
