"""What the models panel says about a configured model, read from its GGUF header.

Only looks: `hub.model_status` never downloads, assembles or hashes, and the
GGUF reader maps the header without loading weights, so this is safe to run
in a plain worker thread while the engine thread loads models.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..models.gguf_info import read_gguf_info
from ..models.hub import model_status


@dataclass(frozen=True)
class ModelFacts:
    family: str = "?"
    quant: str = "?"
    size: str = "?"
    tokenizer: str = "?"
    source: str = ""
    note: str = ""  # e.g. "not assembled" when the file is not on disk yet
    parameters: int | None = None  # what the lead is chosen by (engine/lead.py)
    file_size: int | None = None


def human_size(n: int | None) -> str:
    if not n:
        return "?"
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def model_facts(spec) -> ModelFacts:
    facts = _file_facts(spec)
    if spec.is_remote:
        # A served model: the GGUF read here only lends its tokenizer; the weights are on the server.
        return replace(facts, quant="remote", size="served", note=facts.note or spec.url)
    return facts


def _file_facts(spec) -> ModelFacts:
    source = ""
    try:
        source = spec.describe_source()
    except Exception:
        pass
    try:
        status = model_status(spec)
    except Exception as error:
        return ModelFacts(source=source, note=_one_line(error))
    if status.path is None:
        state = getattr(status.state, "value", str(status.state))
        return ModelFacts(size=human_size(status.expected_size), source=source, note=state,
                          file_size=status.expected_size)
    try:
        info = read_gguf_info(status.path)
    except Exception as error:
        return ModelFacts(source=source, note=_one_line(error))
    tokenizer = info.tokenizer_pre or info.tokenizer_model or "?"
    if info.vocab_size:
        tokenizer += f" ({info.vocab_size // 1000}k vocab)" if info.vocab_size >= 1000 else f" ({info.vocab_size})"
    return ModelFacts(
        family=info.architecture or "?",
        quant=info.quant or "?",
        size=human_size(info.file_size),
        tokenizer=tokenizer,
        source=source,
        parameters=info.parameter_count,
        file_size=info.file_size,
    )


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
