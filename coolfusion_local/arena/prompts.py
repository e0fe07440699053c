"""Prompt files for `coolfusion arena run`: one prompt per line, or JSON Lines.

A line is a prompt as it stands, or, when it starts with `{`, a JSON object with a
`prompt` (or `question`) string and optionally a `system` string. Blank lines and
lines starting with `#` are skipped. A line that cannot be read is reported (one
line each, with its number) and the good ones still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import CoolfusionError

STARTER = "starter_prompts.txt"
MAX_PROMPT_CHARS = 8000


@dataclass(frozen=True)
class ArenaPrompt:
    line: int  # 1-based, in its file
    text: str
    system: str | None = None


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str

    def describe(self, path: str) -> str:
        return f"{path}:{self.line}: {self.reason}; skipped"


def starter_prompts_path() -> Path:
    return Path(str(resources.files(__package__).joinpath(STARTER)))


def read_prompts(path: Path) -> tuple[list[ArenaPrompt], list[BadLine]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CoolfusionError(f"no prompt file at {path}", exit_code=2) from None
    except IsADirectoryError:
        raise CoolfusionError(f"{path} is a folder, not a prompt file", exit_code=2) from None
    return parse_prompts(raw)


def parse_prompts(raw: bytes) -> tuple[list[ArenaPrompt], list[BadLine]]:
    prompts: list[ArenaPrompt] = []
    bad: list[BadLine] = []
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as error:
            bad.append(BadLine(number, f"not UTF-8 text (byte {error.start + 1})"))
            continue
        if number == 1:
            line = line.removeprefix("\ufeff")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("{"):
            prompt, problem = _json_prompt(stripped, number)
        else:
            prompt, problem = ArenaPrompt(number, stripped), None
        if problem is None and len(prompt.text) > MAX_PROMPT_CHARS:
            problem = f"the prompt is {len(prompt.text)} characters, more than {MAX_PROMPT_CHARS}"
        if problem is not None:
            bad.append(BadLine(number, problem))
        else:
            prompts.append(prompt)
    return prompts, bad


def _json_prompt(text: str, number: int) -> tuple[ArenaPrompt | None, str | None]:
    try:
        record = json.loads(text)
    except ValueError as error:
        return None, f"not valid JSON ({error.msg} at column {error.colno})"
    if not isinstance(record, dict):
        return None, "a JSON line must be an object with a \"prompt\""
    prompt = record.get("prompt", record.get("question"))
    if not isinstance(prompt, str) or not prompt.strip():
        return None, "the JSON object has no \"prompt\" (or \"question\") text"
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        return None, "\"system\" must be text"
    return ArenaPrompt(number, prompt.strip(), system or None), None
