"""`FusionEngine`: the configured models, loaded, and one `generate()` for every mode.

This is the library's front door (`from coolfusion_local import FusionEngine`)
and the one place that composes the layers: models.toml (config/), where each
model comes from (models/) and the fusion itself (engine/, which knows
neither of the others). The CLI, the chat UI, eval and bench never touch
llama.cpp themselves.
llama.cpp contexts are not thread-safe, so every public call takes one lock:
callers may use any thread, one call runs at a time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generator, Iterator, Sequence

from .config import Config, ModelSpec, load_config as read_config
from .engine.events import (
    AnswerDone,
    AnswerReranked,
    GenerationEvent,
    GenerationStats,
    LoadEvent,
    Message,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadStarted,
    ModelLoadWaiting,
    Notice,
)
from .engine.drafting import DraftSettings
from .engine.lead import Standing
from .engine.members import Member, MemberModel
from .engine.modes import answer_settings, check_mode, mode_named, solo_name
from .engine.prompts import ChatFormat, TemplateError
from .engine.rerank import rank_answers
from .engine.sampling import GREEDY, Sampling
from .engine.scoring import ScorePolicy
from .errors import CoolfusionError, describe_os_error
from .models import integrity
from .models.hub import resolve_model_path
from .models.preflight import preflight
from .models.pypi import OFFLINE_MODELS
from .models.offload import OffloadPlanner
from .models.probe_candidates import local_models
from .runtime.extra_buffers import ExtraBuffers, check_loadable, decide as decide_extra_buffers, pending_probe


def load_config(path: Path | None = None) -> Config:
    """Read and validate models.toml (`path` None: `config.find_config_file()`), knowing the
    PyPI-carried models this install can assemble (models/pypi.py)."""
    return read_config(path, offline_models=tuple(OFFLINE_MODELS))


@dataclass
class ModelStatus:
    spec: ModelSpec
    state: str  # "unloaded" | "loading" | "loaded" | "failed" | "disabled"
    reason: str | None = None
    info: ModelLoaded | None = None
    progress: float = 0.0


def chat_format_for(spec: ModelSpec, model: MemberModel) -> tuple[ChatFormat, str]:
    """The model's chat format and where it came from ("gguf", "plain", "override", ...)."""
    bos = model.token_text(model.bos_token) if model.bos_token >= 0 else ""
    eos = model.token_text(model.eos_token) if model.eos_token >= 0 else ""
    if spec.chat_template is not None:
        kind = "plain" if spec.chat_template.strip() == "plain" else "override"
        chat = ChatFormat(spec.chat_template, bos_token=bos, eos_token=eos)
        try:  # the user's own template: a broken one fails this model's load, in one line
            chat.render([Message("user", "u")])
        except TemplateError as error:
            raise TemplateError(f"model {spec.name!r}: chat_template in models.toml: {error}") from None
        return chat, kind
    template = model.chat_template()
    if not template:
        return ChatFormat(None), "plain (the GGUF has no chat template)"
    try:
        chat = ChatFormat(template, bos_token=bos, eos_token=eos)
        chat.render([Message("system", "s"), Message("user", "u"), Message("assistant", "a"), Message("user", "u")])
    except TemplateError as error:
        try:
            chat = ChatFormat(template, bos_token=bos, eos_token=eos)
            chat.render([Message("user", "u"), Message("assistant", "a"), Message("user", "u")])
        except TemplateError:
            return ChatFormat(None), f"plain ({error})"
    return chat, "gguf"


