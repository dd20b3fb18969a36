import pytest
from galgen._presets import REPRODUCE_PRESETS, TRAIN_PRESETS, resolve


def test_overrides_are_typed_and_nested():
    cfg = resolve("pmf-1m", ["train.steps=7", "objective.loss=huber", "train.lr=1e-3"])
    assert cfg["train"]["steps"] == 7 and isinstance(cfg["train"]["steps"], int)
    assert cfg["objective"]["loss"] == "huber"
    assert cfg["train"]["lr"] == pytest.approx(1e-3)
    # the preset table itself is untouched
    assert TRAIN_PRESETS["pmf-1m"]["train"]["steps"] != 7


@pytest.mark.parametrize("bad", ["steps=3", "model.x=1", "train.steps"])
def test_bad_override_names_the_key(bad):
    with pytest.raises(ValueError, match="--set"):
        resolve("ddpm-tiny", [bad])


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="ddpm-paper"):
        resolve("nope")


def test_ablation_grid_of_table3_is_present():
    grid = {
        (c["backbone"]["preset"], c["objective"]["loss"], c["objective"]["label_smoothing"] > 0)
        for c in TRAIN_PRESETS.values()
        if c["model"] == "pmf"
    }
    assert {
        ("pmf-1m", "l2", True),
        ("pmf-1m", "huber", True),
        ("pmf-1m", "huber", False),
        ("pmf-25m", "l2", True),
        ("pmf-25m", "l2", False),
    } <= grid
    assert REPRODUCE_PRESETS["paper"]["ddpm_steps"] == 1000
