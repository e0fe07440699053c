"""The verbatim-loop detector (engine/repetition.py): loops found, code/tables/lists left alone."""

from __future__ import annotations

import pytest

from coolfusion_local.engine.repetition import completes_loop, prose_words, repeated_run, verbatim_loop

# SmolLM2 alone on the haiku prompt of issue 10, until its token limit.
SMOLLM_LOOP = (
    "Autumn rain falls softly,\nA fleeting moment of pure sorrow,\n"
    "A fleeting moment of pure sorrow, a fleeting moment of pure sorrow, a fleeting moment of pure sorrow,"
)
# The fused haiku of issue 10: repetitive wording, but no run of five words three times.
FUSED_HAIKU = (
    "Autumn rain, a silent symphony,\nWhispers of leaves, a silent song,\nA symphony of leaves, a silent song."
)
TABLE = """| Planet | Moons | Rings |
|--------|-------|-------|
| Mercury | 0 | no rings at all here |
| Venus | 0 | no rings at all here |
| Mars | 2 | no rings at all here |
| Jupiter | 95 | yes |
"""
CODE = """Here is the loop:

```python
for i in range(10):
    print("hello world from the loop", i)
    print("hello world from the loop", i)
    print("hello world from the loop", i)
```

It prints each line twice per step.
"""
LIST = """Packing list for the trip:

1. A warm jacket for the evening
2. Sturdy shoes for the rocky paths
3. A water bottle for the long walks
- [ ] check the weather forecast tonight
- [ ] check the train times tonight
"""


def test_a_model_repeating_a_phrase_is_a_loop():
    assert repeated_run(SMOLLM_LOOP) == "a fleeting moment of pure"


def test_repetitive_but_not_verbatim_wording_is_not_a_loop():
    assert repeated_run(FUSED_HAIKU) is None


def test_table_rows_code_blocks_and_list_markers_repeat_legitimately():
    for text in (TABLE, CODE, LIST):
        assert repeated_run(text) is None, text
    assert "print" not in prose_words(CODE) and "mercury" not in prose_words(TABLE)
    assert prose_words(LIST)[:6] == ["packing", "list", "for", "the", "trip", "a"]


def test_the_same_sentence_in_prose_three_times_is_a_loop_even_around_code():
    text = CODE + "It prints each line twice per step. It prints each line twice per step."
    assert repeated_run(text) == "it prints each line twice"


def test_case_and_punctuation_are_folded():
    assert repeated_run("Go on, then! go on then. Fine.") is None
    assert repeated_run("Go on, then! go on then. GO ON THEN... go on, then") == "go on then go on"
    assert repeated_run("the rain, it falls down. The rain it falls down! the rain: it falls down") is not None


def test_completes_loop_judges_only_what_the_addition_brings():
    copy = "a fleeting moment of pure sorrow, "
    assert completes_loop(copy * 2 + "a fleeting moment of pure", " sorrow,")  # the third copy
    assert not completes_loop(copy * 2 + "a fleeting moment of pure", " joy")
    assert not completes_loop(copy + "a fleeting moment of pure", " sorrow")  # two copies
    # A word finished across the join counts as added.
    assert completes_loop(copy * 2 + "a fleeting moment of pure sor", "row")


def test_the_guard_leaves_step_by_step_working_alone_but_not_a_looping_sentence():
    # qwen-coder-0.5b, sampled, on GSM8K train #3002: no loop, though a 5-word run occurs 3 times.
    working = ("1. Calculate the total number of boxes needed.\n### Step 1: Calculate the total number of "
               "boxes needed\nBrenda needs to make 3 trays. Therefore, the total number of")
    assert not completes_loop(working, " boxes")
    sentence = "The Earth's rotation causes the Earth to move around the Sun, which causes the seasons to change. "
    assert not completes_loop(sentence, sentence)
    assert completes_loop(sentence * 2, sentence)  # its third time
    assert verbatim_loop(sentence * 3) == "the earth's rotation causes the earth to move around the sun which causes the seasons to change"


def test_a_phrase_restated_with_working_between_is_not_a_loop():
    # The fused answer to GSM8K train #3027, sampled: the earlier guard (any 10-word run 3 times) ended it
    # here, just before its result, because the question's phrase had come a third time.
    working = ("To solve this problem, we calculate the number of books Mary has at the end of the year.\n\n"
               "1. Start with 72 mystery books.\n2. Join a book club.\n\nLet's calculate the number of books Mary "
               "has at the end of the year:\n\n\\[72 + 12 + 5 = 89\\]\n\nTherefore, the number of books Mary has at the end")
    assert repeated_run(working + " of the year", 10) is not None  # what the earlier guard acted on
    assert not completes_loop(working, " of the year is 89.")
    assert verbatim_loop(working) is None


def test_a_short_loop_is_caught_as_a_longer_copy():
    assert completes_loop("ha " * 14, "ha")  # 15 words: three copies of "ha ha ha ha ha"
    assert not completes_loop("ha " * 13, "ha")


