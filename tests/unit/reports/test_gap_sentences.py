"""The report's sentence on which population its verdicts speak for (`gap_sentences`)."""

from __future__ import annotations

from pipeline.reports.gap_sentences import population_text

SIZES = {"train": 45, "val": 15, "test": 21}


def test_the_verdicts_speak_for_splits_drawn_from_the_pool() -> None:
    text = population_text({"splits": "per_seed", "pool_size": 81, "sizes": SIZES})
    assert "splits drawn from this pool of 81 examples" in text
    assert "its own train/val/test split" in text
    assert "this one split of the data" in population_text({"splits": "fixed", "sizes": SIZES})


def test_an_official_test_set_is_named_as_what_every_seed_is_tested_on() -> None:
    official = {"test_split": "official", "pool_size": 81, "sizes": SIZES}
    text = population_text({**official, "splits": "per_seed"})
    assert text == (
        "The verdicts speak for train/val splits drawn from the dataset's official train set, "
        "tested on the dataset's official test set (21 examples): each seed draws its own "
        "train/val split, which every variant shares under that seed, as well as its initial "
        "weights, batch order and dropout."
    )
    text = population_text({**official, "splits": "fixed"})
    assert text.startswith("The verdicts speak for this one train/val split of the dataset's")
    assert "official test set (21 examples)" in text
