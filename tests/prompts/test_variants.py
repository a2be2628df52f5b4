"""``make_variants``: n request bodies for one idea, differing by style and seed."""

from __future__ import annotations

import pytest

from app.errors import ValidationError
from app.prompts.variants import MAX_VARIANTS, make_variants

BASE = {"prompt": "a lighthouse in a storm", "aspect_ratio": "16:9", "duration_ms": 5000}


def test_one_variant_is_the_request_itself() -> None:
    assert make_variants(BASE, 1) == [BASE]
    assert make_variants(BASE, 1) is not BASE


def test_variants_differ_by_seed_and_keep_everything_else() -> None:
    variants = make_variants(BASE, 4)
    assert len(variants) == 4
    assert len({v["seed"] for v in variants}) == 4
    for variant in variants:
        assert {k: v for k, v in variant.items() if k != "seed"} == BASE
        assert 0 <= variant["seed"] < 2**32 - 1
    assert "seed" not in BASE  # the input is not modified


def test_variants_are_deterministic_for_the_same_body() -> None:
    assert make_variants(BASE, 3) == make_variants(dict(BASE), 3)
    other = make_variants({**BASE, "prompt": "a lighthouse at dawn"}, 3)
    assert [v["seed"] for v in other] != [v["seed"] for v in make_variants(BASE, 3)]


def test_a_given_seed_is_the_first_variant_seed() -> None:
    variants = make_variants({**BASE, "seed": 42}, 3)
    assert [v["seed"] for v in variants] == [42, 43, 44]


def test_a_random_seed_request_still_gets_distinct_seeds() -> None:
    variants = make_variants({**BASE, "seed": -1}, 2)
    assert variants[0]["seed"] != variants[1]["seed"]
    assert all(v["seed"] >= 0 for v in variants)


def test_styles_are_cycled() -> None:
    variants = make_variants(BASE, 5, styles=["cinematic", "animated"])
    assert [v["style"] for v in variants] == [
        "cinematic",
        "animated",
        "cinematic",
        "animated",
        "cinematic",
    ]
    assert len({v["seed"] for v in variants}) == 5
    assert make_variants(BASE, 1, styles=["vintage"])[0]["style"] == "vintage"


@pytest.mark.parametrize("n", [0, -1, MAX_VARIANTS + 1])
def test_n_out_of_range_is_a_validation_error(n: int) -> None:
    with pytest.raises(ValidationError, match="n must be between"):
        make_variants(BASE, n)


def test_an_empty_style_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="styles"):
        make_variants(BASE, 2, styles=[])