def test_completes_loop_leaves_an_old_loop_to_the_round_that_made_it():
    looped = "one two three four five " * 3
    assert repeated_run(looped) is not None
    assert not completes_loop(looped, "and then something new")


def test_short_texts_never_loop():
    assert not completes_loop("", "hi")
    assert not completes_loop("ha ha", " ha ha")
    assert repeated_run("ha ha ha ha") is None
    assert repeated_run("ha " * 7) is not None  # seven of the same word: three five-word runs


# Issue 18, point 9: legitimate text that repeats verbatim, each of which the guard used to stop.
NUMBERED_LINES = "1. I will not talk in class.\n2. I will not talk in class.\n3. I will not talk in class.\n"
NUMBERED_ALIKE = "1. I will not talk in class.\n1. I will not talk in class.\n1. I will not talk in class.\n"
ZERO_MATRIX = "The 4x4 zero matrix:\n\n0 0 0 0\n0 0 0 0\n0 0 0 0\n0 0 0 0\n"
ONES = "The sequence is 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1"
ALTERNATING = "The pattern 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 repeats."
INDENTED_CODE = """Here is the function:

    def greet(times):
        print("hello world from the loop", times)
        print("hello world from the loop", times)
        print("hello world from the loop", times)
"""
CSV_ROWS = """name, status, owner, region, plan
server one, not started, no owner, eu west, free
server one, not started, no owner, eu west, free
server one, not started, no owner, eu west, free
"""
LEGITIMATE = {
    "numbered-lines": NUMBERED_LINES, "numbered-alike": NUMBERED_ALIKE,
    "zero-matrix": ZERO_MATRIX, "ones": ONES, "alternating": ALTERNATING, "indented-code": INDENTED_CODE,
    "csv-rows": CSV_ROWS,
}


def _streamed_loops(text: str) -> bool:
    """The guard's view as the answer streams in: word by word, as segments arrive."""
    pieces = text.split(" ")
    return any(completes_loop(" ".join(pieces[:i]), " " + pieces[i]) for i in range(1, len(pieces)))


@pytest.mark.parametrize("name", list(LEGITIMATE))
def test_legitimate_repetition_never_trips_the_guard(name):
    text = LEGITIMATE[name]
    assert verbatim_loop(text) is None, text
    assert not _streamed_loops(text)


# Real greedy loops the guard must still stop (scripts/loop_table.py's prompts, 128 tokens, no guard).
# The fused pancake recipe: a cycle of three bulleted items.
RECIPE_CYCLE = ("Sure, here's a simple recipe for pancakes:\n\nIngredients:\n- 1 cup of pancake flour\n- 1 cup of eggs\n"
                "- 1 cup of milk\n- 1/2 cup of sugar\n- 1/2 cup of butter\n- 1/2 cup of flour\n- 1/2 cup of sugar\n"
                "- 1/2 cup of butter\n- 1/2 cup of flour\n- 1/2 cup of sugar\n- 1/2 cup of butter\n- 1/2 cup of flour\n")
# SmolLM2 alone: one bulleted item over and over (bullets do not count repetitions as numbers do).
BULLET_LOOP = ("Sure, here's a simple and effective packing list for a weekend camping trip:\n\n"
               "**Packaging Essentials:**\n\n* 2-3 days of food\n"
               + "* 2-3 days of non-perishable food (packaged meals, snacks, and prepared meals)\n" * 4)
# SmolLM2 alone: verse whose lines have commas (not comma-separated data rows: they end in punctuation).
VERSE_LOOP = ("In twilight's hallow tapestry, where shadows play,\nThe sea's a siren's song, a lullaby's song,\n"
              "A gentle lullaby, a lullaby's song,\nA lullaby's song, a lullaby's song.\n\n"
              "The sea's a siren's song, a lullaby's song,\n" + "A lullaby's song, a lullaby's song,\n" * 3)


@pytest.mark.parametrize("text", [RECIPE_CYCLE, BULLET_LOOP, VERSE_LOOP], ids=["recipe-cycle", "bullet-loop", "verse-loop"])
def test_real_loops_in_lists_and_verse_are_still_caught(text):
    assert verbatim_loop(text) is not None
    assert _streamed_loops(text)


def test_a_loop_inside_one_list_item_or_after_numbers_is_still_caught():
    sentence = "the rain keeps falling on the roof "
    assert verbatim_loop("1. First item.\n2. " + sentence * 3) == sentence.strip()
    assert _streamed_loops("Step 1: " + sentence * 3)
    # Numbers still tell copies apart: "step 1 ..." is no copy of "step 2 ...".
    assert verbatim_loop(" ".join(f"Step {n}: add the next number to the total." for n in range(1, 5))) is None
    # A cycle of two numbered items is a loop; only one item over and over is a list.
    assert verbatim_loop("".join(f"{n}. Mix the flour well.\n{n + 1}. Add the sugar now.\n" for n in (1, 3, 5))) is not None
