"""The fusion engine: source models, boundaries, scoring and the Cool-Fusion loop.

Nothing here imports the UI, the CLI, models.toml (config/) or the model
sources (models/): they sit above it, and `coolfusion_local.fusion_engine`
composes them. Importing this package is cheap: llama.cpp loads with
`engine.source_model`, not here.
"""

from .events import (
    AnswerDone,
    AnswerReranked,
    Candidate,
    GenerationEvent,
    GenerationStats,
    LoadEvent,
    Message,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadStarted,
    ModelLoadWaiting,
    Notice,
    SegmentChosen,
    SoloAnswerStarted,
    SoloTextDelta,
)
from .modes import check_mode
from .sampling import CHAT, GREEDY, Sampling

__all__ = [
    "AnswerDone",
    "AnswerReranked",
    "CHAT",
    "Candidate",
    "GenerationEvent",
    "GREEDY",
    "GenerationStats",
    "LoadEvent",
    "Message",
    "ModelLoadFailed",
    "ModelLoadStarted",
    "ModelLoadWaiting",
    "ModelLoaded",
    "Notice",
    "Sampling",
    "SegmentChosen",
    "SoloAnswerStarted",
    "SoloTextDelta",
    "check_mode",
]
