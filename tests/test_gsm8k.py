"""GSM8K: reading the final number out of what small models write, and loading the data."""

from __future__ import annotations

import json

import pytest

from coolfusion_local.errors import CoolfusionError
from coolfusion_local.measure.gsm8k import (
    DEFAULT_PROMPT,
    PROMPTS,
    build_prompt,
    extract_answer,
    gold_answer,
    is_correct,
    load_problems,
    normalize_number,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("48 / 2 = 24, 48 + 24 = 72\n#### 72", "72"),
        ("#### $1,234", "1234"),
        ("####72.", "72"),
        ("#### 18.00", "18"),
        ("#### 0.50", "0.5"),
        ("#### -3", "-3"),
        ("#### −3", "-3"),  # a Unicode minus
        ("#### **42**", "42"),
        ("#### 5 + 3 = 8", "8"),
        ("#### The answer is 9 apples", "9"),
        ("#### 72\nNext question: 3 + 4 = 7\n#### 7", "72"),  # the first stated answer counts
        # An echo of the requested format carries no number: the next rule decides.
        ("I will write '#### <number>' at the end.\nSo the answer is 12.", "12"),
        ("#### Final answer:\n\\[\n\\boxed{48}\n\\]", "48"),
        ("Therefore she needs \\(\\boxed{115}\\) more dollars.", "115"),
        ("\\boxed{\\$1,200}", "1200"),
        ("The answer is $90.00.", "90"),
        ("The final answer is: 35", "35"),
        ("Final answer: **42**", "42"),
        ("The answer is approximately 3.5 hours.", "3.5"),
        ("First 10, then the answer is 20, no wait, the answer is 30.", "30"),
        ("She has 3 apples and buys 9 more, so she has 12 apples.", "12"),
        ("It costs $1,000,000.", "1000000"),
        ("The total is " + "9" * 60 + "9999", "9" * 64),
        ("Days 3-5 are busy", "5"),
        ("Version v2 of the plan", None),
        ("I do not know.", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [("72", "72"), ("72.", "72"), ("$1,200.50", "1200.5"), ("-0.0", "0"), ("1e3", "1000"),
     (" 7 ", "7"), ("abc", None), ("nan", None), ("", None),
     # A model looping on digits (Gemma 270M did): longer than Decimal's 28-digit context.
     ("1" * 40, "1" * 40), ("2" * 30 + ".000", "2" * 30)],
)
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


def test_is_correct_compares_values_not_strings():
    assert is_correct("72.0", "72")
    assert is_correct("0.50", "0.5")
    assert not is_correct("73", "72")
    assert not is_correct(None, "72")


def test_gold_answer_takes_the_number_after_the_last_hashes():
    assert gold_answer("48/2 = <<48/2=24>>24\n#### 72") == "72"
    assert gold_answer("costs $1,000\n#### 1,000") == "1000"
    assert gold_answer("no marker here") is None


def test_prompt_holds_the_question_and_the_answer_format():
    prompt = build_prompt("  How many?  ")
    assert "Question: How many?" in prompt and "####" in prompt
    assert DEFAULT_PROMPT in PROMPTS
    assert all("{question}" in template for template in PROMPTS.values())


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def problem_line(question, number):
    return json.dumps({"question": question, "answer": f"work\n#### {number}"})


def test_load_problems_offset_limit_and_blank_lines(tmp_path):
    data = write_lines(tmp_path / "d.jsonl", [problem_line(f"q{i}", i) for i in range(3)] + [""]
                       + [problem_line(f"q{i}", i) for i in range(3, 6)])
    problems = load_problems(data, offset=2, limit=3)
    assert [(p.index, p.question, p.gold) for p in problems] == [(2, "q2", "2"), (3, "q3", "3"), (4, "q4", "4")]
    assert problems[1].line == 5  # the blank line 4 is skipped but counted
    assert len(load_problems(data)) == 6


def test_lines_after_the_limit_are_not_read(tmp_path):
    data = write_lines(tmp_path / "d.jsonl", [problem_line("q0", 1), "{broken"])
    assert len(load_problems(data, limit=1)) == 1


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "d.jsonl:2: not valid JSON"),
        ("[1, 2]", "d.jsonl:2: expected a JSON object"),
        (json.dumps({"question": "q"}), "d.jsonl:2: missing or empty 'answer'"),
        (json.dumps({"question": "", "answer": "#### 1"}), "d.jsonl:2: missing or empty 'question'"),
        (json.dumps({"question": "q", "answer": "just 5"}), "d.jsonl:2: the 'answer' does not end in '#### <number>'"),
    ],
)
def test_a_bad_line_is_one_error_naming_it(tmp_path, bad_line, message):
    data = write_lines(tmp_path / "d.jsonl", [problem_line("q0", 1), bad_line])
    with pytest.raises(CoolfusionError) as caught:
        load_problems(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_file_folder_and_empty_range(tmp_path):
    with pytest.raises(CoolfusionError, match="data file not found"):
        load_problems(tmp_path / "nope.jsonl")
    with pytest.raises(CoolfusionError, match="is a folder"):
        load_problems(tmp_path)
    data = write_lines(tmp_path / "d.jsonl", [problem_line("q0", 1)])
    with pytest.raises(CoolfusionError, match="no problems at --offset 5 \\(the file has 1\\)"):
        load_problems(data, offset=5)