class FusionEngine:
    def __init__(self, config: Config, *, mode: str | None = None, policy: ScorePolicy | None = None):
        self.config = config
        self._names = [spec.name for spec in config.models]
        self._status = {
            spec.name: ModelStatus(spec, "unloaded" if spec.enabled else "disabled") for spec in config.models
        }
        self._members: dict[str, Member] = {}
        # Which models take part: models.toml's `enabled`, then set_enabled().
        self._enabled = {spec.name: spec.enabled for spec in config.models}
        self._lock = threading.RLock()
        self.policy = policy or ScorePolicy.from_config(config.fusion)
        self._mode = check_mode(mode or config.fusion.mode, self._names)
        # Whether llama.cpp may use its extra CPU buffer types here; decided at the
        # first local load, with that model as the probe's (runtime/extra_buffers.py).
        self.cpu_extra_buffers: ExtraBuffers | None = None
        # Each local member's GPU layers: the lead first, the rest as they fit (models/offload.py).
        self._offload = OffloadPlanner(config.enabled_models)

    # ------------------------------------------------------------------ models

    @property
    def model_names(self) -> list[str]:
        return list(self._names)

    def status(self, name: str) -> ModelStatus:
        return self._status[name]

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_mode(value, self._names)

    def set_enabled(self, name: str, enabled: bool) -> None:
        status = self._status[name]
        self._enabled[name] = enabled
        if enabled and status.state == "disabled":
            status.state = "loaded" if name in self._members else "unloaded"
        elif not enabled and status.state != "failed":
            status.state = "disabled"

    def member(self, name: str) -> Member:
        return self._members[name]

    def load(self, names: Sequence[str] | None = None) -> Iterator[LoadEvent]:
        """Load every enabled model (or `names`) not loaded yet, one after another."""
        wanted = list(names) if names is not None else [n for n in self._names if self._status[n].state == "unloaded"]
        solo = solo_name(self._mode)
        if names is None and solo and solo not in self._members and self._status[solo].state == "disabled":
            wanted.append(solo)
        for name in wanted:
            if name in self._members:
                continue
            with self._lock:
                yield from self._load_one(name)

    def _load_one(self, name: str) -> Iterator[LoadEvent]:
        status = self._status[name]
        spec = status.spec
        status.state, status.reason, status.progress = "loading", None, 0.0
        yield ModelLoadStarted(name)
        started = time.perf_counter()
        try:
            # Deliberately lazy, the only llama.cpp imports on this path: `coolfusion --help`,
            # `load_config` and building an engine must not load llama.cpp; loading a model does.
            from .models.local import load_local
            from .models.remote.load import load_remote

            path = resolve_model_path(spec)

            def on_progress(fraction: float) -> None:
                status.progress = fraction

            if spec.is_remote:  # served over HTTP; the file gives only its tokenizer
                model, notices = load_remote(spec, path, progress=on_progress)
            else:
                notices = preflight(spec, path)  # bad files and too-big models: one line, before llama.cpp
                notices += yield from self._decide_cpu_extra_buffers(name, path)
                gpu_layers = self._offload.layers_for(spec, path)  # models.toml's, else the device fit's
                notices += [line for line in [self._offload.take_summary()] if line]
                model = load_local(spec, path, progress=on_progress, cpu_extra_buffers=self.cpu_extra_buffers.enabled,
                                   n_gpu_layers=gpu_layers)
            notices += integrity.take_warnings()  # e.g. a read-only cache: loads all the same
            chat, template_kind = chat_format_for(spec, model)
        except CoolfusionError as error:
            status.state, status.reason = "failed", str(error)
            yield ModelLoadFailed(name, str(error))
            return
        except OSError as error:  # assembling or reading it: a full disk, a read-only cache...
            status.state, status.reason = "failed", f"model {name!r}: {describe_os_error(error)}"
            yield ModelLoadFailed(name, status.reason)
            return
        except Exception as error:  # a broken file can fail anywhere in llama.cpp's loader
            status.state, status.reason = "failed", f"cannot load {name!r}: {type(error).__name__}: {error}"
            yield ModelLoadFailed(name, status.reason)
            return
        # A served model's file only lends the tokenizer: its size says nothing of the model.
        size = None if spec.is_remote else Path(path).stat().st_size
        standing = Standing(name, spec.lead, spec.weight, model.n_params, size)
        self._members[name] = Member(name, model, chat, spec.weight, standing, spec.temperature)
        info = ModelLoaded(
            model=name,
            seconds=time.perf_counter() - started,
            n_gpu_layers=model.n_gpu_layers,
            n_layers=model.n_layers,
            n_ctx=model.n_ctx,
            vocab_size=model.vocab_size,
            chat_template=template_kind,
            notices=tuple(notices),
            cpu_extra_buffers=None if spec.is_remote else self.cpu_extra_buffers.describe(),
            device=getattr(model, "device", None),
        )
        # A model loaded only to answer alone (solo:NAME) stays out of fusion.
        status.state = "loaded" if self._enabled[name] else "disabled"
        status.info, status.progress = info, 1.0
        yield info

    def _decide_cpu_extra_buffers(self, name: str, path: Path) -> Generator[LoadEvent, None, list[str]]:
        """Decide once per engine (the probe loads the smallest local model; a line first where it
        runs); returns a note for the user when they are off."""
        first = self.cpu_extra_buffers is None
        if first:
            setting, local = self.config.runtime.cpu_extra_buffers, local_models(self.config, loading=(name, path))
            waiting = pending_probe(setting, probe_model=path, local_models=local)
            if waiting:
                yield ModelLoadWaiting(name, waiting)
            source = str(self.config.source) if self.config.source else "models.toml"
            self.cpu_extra_buffers = decide_extra_buffers(setting, probe_model=path, set_in=source, local_models=local)
        check_loadable(self.cpu_extra_buffers)  # every local load, where llama.cpp would crash
        if not first or self.cpu_extra_buffers.enabled:
            return []
        return [f"llama.cpp's extra CPU buffer types are off: {self.cpu_extra_buffers.reason}"]

    def _active_members(self, mode: str) -> list[Member]:
        name = solo_name(mode)
        if name is not None:
            if name not in self._members:
                reason = self._status[name].reason or "it is not loaded"
                raise CoolfusionError(f"model {name!r} cannot answer alone: {reason}")
            return [self._members[name]]
        members = [self._members[n] for n in self._names if n in self._members and self._status[n].state == "loaded"]
        if not members:
            reasons = "; ".join(f"{n}: {s.reason}" for n, s in self._status.items() if s.reason)
            raise CoolfusionError("no model is loaded" + (f" ({reasons})" if reasons else ""))
        return members

    # ------------------------------------------------------------------ answers

    def generate(
        self,
        messages: list[Message],
        *,
        mode: str | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        sampling: Sampling | None = None,
        loop_guard: bool | None = None,
        cancel: threading.Event | None = None,
        draft: str | None = None,
    ) -> Iterator[GenerationEvent]:
        """Answer the conversation; yields events and always ends with AnswerDone.

        `sampling` None is greedy (eval and bench stay comparable); the chat app
        and `generate` pass the config's `[fusion]` sampling. A sampled answer
        without a seed gets a fresh one, reported in its stats. `loop_guard`
        None is the config's, and so is `draft` None ("auto", "batch" or "off").
        """
        mode = check_mode(mode or self._mode, self._names)
        settings = answer_settings(
            mode,
            max_tokens=max_tokens or self.config.fusion.max_tokens,
            stop=tuple(stop if stop is not None else self.config.fusion.stop),
            context_words=self.config.fusion.context_words,
            policy=self.policy,
            sampling=(sampling or GREEDY).with_seed(),
            loop_guard=self.config.fusion.loop_guard if loop_guard is None else loop_guard,
            draft=DraftSettings(draft or self.config.fusion.draft, self.config.fusion.draft_max_segments),
        )
        with self._lock:
            try:
                members = self._active_members(mode)
            except CoolfusionError as error:
                yield AnswerDone("", "error", GenerationStats(mode=mode), str(error))
                return
            if len(members) == 1 and solo_name(mode) is None:
                yield Notice(f"only {members[0].name} is loaded: it answers alone")
                settings = replace(settings, mode="solo")
            yield from mode_named(settings.mode).runner(members, messages, settings, cancel)

    def forget_cached_text(self) -> None:
        """Every loaded model starts its next answer from an empty cache (reproducible runs)."""
        with self._lock:
            for member in self._members.values():
                member.model.forget()

    def rerank(self, messages: list[Message], answers: dict[str, tuple[str, bool]]) -> AnswerReranked:
        """Cool+R's last step on answers already written: every loaded model scores them all.

        `answers` maps "fused" or a model name to (text, ended at the model's
        end of turn). Lets a caller that has the fused and solo answers at hand
        (an eval run) get the Cool+R pick without writing them again.
        """
        with self._lock:
            members = self._active_members("cool+r")
            return rank_answers(members, messages, answers, self.policy)

    def close(self) -> None:
        with self._lock:
            for member in self._members.values():
                member.model.close()
            self._members.clear()
            for status in self._status.values():
                if status.state == "loaded":
                    status.state = "unloaded"

    def __enter__(self) -> "FusionEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
