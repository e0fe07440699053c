"""No text of a user, a model or a file is ever read as Textual markup.

Questions hold code and regexes full of brackets; model names, paths and load
errors come from files. Each is shown character for character, nothing in it
can close a tag that crashes the app, or become a clickable action.

Two checks: the app driven through every place such text appears, with the
rendered screens inspected (text shown literally, no click action from it);
and a look at the source of tui/ so a new widget cannot skip `plain_text`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from scripted_engine import ScriptedEngine
from textual.content import Content
from textual.geometry import Region
from textual.widgets import Markdown
from textual.widgets._toast import Toast
from tui_helpers import data_dir, idle, make_app, send, wait_until  # noqa: F401

from coolfusion_local.tui.model_facts import ModelFacts
from coolfusion_local.tui.screens.compare import CompareScreen
from coolfusion_local.tui.screens.dialogs import Confirm, TextPrompt
from coolfusion_local.tui.screens.models import ModelsScreen
from coolfusion_local.tui.widgets.message_box import AnswerBox

HOSTILE = "[/b][@click=app.quit]q[/][red]"
ALPHA = "al[/b]pha"  # model names are checked by config.py, but a name is not the UI's to trust
BETA = "[@click=app.quit]be"
# The only click actions on screen: our segment selection, and Markdown links (which open
# web pages only, see test_only_web_links_open_from_an_answer).
OUR_ACTIONS = ("select_segment(", "link(")


def rendered(screen) -> tuple[str, set[str]]:
    """Everything the screen's widgets draw now, and every click action in it."""
    lines, actions = [], set()
    for widget in screen.walk_children(with_self=True):
        width, height = widget.size
        if not widget.display or not width or not height:
            continue
        for strip in widget.render_lines(Region(0, 0, width, height)):
            lines.append(strip.text)
            for segment in strip:
                meta = segment.style.meta if segment.style is not None else {}
                if "@click" in meta:
                    actions.add(meta["@click"])
    return "\n".join(lines), actions


def assert_safe(screen, *shown: str) -> None:
    text, actions = rendered(screen)
    for expected in shown:
        assert expected in text, f"{expected!r} is not shown literally on {type(screen).__name__}"
    foreign = {a for a in actions if not a.startswith(OUR_ACTIONS)}
    assert not foreign, f"text on {type(screen).__name__} became click actions: {foreign}"


def titles(screen) -> list[str]:
    """Border titles as shown (the attribute reads back as markup)."""
    return [Content.from_markup(w.border_title).plain for w in screen.walk_children() if w.border_title]


def toasts(app) -> list[str]:
    """Each notification as its toast draws it."""
    return [Toast(notification).render().plain for notification in app._notifications]


async def test_hostile_text_everywhere_is_shown_as_typed_and_never_acts():
    engine = ScriptedEngine(
        names=(ALPHA, BETA),
        answer=[f"Answer {HOSTILE} ", "[link](app.quit) done."],
        fail={BETA: f"cannot load {HOSTILE}"},
    )
    app = make_app(engine)
    app.facts = {ALPHA: ModelFacts(family="[b]fam", source=f"path /m/{HOSTILE}.gguf", note="[/i]"),
                 BETA: ModelFacts(note=HOSTILE)}
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_until(pilot, lambda: any(v.state == "failed" for v in app.model_views))
        await pilot.pause()
        assert any(f"cannot load {HOSTILE}" in text for text in toasts(app))

        # A question, its answer (Markdown), a notice naming the one loaded model.
        await send(pilot, f"What does {HOSTILE} match?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), what="the answer")
        await pilot.pause()
        assert any(f"only {ALPHA} is loaded" in text for text in toasts(app))
        assert_safe(app.screen, f"What does {HOSTILE} match?", f"Answer {HOSTILE}", ALPHA)
        assert f"What does {HOSTILE} match?"[:60] in titles(app.screen)  # the chat's title

        # The segment inspector and the colour view (winner names, candidates).
        await pilot.press("ctrl+t")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert_safe(app.screen, ALPHA, f"Answer {HOSTILE}")

        # Compare: the question in its header, model names in the column titles (was: MarkupError).
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare view")
        await wait_until(pilot, lambda: not app.screen.running, what="the solo answer")
        assert_safe(app.screen, f"Compare: What does {HOSTILE} match?")
        assert f"{ALPHA} alone" in titles(app.screen)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))

        # Renaming the chat: the dialog, the title above the chat, the conversation list.
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one("#dialog-input").value = f"Regex {HOSTILE}"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.session.title == f"Regex {HOSTILE}")
        await pilot.pause()
        assert f"Regex {HOSTILE}" in titles(app.screen)
        assert_safe(app.screen, f"Regex {HOSTILE}")

        # The delete question quotes the title.
        app.chat.action_delete_chat()
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.pause()
        assert_safe(app.screen, f"Delete “Regex {HOSTILE}”?")
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, Confirm))

        # The models panel: names, facts, the failure reason, the mode list.
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen))
        await pilot.pause()
        assert_safe(app.screen, ALPHA, "[b]fam", f"path /m/{HOSTILE}.gguf", "[/i]")
        await pilot.press("down")
        await pilot.pause()
        assert_safe(app.screen, BETA, f"Why it failed: cannot load {HOSTILE}")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ModelsScreen))

        # The command palette lists a mode per model.
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"mode")
        await pilot.pause(0.5)
        assert_safe(app.screen, f"Mode: solo:{ALPHA}")
        await pilot.press("escape")
        await pilot.pause()

        # A notification carrying a path, as an export failure does.
        app.chat.notify(f"Could not export to /tmp/{HOSTILE}.md", severity="error")
        await pilot.pause()
        assert any(f"/tmp/{HOSTILE}.md" in text for text in toasts(app))
        assert_safe(app.screen)
        assert app.is_running  # nothing clicked its way to app.quit, nothing crashed


