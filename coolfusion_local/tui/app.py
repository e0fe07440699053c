"""The chat app: owns the engine thread, the model table and the history; screens do the rest."""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ..engine.events import AnswerDone, ModelLoaded, ModelLoadFailed, ModelLoadStarted, ModelLoadWaiting
from ..engine.sampling import CHAT, Sampling
from ..engine.modes import FUSION_MODES, SOLO_PREFIX
from .store import Store
from .colours import model_colours
from .messages import EngineProblem, LoadFraction, LoadProgress, ModelsChanged, ModelsSnapshot, ModelView
from .arena_commands import arena_commands
from .palette import chat_commands
from .sampling_commands import sampling_commands
from .runner import EngineRunner, load_models, safe_post, snapshot
from .screens.chat import ChatScreen
from .screens.help import HelpScreen
from .session import ChatSession

log = logging.getLogger("coolfusion.tui")



class CoolfusionApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "coolfusion"
    BINDINGS = [
        Binding("ctrl+q,ctrl+c", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
    ]

    def __init__(
        self,
        engine_factory: Callable[[], object],
        store: Store,
        *,
        model_names: Iterable[str] = (),
        mode: str = "",
        max_tokens: int | None = None,
        sampling: Sampling = CHAT,
    ) -> None:
        super().__init__()
        self.runner = EngineRunner(engine_factory, self.post_message)
        self.session = ChatSession(store)
        self.max_tokens = max_tokens
        self.mode = mode
        self.configured_sampling = sampling
        self.sampling = sampling  # how the next answers sample; the palette changes it
        self.model_views: list[ModelView] = [ModelView(name, "unloaded") for name in model_names]
        self.colours = model_colours([v.name for v in self.model_views])
        self.activity = ""  # what the engine thread is busy with, for the status bar
        self.waiting_for: dict[str, str] = {}  # a model whose load waits (the AMX probe): the line shown
        self.load_fractions: dict[str, float] = {}
        self.facts: dict = {}  # model name -> ModelFacts, filled by the models panel
        self.arena_pairing = None  # the arena's Pairing once known or chosen (screens/arena.py)

    def on_mount(self) -> None:
        self.push_screen(ChatScreen(self.session, self.colours))
        self.runner.start()
        post = self.post_message
        self.submit(lambda engine: safe_post(post, snapshot(engine)))
        self.load()

    def on_unmount(self) -> None:
        self.runner.close(timeout=0)  # queue the engine's close; `coolfusion chat` waits for it

    # ------------------------------------------------------------ engine jobs

    def submit(self, job: Callable[[object], None]) -> None:
        self.runner.submit(job)

    def load(self) -> None:
        post = self.post_message
        self.submit(lambda engine: load_models(engine, post))

    def set_mode(self, mode: str) -> None:
        post = self.post_message

        def job(engine) -> None:
            engine.mode = mode  # a CoolfusionError (unknown mode) becomes a one-line notice
            safe_post(post, snapshot(engine))

        self.submit(job)
        self.load()  # "solo:NAME" may need a model that is not loaded yet

    def set_enabled(self, name: str, enabled: bool) -> None:
        post = self.post_message

        def switch(engine) -> None:
            engine.set_enabled(name, enabled)
            safe_post(post, snapshot(engine))

        self.submit(switch)
        if enabled:
            self.load()
            # Say it again once loaded: a model that models.toml has off may come out of
            # load() marked "disabled" again, and the user just switched it on.
            self.submit(switch)

    def set_sampling(self, sampling: Sampling, what: str) -> None:
        self.sampling = sampling
        self.notify(f"Sampling: {what} ({sampling.summary()})")
        self._models_changed()

    def modes(self) -> list[str]:
        return [*FUSION_MODES, *(f"{SOLO_PREFIX}{view.name}" for view in self.model_views)]

    def cycle_mode(self) -> None:
        modes = self.modes()
        following = modes[(modes.index(self.mode) + 1) % len(modes)] if self.mode in modes else modes[0]
        self.set_mode(following)
        self.notify(f"Fusion mode: {following}")

    def notify(self, message: str, *, title: str = "", severity="information", timeout=None, markup=False) -> None:
        """Every notice here may carry user, model or file text: it is never read as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # ------------------------------------------------------------ news from the engine thread

    def on_models_snapshot(self, message: ModelsSnapshot) -> None:
        self.model_views = list(message.models)
        self.mode = message.mode
        for name, colour in model_colours([v.name for v in self.model_views]).items():
            self.colours.setdefault(name, colour)
        if not any(v.state == "loading" for v in self.model_views):
            self.activity = ""
        self._models_changed()

    def on_load_progress(self, message: LoadProgress) -> None:
        event = message.event
        if isinstance(event, ModelLoadStarted):
            self._set_state(event.model, "loading", None)
            self.activity = f"loading {event.model} ({message.position}/{message.total})…"
        elif isinstance(event, ModelLoadWaiting):
            # A wait of seconds to minutes before llama.cpp starts loading: say what it is.
            self.waiting_for[event.model] = event.message
            self.activity = f"{event.model}: {event.message}"
            self.notify(event.message, timeout=10)
        elif isinstance(event, ModelLoaded):
            self.waiting_for.pop(event.model, None)
            self._set_state(event.model, "loaded", None, info=event)
            self.activity = ""
        elif isinstance(event, ModelLoadFailed):
            self.waiting_for.pop(event.model, None)
            self._set_state(event.model, "failed", event.reason)
            self.activity = ""
            self.notify(f"{event.model} failed to load: {event.reason}", severity="error", timeout=15)
        self._models_changed()

    def on_load_fraction(self, message: LoadFraction) -> None:
        self.load_fractions[message.model] = message.fraction
        if message.fraction <= 0 and message.model in self.waiting_for:
            return  # the wait's line stays until llama.cpp reads the file
        self.waiting_for.pop(message.model, None)
        view = next((v for v in self.model_views if v.name == message.model), None)
        if view is not None and view.state == "loading":
            self.activity = f"loading {message.model} {message.fraction:.0%}…"
            self._models_changed()

    def on_engine_problem(self, message: EngineProblem) -> None:
        self.notify(message.text, severity="error", timeout=15)
        self.activity = ""
        self._models_changed()

    def note_answer(self, done: AnswerDone) -> None:
        """A member whose failure ended an answer (a served model's server went away) shows as
        failing, with the reason, until an answer it takes part in ends well."""
        if done.failed_model:
            if not any(v.name == done.failed_model and v.state == "loaded" for v in self.model_views):
                return
            self._set_state(done.failed_model, "failing", done.error)
        elif done.stop_reason != "error":
            mode = done.stats.mode or self.mode
            healed = [v.name for v in self.model_views
                      if v.state == "failing" and (not mode.startswith("solo:") or mode == f"solo:{v.name}")]
            if not healed:
                return
            for name in healed:
                self._set_state(name, "loaded", None)
        else:
            return
        self._models_changed()

    def _set_state(self, name: str, state: str, reason: str | None, info=None) -> None:
        for i, view in enumerate(self.model_views):
            if view.name == name:
                self.model_views[i] = ModelView(name, state, reason, info or view.info, view.spec)
                return
        self.model_views.append(ModelView(name, state, reason, info))

    def _models_changed(self) -> None:
        for screen in self.screen_stack:
            screen.post_message(ModelsChanged())

    # ------------------------------------------------------------ app-wide actions

    @property
    def chat(self) -> ChatScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, ChatScreen):
                return screen
        return None

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, ChatScreen):
            yield from chat_commands(self, screen)
            yield from sampling_commands(self, screen)
            yield from arena_commands(self, screen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Stop an answer in progress and save its partial text before leaving."""
        chat = self.chat
        if chat is not None:
            await chat.stop_and_save()
        self.exit()
