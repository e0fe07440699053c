"""F1 / ?: every key in one place."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from ...engine.modes import FUSION_MODES

HELP = f"""\
# coolfusion chat — keys

Every answer is written by several local models together: each proposes the next
few words, every model scores every proposal, the most plausible one wins.

| Key | What it does |
|---|---|
| **Enter** | send the question |
| **Ctrl+J** | new line in the question (Shift+Enter too, where the terminal reports it); pasted text keeps all its lines |
| **Esc** | stop the answer being written (the partial answer is kept, marked *stopped*) |
| **Ctrl+N** | new chat |
| **Ctrl+L** | clear this chat (asks first) |
| **Ctrl+T** | colour the answer by the model that won each segment (legend under the chat) |
| **Ctrl+S** | segment inspector: what every model proposed and how it was scored |
| **F7 / F8** | previous / next segment of the last answer (or click a coloured segment) |
| **Ctrl+R** | compare: re-ask the last question of every model alone, beside the fused answer |
| **Ctrl+O** | models: details, which ones take part, fusion mode |
| **F3** | next fusion mode ({' → '.join(FUSION_MODES)} → solo per model) |
| **F4** | arena: two systems answer each question blind, as A and B; vote which is better |
| **Ctrl+Y** | copy the last answer to the clipboard |
| **Ctrl+B** | show / hide the conversation list (hidden at first below 100 columns) |
| **F2** | rename this chat |
| **Ctrl+P** | command palette: every action by name (export, delete, copy code block…) |
| **F1**, **?** | this help (**?** when the input box is not focused) |
| **Tab** | move between the input, the chat and the conversation list |
| **Ctrl+Q**, **Ctrl+C** | quit (an answer in progress is stopped and its partial kept) |

In the conversation list: **Enter** opens, **r** renames, **d** deletes, **e** exports to Markdown.

In the compare view: **Esc** stops the solo answers, a second **Esc** closes it.

In the arena: **a** A better, **b** B better, **t** tie, **x** both bad, **s** skip, **n** next,
**p** next pairing, **r** report, **Esc** stops the answers or closes.

In the models panel: **Space** switches the highlighted model on or off; pick the mode
from the list at the top; **Esc** closes.

History is saved in `history.sqlite3` in your user data folder
(`COOLFUSION_DATA_DIR` moves it).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss", "Close")]

    def compose(self):
        with VerticalScroll(classes="help-box"):
            yield Markdown(HELP)

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(None)