async def test_a_question_with_a_closing_tag_opens_the_compare_view():
    """The reproduced crash: MarkupError: closing tag '[/b]' does not match any open tag."""
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "Why is [/b] an error?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare view")
        await pilot.pause()
        assert_safe(app.screen, "Compare: Why is [/b] an error?")


async def test_only_web_links_open_from_an_answer():
    links = ["[web](https://example.org/a)", "[file](file:///etc/passwd)", "[app](app.quit)", "[ssh](ssh://h)"]
    app = make_app(ScriptedEngine(answer=[" ".join(links)]))
    opened = []
    app.open_url = lambda url, **kwargs: opened.append(url)
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "Links?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        box = app.chat.query_one(AnswerBox)
        for href in ("https://example.org/a", "file:///etc/passwd", "app.quit", "ssh://h"):
            markdown = box.query_one(Markdown)
            markdown.post_message(Markdown.LinkClicked(markdown, href))
            await pilot.pause()
        assert opened == ["https://example.org/a"]
        assert sum("Not opened" in n.message for n in app._notifications) == 3
        assert app.is_running


# --------------------------------------------------------------------------- the source of tui/

TUI = Path(__file__).resolve().parents[1] / "coolfusion_local" / "tui"
# Calls that read a str argument as markup (how many leading arguments are text; None: all),
# and the attributes that do on assignment.
MARKUP_READERS = {"Static": None, "Label": None, "Button": None, "update": None, "add_row": None,
                  "add_column": None, "Option": None, "SystemCommand": 2}
MARKUP_ATTRIBUTES = {"border_title", "border_subtitle"}
# What may be passed to them: a literal, or text made safe (or built from styled parts).
SAFE_MAKERS = {"plain", "plain_cell", "escaped", "Content", "assemble", "styled", "Text", "Group",
               "legend", "render_segment", "model_label", "_fmt"}


def _callee(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def _unsafe(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return False
    if isinstance(node, ast.IfExp):
        return _unsafe(node.body) or _unsafe(node.orelse)
    if isinstance(node, ast.Starred):
        value = node.value
        if isinstance(value, ast.ListComp):
            return _unsafe(value.elt)
        if isinstance(value, ast.Call) and _callee(value) == "map":
            return getattr(value.args[0], "id", "") not in SAFE_MAKERS
        return True
    if isinstance(node, ast.Call):
        return _callee(node) not in SAFE_MAKERS
    return True


def _is_markdown_update(call: ast.Call) -> bool:
    """`query_one(Markdown).update(text)`: Markdown is parsed as Markdown, not markup."""
    receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
    return isinstance(receiver, ast.Call) and any(getattr(a, "id", "") == "Markdown" for a in receiver.args)


def markup_leaks() -> list[str]:
    leaks = []
    for path in sorted(TUI.rglob("*.py")):
        if path.name == "plain_text.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(TUI)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                name = _callee(node)
                if name in MARKUP_READERS and not _is_markdown_update(node):
                    texts = node.args[: MARKUP_READERS[name]]
                    leaks += [f"{where}: {name}({ast.unparse(a)})" for a in texts if _unsafe(a)]
                for keyword in node.keywords:
                    if keyword.arg == "markup" and not (isinstance(keyword.value, ast.Constant)
                                                        and keyword.value.value is False):
                        leaks.append(f"{where}: {name}(markup={ast.unparse(keyword.value)})")
                if name == "from_markup" and node.args and not isinstance(node.args[0], ast.Constant):
                    leaks.append(f"{where}: from_markup({ast.unparse(node.args[0])})")
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and target.attr in MARKUP_ATTRIBUTES and _unsafe(node.value):
                        leaks.append(f"{where}: {target.attr} = {ast.unparse(node.value)}")
    return leaks


def test_every_widget_gets_its_text_through_plain_text():
    assert markup_leaks() == []


def test_the_source_check_finds_a_leak():
    """The check above can fail: the code as it was before plain_text.py is caught."""
    source = 'yield Static(f"Compare: {question}")\nself.border_title = title\nLabel(self.question)\n'
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)]
    assert all(_unsafe(a) for call in calls if call.args for a in call.args)
    assert _unsafe(assigns[0].value)
