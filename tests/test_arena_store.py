"""Comparisons are kept in the conversation store and come back after a restart; prompt files."""

from __future__ import annotations

import sqlite3

import pytest

from coolfusion_local.arena.comparisons import Answer, Comparison, ComparisonLog
from coolfusion_local.arena.pairings import Pairing, default_pairing, draw_order
from coolfusion_local.arena.plan import plan_jobs
from coolfusion_local.arena.prompts import parse_prompts, read_prompts, starter_prompts_path
from coolfusion_local.engine.events import Message
from coolfusion_local.errors import CoolfusionError
from coolfusion_local.tui.store import MIGRATIONS, Store


def new_comparison(**overrides) -> Comparison:
    fields = dict(pairing="cool vs solo:lead", system_a="solo:lead", system_b="cool",
                  context=[Message("user", "Hi"), Message("assistant", "Hello! [b]x[/b]")],
                  prompt="What is 2+2?", settings={"sampling": {"temperature": 0.8}, "max_tokens": 16}, seed=42)
    fields.update(overrides)
    return Comparison(**fields)


def test_a_comparison_is_kept_answered_voted_and_reloaded(tmp_path):
    path = tmp_path / "history.sqlite3"
    store = Store(path)
    log = ComparisonLog(store)
    c = new_comparison()
    log.add(c)
    assert c.id is not None and log.unfinished()[0].prompt == "What is 2+2?"
    c.answer_a = Answer("Four.", "eos", None, {"tokens_per_second": 30.0})
    c.answer_b = Answer("2+2 is 4.", "max_tokens", None, {"segments": 5})
    log.save_answers(c)
    store.close()

    # A restart: the answered comparison is pending, with everything it was asked with.
    store = Store(path)
    log = ComparisonLog(store)
    [pending] = log.pending()
    assert pending.context == c.context and pending.prompt == c.prompt and pending.seed == 42
    assert (pending.system_a, pending.system_b, pending.pairing) == ("solo:lead", "cool", "cool vs solo:lead")
    assert pending.answer_a == c.answer_a and pending.answer_b == c.answer_b
    assert pending.settings["max_tokens"] == 16

    log.set_vote(pending, "B")
    assert pending.winner() == "cool" and pending.preferred_side() == "B"
    log.set_vote(pending, "tie")  # changed before the next question
    store.close()
    store = Store(path)
    [again] = ComparisonLog(store).all()
    assert again.vote == "tie" and again.state == "voted" and again.voted_at is not None
    assert again.preferred_side() == "A"
    assert ComparisonLog(store).pending() == []
    record = again.as_record()
    assert record["answer_b"]["text"] == "2+2 is 4." and record["system_a"] == "solo:lead"
    store.close()


def test_a_failed_system_or_a_stop_is_not_pending(tmp_path):
    store = Store(tmp_path / "h.sqlite3")
    log = ComparisonLog(store)
    failed, stopped = new_comparison(), new_comparison()
    for c in (failed, stopped):
        log.add(c)
    failed.answer_a, failed.answer_b = Answer("x", "eos"), Answer("", "error", "model gone")
    stopped.answer_a, stopped.answer_b = Answer("x", "eos"), Answer("y", "stopped")
    log.save_answers(failed)
    log.save_answers(stopped)
    assert (failed.state, stopped.state) == ("failed", "skipped")
    assert log.pending() == []
    store.close()


def test_an_older_history_gains_the_comparisons_table_and_keeps_its_chats(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in range(2):
        MIGRATIONS[step](conn)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO conversations(title, created_at, updated_at) VALUES ('kept', 0, 0)")
    conn.close()
    store = Store(path)
    assert [c.title for c in store.list_conversations()] == ["kept"]
    assert ComparisonLog(store).all() == []
    store.close()


def test_pairings_order_and_defaults():
    assert default_pairing("adaptive", "qwen").label == "adaptive vs solo:qwen"
    assert default_pairing("solo:qwen", "qwen").label == "cool vs solo:qwen"  # a model alone is no fusion
    assert Pairing.parse("cool,solo:qwen", ["qwen"]) == Pairing("cool", "solo:qwen")
    assert Pairing.parse("adaptive vs cool+r", ["qwen"]) == Pairing("adaptive", "cool+r")
    with pytest.raises(CoolfusionError, match="unknown system 'solo:nope'"):
        Pairing.parse("cool,solo:nope", ["qwen"])
    with pytest.raises(CoolfusionError, match="against itself"):
        Pairing.parse("cool,cool", ["qwen"])
    # The coin: both orders come up, and every draw is one of them.
    draws = {draw_order(Pairing("cool", "solo:qwen")) for _ in range(200)}
    assert draws == {("cool", "solo:qwen"), ("solo:qwen", "cool")}


def test_a_prompt_file_with_bad_lines_reports_each_and_keeps_the_good_ones():
    raw = (
        b"What is the capital of Peru?\n"
        b"\n"
        b"# a comment\n"
        b'{"prompt": "Name a prime number.", "system": "Answer briefly."}\n'
        b'{"prompt": 5}\n'
        b"{not json\n"
        b'{"question": ["a list"]}\n'
        b"caf\xe9 au lait\n"  # Latin-1, not UTF-8
    )
    prompts, bad = parse_prompts(raw)
    assert [(p.line, p.text, p.system) for p in prompts] == [
        (1, "What is the capital of Peru?", None), (4, "Name a prime number.", "Answer briefly.")]
    assert [b.line for b in bad] == [5, 6, 7, 8]
    lines = [b.describe("p.txt") for b in bad]
    assert lines[0] == 'p.txt:5: the JSON object has no "prompt" (or "question") text; skipped'
    assert lines[1].startswith("p.txt:6: not valid JSON") and lines[3].startswith("p.txt:8: not UTF-8")
    assert all("\n" not in line for line in lines)


def test_the_starter_prompts_ship_and_read_cleanly():
    prompts, bad = read_prompts(starter_prompts_path())
    assert bad == [] and 18 <= len(prompts) <= 30
    assert len({p.text for p in prompts}) == len(prompts)


def test_a_run_plan_skips_what_was_answered_before():
    prompts, _ = parse_prompts(b"one\ntwo\none\n")
    pairing = Pairing("cool", "solo:q")
    done = new_comparison(pairing=pairing.label, prompt="one", context=[], source="run")
    jobs = plan_jobs(prompts, [pairing], [done])
    assert [j.prompt.text for j in jobs] == ["two"]
