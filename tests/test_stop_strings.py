"""Stop strings that span the join of two segments never leak into the answer (real models)."""

from __future__ import annotations

import pytest

from coolfusion_local.engine.events import AnswerReranked, Message, SegmentChosen, SoloTextDelta
from coolfusion_local.engine.fusion import generate
from coolfusion_local.engine.rerank import generate_reranked
from coolfusion_local.engine.shown_text import ShownText
from helpers import answer_events

QUESTION = [Message("user", "Explain in three sentences why the sky is blue.")]


def run(function, members, **settings):
    return answer_events(members, QUESTION, function, **settings).events


def stop_across_a_join(segments: list[str]) -> tuple[str, int]:
    """A stop string made of the end of one segment and the start of the next, and where it starts."""
    text = ""
    for first, second in zip(segments, segments[1:]):
        text += first
        head, tail = first.rstrip()[-3:], second[:4]
        if len(head) == 3 and len(tail.strip()) >= 2:
            stop = head + first[len(first.rstrip()) :] + tail
            start = text.rstrip().rfind(head)
            if (text + second).find(stop) == start:
                return stop, start
    pytest.skip("the answer has no two segments to join")


@pytest.mark.models
@pytest.mark.parametrize("mode, names", [("cool", ("smollm2-135m", "gemma3-270m")), ("solo", ("smollm2-135m",))])
def test_a_stop_string_across_a_segment_join_never_shows(offline_members, mode, names):
    members = offline_members(*names)
    free = run(generate, members, mode=mode, max_tokens=60)
    segments = [e.text for e in free if isinstance(e, SegmentChosen)]
    stop, start = stop_across_a_join(segments)
    events = run(generate, members, mode=mode, max_tokens=60, stop=[stop])
    done = events[-1]
    assert done.stop_reason == "stop_string"
    assert done.text == "".join(segments)[:start]  # nothing of the stop string, not even its first half
    assert "".join(e.text for e in events if isinstance(e, SegmentChosen)) == done.text


@pytest.mark.models
def test_cool_r_answers_hold_no_stop_text(offline_members):
    members = offline_members("smollm2-135m", "gemma3-270m")
    free = run(generate, members, mode="cool", max_tokens=60)
    stop, start = stop_across_a_join([e.text for e in free if isinstance(e, SegmentChosen)])
    events = run(generate_reranked, members, mode="cool+r", max_tokens=60, stop=[stop])
    reranked = next(e for e in events if isinstance(e, AnswerReranked))
    assert reranked.answers["fused"] == free[-1].text[:start]
    for source, text in reranked.answers.items():
        assert stop not in text, source
        if source != "fused":  # what was streamed of each solo answer is exactly its text
            streamed = "".join(e.text for e in events if isinstance(e, SoloTextDelta) and e.model == source)
            assert streamed == text, source
    assert stop not in events[-1].text


def test_text_that_may_start_a_stop_string_waits_for_the_next_segment():
    shown = ShownText(["Final answer:"])
    assert shown.advance(b"The sum is 4. Final", final=False) == ("The sum is 4. ", False)
    assert shown.advance(b"The sum is 4. Final answer: 4", final=False) == ("", True)
    assert shown.text == "The sum is 4. "


def test_held_back_text_is_shown_once_it_cannot_be_a_stop_string():
    shown = ShownText(["\nUser:"])
    assert shown.advance(b"Hi\n", final=False) == ("Hi", False)
    assert shown.advance(b"Hi\nthere", final=False) == ("\nthere", False)
    assert shown.advance(b"Hi\nthere\nUs", final=True) == ("\nUs", False)  # the answer ended: nothing to wait for


def test_a_character_split_across_segments_is_shown_whole_or_not_at_all():
    shown = ShownText([])
    smile = "😀".encode()
    assert shown.advance(b"ok " + smile[:2], final=False) == ("ok ", False)
    assert shown.advance(b"ok " + smile, final=False) == ("😀", False)
    cut = ShownText([])
    assert cut.advance(b"ok " + smile[:3], final=True) == ("ok ", False)  # never a U+FFFD for good
