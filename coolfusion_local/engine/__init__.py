"""The fusion engine: source models, boundaries, scoring and the Cool-Fusion loop.

Nothing here imports the UI or the CLI; they consume the engine's events.
"""

from .engine import FusionEngine, ModelStatus, check_mode
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
from .sampling import CHAT, GREEDY, Sampling

__all__ = [
    "AnswerDone",
    "AnswerReranked",
    "CHAT",
    "Candidate",
    "FusionEngine",
    "GenerationEvent",
    "GREEDY",
    "GenerationStats",
    "LoadEvent",
    "Message",
    "ModelLoadFailed",
    "ModelLoadStarted",
    "ModelLoadWaiting",
    "ModelLoaded",
    "ModelStatus",
    "Notice",
    "Sampling",
    "SegmentChosen",
    "SoloAnswerStarted",
    "SoloTextDelta",
    "check_mode",
]
