"""The shared rules that keep names in error messages short (plain functions)."""

from __future__ import annotations

from mlplatform.common.input_problems import InputProblem, describe_problems
from mlplatform.common.summaries import shorten, summarise_names


def test_shorten_keeps_short_texts_and_marks_a_cut() -> None:
    assert shorten("amount") == "amount"
    assert shorten("a" * 64) == "a" * 64
    assert shorten("a" * 65) == "a" * 63 + "…"
    assert len(shorten("b" * 100_000, width=10)) == 10


def test_summarise_names_lists_the_first_ones_and_counts_the_rest() -> None:
    assert summarise_names(["a", "b"]) == "a, b"
    assert summarise_names([f"c{i}" for i in range(25)], limit=3) == "c0, c1, c2 and 22 more"
    assert summarise_names(["x" * 100], width=5) == "xxxx…"
    assert summarise_names(["a", "b"], limit=0) == "2 names"
    assert summarise_names(range(3)) == "0, 1, 2"


def test_quoted_names_are_cut_before_they_are_quoted() -> None:
    control, plain = "\x00" * 100, "q" * 100
    problems = [InputProblem(control, "bad"), InputProblem(plain, "bad")]
    cut_control, cut_plain = control[:63] + "…", plain[:63] + "…"
    assert describe_problems(problems) == f"columns {cut_control!r}, {cut_plain!r}: bad"


def test_problems_sharing_a_message_are_grouped_within_one_budget_of_names() -> None:
    problems = [
        InputProblem(None, "the frame has no rows; expected at least one"),
        *(InputProblem(f"u{i}", "not an input of the model") for i in range(3)),
        InputProblem("v", "missing; expected a double column"),
        InputProblem("w", "missing; expected a double column"),
        InputProblem("z", "expected bool, got double"),
    ]
    assert describe_problems(problems) == (
        "the frame has no rows; expected at least one; "
        "columns 'u0', 'u1', 'u2': not an input of the model; "
        "columns 'v', 'w': missing; expected a double column; "
        "column 'z': expected bool, got double"
    )
    assert describe_problems(problems, limit=4) == (
        "the frame has no rows; expected at least one; "
        "columns 'u0', 'u1', 'u2': not an input of the model; "
        "columns 'v' and 1 more: missing; expected a double column; "
        "1 more columns with other problems"
    )
