"""A backtest range against the train and validation ranges a model's manifest records."""

from __future__ import annotations

from datetime import timedelta

from drl_trading.common.domain import Timeframe, TimeRange
from drl_trading.evaluation.training_overlap import check_overlap, seen_ranges
from drl_trading.training.core.dataset import make_splits

# 2024-01-01 .. 01-21, 5m bars: train .. 01-15 (less a 1h embargo), validation 01-15 .. 01-18
# (less the embargo), test 01-18 .. 01-21
SPLITS = make_splits(
    TimeRange.parse("2024-01-01", "2024-01-21"),
    Timeframe.M5,
    validation_fraction=0.15,
    test_fraction=0.15,
    embargo=timedelta(hours=1),
)
TRAINING = {"symbols": ["BTCUSDT", "ETHUSDT"], "splits": SPLITS.describe()}


def test_the_recorded_splits_are_read_back() -> None:
    parts = seen_ranges(TRAINING)
    assert [p.part for p in parts] == ["train", "validation"]
    assert parts[0].range == SPLITS.final.train
    assert parts[1].range == SPLITS.final.validation


def test_the_test_range_and_later_are_out_of_sample() -> None:
    check = check_overlap(TRAINING, ["BTCUSDT"], SPLITS.test)
    assert check.checked and check.overlaps == ()
    assert check.warnings() == []
    assert check.summary == "none"
    later = check_overlap(TRAINING, ["BTCUSDT"], TimeRange.parse("2024-02-01", "2024-03-01"))
    assert later.overlaps == ()


def test_a_range_across_validation_and_test_names_both_ranges_and_the_overlap() -> None:
    rng = TimeRange.parse("2024-01-17", "2024-01-21")
    check = check_overlap(TRAINING, ["BTCUSDT", "ETHUSDT"], rng)
    (overlap,) = check.overlaps
    validation = SPLITS.final.validation
    assert overlap.part == "validation"
    assert overlap.seen == validation
    assert overlap.overlap == TimeRange(rng.start, validation.end)
    assert overlap.symbols == ("BTCUSDT", "ETHUSDT")
    (line,) = check.warnings()
    assert line.startswith("BTCUSDT, ETHUSDT: the backtest range 2024-01-17 00:00 .. 2024-01-21")
    assert (
        f"validation range {validation.start:%Y-%m-%d %H:%M} .. {validation.end:%Y-%m-%d %H:%M}"
        in line
    )
    assert f"on 2024-01-17 00:00 .. {validation.end:%Y-%m-%d %H:%M} UTC" in line
    assert "in-sample" in line
    assert check.summary == "validation"
    assert check.to_dict()["overlaps"][0]["overlap"] == [
        rng.start.isoformat(),
        validation.end.isoformat(),
    ]


def test_the_whole_training_range_overlaps_train_and_validation() -> None:
    check = check_overlap(TRAINING, ["BTCUSDT"], TimeRange.parse("2024-01-01", "2024-01-21"))
    assert [o.part for o in check.overlaps] == ["train", "validation"]
    assert check.overlaps[0].overlap == SPLITS.final.train
    assert check.summary == "train,validation"


def test_ranges_that_only_touch_do_not_overlap() -> None:
    train = SPLITS.final.train
    touching = TimeRange(train.end, SPLITS.final.validation.start)  # the embargo
    assert check_overlap(TRAINING, ["BTCUSDT"], touching).overlaps == ()


def test_only_symbols_the_model_trained_on_are_in_sample() -> None:
    rng = TimeRange.parse("2024-01-05", "2024-01-06")
    assert check_overlap(TRAINING, ["SOLUSDT"], rng).overlaps == ()
    (overlap,) = check_overlap(TRAINING, ["SOLUSDT", "ETHUSDT"], rng).overlaps
    assert overlap.symbols == ("ETHUSDT",)
    # a manifest that does not list its symbols: every symbol is taken as trained on
    (anyone,) = check_overlap({"splits": SPLITS.describe()}, ["SOLUSDT"], rng).overlaps
    assert anyone.symbols == ("SOLUSDT",)


def test_walk_forward_folds_are_each_checked() -> None:
    splits = make_splits(
        TimeRange.parse("2024-01-01", "2024-01-31"),
        Timeframe.M5,
        validation_fraction=0.1,
        test_fraction=0.1,
        embargo=timedelta(0),
        folds=2,
    )
    training = {"symbols": ["BTCUSDT"], "splits": splits.describe()}
    fold0_validation = splits.folds[0].validation
    check = check_overlap(training, ["BTCUSDT"], fold0_validation)
    assert {o.part for o in check.overlaps} == {"fold0.validation", "fold1.train"}


def test_a_model_without_recorded_ranges_says_the_check_could_not_be_made() -> None:
    rng = TimeRange.parse("2024-01-01", "2024-01-02")
    for training, reason in (
        ({}, "records no training splits"),
        ({"splits": {"test": "2024-01-01 .. 2024-01-02"}}, "no train or validation range"),
        ({"splits": {"train": "2024-01-01 to 2024-01-02"}}, "is not 'START .. END'"),
    ):
        check = check_overlap(training, ["BTCUSDT"], rng)
        assert not check.checked and reason in check.reason
        (line,) = check.warnings()
        assert line.startswith("overlap with the model's training and validation ranges could")
        assert check.summary == "unchecked"
        assert check.to_dict()["checked"] is False
