"""GSM8K: the problems, the prompt each model sees, and reading a number out of an answer.

The data is GSM8K's JSONL (`question`, `answer` ending in `#### <number>`).
Small models rarely follow an answer format exactly, so `extract_answer`
tries the requested `#### N` line first, then the formats models fall back on
(`\\boxed{N}`, "the answer is N"), and only then the last number in the text.
Answers and golds compare as decimals, so "$1,200.00" equals "1200".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..errors import CoolfusionError

# Chat prompts tried on 10 problems with qwen-coder-0.5b alone (docs/eval-and-bench.md
# has the scores). The user message is the only turn: no system message, so
# base models with a plain template see the same text as chat models.
PROMPTS = {
    "steps": (
        "Solve this math problem step by step, then give the final answer on its own line "
        "as '#### <number>'.\n\nQuestion: {question}"
    ),
    "reason-first": (
        "Solve this math problem. First work it out step by step, showing each calculation. "
        "Then, on the last line, write '#### ' followed by the final number only.\n\nQuestion: {question}"
    ),
    "no-code": (
        "Solve this math problem. Work it out step by step in plain words and arithmetic, without "
        "writing code. Then, on the last line, write '#### ' followed by the final number only."
        "\n\nQuestion: {question}"
    ),
    "answer-is": (
        "{question}\n\nLet's think step by step. At the end, write \"The answer is <number>.\""
    ),
    "oneshot": (
        "Solve the math problem. Reason step by step, then write the final answer as '#### <number>'.\n\n"
        "Example question: Tom has 3 boxes with 12 pencils each. He gives away 10 pencils. "
        "How many pencils does he have left?\n"
        "Example answer: Tom has 3 * 12 = 36 pencils. After giving away 10 he has 36 - 10 = 26.\n"
        "#### 26\n\n"
        "Question: {question}\nAnswer:"
    ),
}
DEFAULT_PROMPT = "reason-first"

# A number as models write it: optional sign and $, thousands commas, decimals.
# The look-behind keeps "3-5" from reading as "-5" and "v2" from reading as "2".
_NUMBER = r"(?<![\w.])[-−]?\$?\s?\d(?:[\d,]*\d)?(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_HASHES_RE = re.compile(r"####[^\n]*")
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
# "The answer is 72", "Final answer: $72", "answer is **72**": a short gap of
# markup or words ("approximately") may sit between the phrase and the number.
_ANSWER_IS_RE = re.compile(r"answer\s*(?:is|:|=|is:)[^\d\n−-]{0,25}?(" + _NUMBER + ")", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    index: int  # position among the file's problems (0-based), stable across runs
    line: int  # line number in the file, for messages
    question: str
    gold: str  # the number after '####', normalized


def normalize_number(text: str) -> str | None:
    """"$1,200.50" -> "1200.5", "72." -> "72", "-3" -> "-3"; None when it is no number."""
    cleaned = text.strip().replace("−", "-").replace("$", "").replace(",", "").replace(" ", "")
    cleaned = cleaned.rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == 0:
        return "0"  # not "-0"
    if value == value.to_integral_value():
        return str(int(value))  # exact at any length (quantize() fails past 28 digits)
    return format(value.normalize(), "f")


def _first_number(text: str) -> str | None:
    match = _NUMBER_RE.search(text)
    return normalize_number(match.group(0)) if match else None


def extract_answer(text: str) -> str | None:
    """The final number an answer gives, normalized; None when it has no number at all.

    The first '#### N' wins: small models often state the answer and then ramble
    on (even into a new made-up problem with its own '####').
    """
    for match in _HASHES_RE.finditer(text):
        line = match.group(0)[4:]
        # "#### 5 + 3 = 8": the result follows the last '='.
        number = _first_number(line.rsplit("=", 1)[-1]) or _first_number(line)
        if number is not None:
            return number
    for match in _BOXED_RE.finditer(text):
        number = _first_number(match.group(1))
        if number is not None:
            return number
    matches = _ANSWER_IS_RE.findall(text)
    if matches:
        return normalize_number(matches[-1])
    numbers = _NUMBER_RE.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


def is_correct(extracted: str | None, gold: str) -> bool:
    if extracted is None:
        return False
    try:
        return Decimal(extracted) == Decimal(gold)
    except InvalidOperation:
        return False


def gold_answer(answer: str) -> str | None:
    """The number after the last '####' of a GSM8K reference answer."""
    if "####" not in answer:
        return None
    return normalize_number(answer.rsplit("####", 1)[1])


def build_prompt(question: str, prompt: str = DEFAULT_PROMPT) -> str:
    return PROMPTS[prompt].format(question=question.strip())


def load_problems(path: Path, offset: int = 0, limit: int | None = None) -> list[Problem]:
    """Problems `offset` .. `offset + limit - 1` of a GSM8K JSONL file.

    Lines after the last wanted problem are not read. A bad line is a
    CoolfusionError naming the file and line. Blank lines are skipped.
    """
    path = Path(path)
    if not path.exists():
        raise CoolfusionError(f"{path}: data file not found; pass a GSM8K .jsonl file with --data", exit_code=2)
    if path.is_dir():
        raise CoolfusionError(f"{path}: is a folder; pass the .jsonl file inside it with --data", exit_code=2)
    end = None if limit is None else offset + limit
    problems: list[Problem] = []
    index = 0
    try:
        with path.open(encoding="utf-8") as stream:
            for line_number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                if end is not None and index >= end:
                    break
                if index >= offset:
                    problems.append(_parse_line(path, line_number, line, index))
                index += 1
    except UnicodeDecodeError as error:
        raise CoolfusionError(f"{path}: not UTF-8 text (byte {error.start} of a line); save it as UTF-8",
                              exit_code=2) from None
    except OSError as error:
        raise CoolfusionError(f"{path}: cannot read it ({error.strerror})", exit_code=2) from None
    if not problems:
        raise CoolfusionError(f"{path}: no problems at --offset {offset} (the file has {index})", exit_code=2)
    return problems


def _parse_line(path: Path, line_number: int, line: str, index: int) -> Problem:
    where = f"{path}:{line_number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CoolfusionError(f"{where}: not valid JSON ({error.msg}, column {error.colno})", exit_code=2) from None
    if not isinstance(record, dict):
        raise CoolfusionError(f"{where}: expected a JSON object with 'question' and 'answer'", exit_code=2)
    question, answer = record.get("question"), record.get("answer")
    for key, value in (("question", question), ("answer", answer)):
        if not isinstance(value, str) or not value.strip():
            raise CoolfusionError(f"{where}: missing or empty {key!r} (GSM8K lines have 'question' and 'answer')",
                                  exit_code=2)
    gold = gold_answer(answer)
    if gold is None:
        raise CoolfusionError(f"{where}: the 'answer' does not end in '#### <number>'", exit_code=2)
    return Problem(index=index, line=line_number, question=question, gold=gold)
