"""The boundary detector on real tokenizers of several families."""

from __future__ import annotations

import pytest

from coolfusion_local.engine.boundary import BoundaryDetector, forced_cut, last_char_boundary, word_boundaries

FAMILIES = ["llama-spm", "gpt-2", "llama-bpe", "qwen2", "gemma-4", "phi-3", "deepseek-llm", "command-r"]
# Tokenizer sets that get fused together in practice (different families each).
MIXES = [
    ("qwen2", "gemma-4"),
    ("llama-spm", "gpt-2", "qwen2"),
    ("llama-bpe", "gemma-4", "phi-3"),
    ("qwen2", "llama-bpe", "gemma-4", "llama-spm", "command-r"),
]


def detector(vocab, families) -> BoundaryDetector:
    return BoundaryDetector([vocab(f) for f in families])


def cut(vocab, families, generated: str | bytes, left: str = "") -> bytes | None:
    data = generated.encode() if isinstance(generated, str) else generated
    position = detector(vocab, families).first_boundary(data, left=left.encode())
    return None if position is None else data[:position]


# --------------------------------------------------------------------- text-level word boundaries


def test_word_boundaries_are_before_whitespace_and_around_wide_characters():
    text = "Hi, you  2 你好😀x\n\ny".encode()
    got = [text[:p].decode() for p in word_boundaries(text)]
    assert got == ["Hi,", "Hi, you", "Hi, you  2", "Hi, you  2 你", "Hi, you  2 你好", "Hi, you  2 你好😀", "Hi, you  2 你好😀x"]


def test_no_boundary_inside_a_utf8_character_or_at_the_end():
    text = "é😀".encode()
    assert list(word_boundaries(text)) == [2]  # between é and the emoji, never inside either
    assert list(word_boundaries("word".encode())) == []  # the word may still go on


def test_emoji_sequences_stay_whole():
    family = "👨‍👩‍👧".encode()  # joined with ZWJ
    thumbs = "👍🏽".encode()  # with a skin-tone modifier
    assert list(word_boundaries(family)) == []
    assert list(word_boundaries(thumbs)) == []


@pytest.mark.parametrize(
    "text, cuts",
    [
        ("🇺🇸🇫🇷 x", ["🇺🇸", "🇺🇸🇫🇷"]),  # a flag is two regional indicators: never split
        ("🇺🇸🇫🇷🇯🇵", ["🇺🇸", "🇺🇸🇫🇷"]),  # pairs counted from the start of the run
        ("😀\u20dd😀", ["😀\u20dd"]),  # an enclosing mark (combining class 0) stays on its emoji
        ("你\u0301好", ["你\u0301"]),  # a combining accent
        ("👩🏽\u200d💻 ok", ["👩🏽\u200d💻"]),  # ZWJ sequence with a skin tone
        ("🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f x",
         ["🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"]),  # tag sequence (England)
        ("漢\u093f字", ["漢\u093f"]),  # a spacing mark (Devanagari vowel sign, category Mc)
        ("1\ufe0f\u20e3 2", ["1\ufe0f\u20e3"]),  # keycap
    ],
)
def test_no_boundary_inside_a_visible_character(text, cuts):
    data = text.encode()
    assert [data[:p].decode() for p in word_boundaries(data)] == cuts


def test_a_real_replacement_character_is_a_whole_character():
    # U+FFFD written by the model is 3 bytes, unlike an invalid byte (1 byte, shown as U+FFFD).
    data = "a\ufffd".encode()
    assert last_char_boundary(data) == len(data)
    assert last_char_boundary(b"a\xff") == 2
    text = "a \ufffd\ufffd b".encode()
    assert [text[:p].decode() for p in word_boundaries(text)] == ["a", "a \ufffd\ufffd"]


@pytest.mark.parametrize(
    "text, kept",
    [("3141", "3141"), ("abc😀", "abc"), ("ok 🇺🇸🇫", "ok 🇺🇸"), ("😀", "😀"), ("ab\u200d", "a")],
)
def test_a_forced_cut_leaves_an_emoji_or_half_a_flag_for_the_next_segment(text, kept):
    assert forced_cut(text.encode()) == len(kept.encode())


def test_last_char_boundary_drops_a_split_character():
    data = "ab😀".encode()
    assert last_char_boundary(data[:-1]) == 2
    assert last_char_boundary(data) == len(data)
    assert last_char_boundary(b"") == 0


# --------------------------------------------------------------------- common boundaries, real tokenizers


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_tokenizes_and_reads_back_exactly(vocab, family):
    model = vocab(family)
    for text in ["Hello world", " 12345 apples", "你好，世界", "emoji 😀!", "a\n\n  b", "<|im_end|> </s>"]:
        tokens = model.tokenize(text.encode())
        back = model.detokenize(tokens)
        # SentencePiece with a space prefix reads back with one extra leading space.
        assert back in (text.encode(), b" " + text.encode())


@pytest.mark.parametrize("families", MIXES)
def test_shortest_segment_is_one_word(vocab, families):
    assert cut(vocab, families, " world is round") == b" world"
    assert cut(vocab, families, "Hello world") == b"Hello"


@pytest.mark.parametrize("families", MIXES)
def test_no_boundary_until_the_next_word_starts(vocab, families):
    assert cut(vocab, families, " world") is None
    assert cut(vocab, families, " wor") is None


@pytest.mark.parametrize("families", MIXES)
def test_numbers_stay_whole_even_with_one_digit_per_token(vocab, families):
    # Qwen2 and Gemma split digits one per token, Llama 3 in groups of three:
    # the segment is still the whole number.
    assert cut(vocab, families, " 12345 apples") == b" 12345"
    assert cut(vocab, families, " 3.14159 is pi") == b" 3.14159"


@pytest.mark.parametrize("families", MIXES)
def test_punctuation_and_newlines(vocab, families):
    assert cut(vocab, families, " clips, so") == b" clips,"
    # Some tokenizers merge ".\n\n" into one token: then the cut moves past it.
    assert cut(vocab, families, " May.\n\nTherefore it") in (b" May.", b" May.\n\nTherefore")


def test_newline_merge_is_respected(vocab):
    # Qwen2 has a token for ".\n": cutting between "." and "\n" would split it.
    qwen = vocab("qwen2")
    tokens = qwen.tokenize(b" May.\nTherefore,")
    pieces = [qwen.piece(t) for t in tokens]
    if b".\n" in pieces:
        assert cut(vocab, ["qwen2", "gemma-4"], " May.\nTherefore, it") != b" May."


@pytest.mark.parametrize("families", MIXES)
def test_cjk_segments_end_where_every_tokenizer_splits(vocab, families):
    text = "你好世界，我们".encode()
    segment = cut(vocab, families, text)
    assert segment is not None and segment.decode("utf-8")  # whole characters only
    # The cut is stable for every tokenizer: none has a token across it.
    for family in families:
        model = vocab(family)
        head = model.tokenize(segment)
        assert model.tokenize(text)[: len(head)] == head


def test_cjk_multi_character_tokens_are_not_split(vocab):
    # Qwen2 has one token for 你好: the first common cut cannot fall inside it.
    qwen = vocab("qwen2")
    assert [qwen.piece(t) for t in qwen.tokenize("你好".encode())] == ["你好".encode()]
    segment = cut(vocab, ["qwen2", "gemma-4"], "你好世界")
    assert segment != "你".encode()


@pytest.mark.parametrize("families", MIXES)
def test_utf8_split_across_tokens_waits_for_the_whole_character(vocab, families):
    smile = "😀".encode()
    # Generated bytes end in the middle of the emoji: no boundary may be offered yet.
    assert cut(vocab, families, b" hi" + smile[:2]) is None
    assert cut(vocab, families, b" hi" + smile + b" x") in (b" hi", b" hi" + smile)


@pytest.mark.parametrize("families", MIXES)
def test_a_flag_is_never_cut_in_half(vocab, families):
    assert cut(vocab, families, "🇺🇸🇫🇷 ok".encode()) in (None, "🇺🇸".encode(), "🇺🇸🇫🇷".encode())


@pytest.mark.parametrize("families", MIXES)
def test_sentencepiece_leading_space_tokens(vocab, families):
    # "▁word" tokens carry the space: the boundary is before the space.
    assert cut(vocab, families, " the cat", left=" on") == b" the"
    assert cut(vocab, families, "  two  spaces") == b"  two"


def test_code_stays_in_one_piece_per_whitespace_word(vocab):
    families = ["qwen2", "gemma-4", "llama-spm"]
    assert cut(vocab, families, "\n    return x") == b"\n    return"
    # ":\n" is one token for some tokenizers, so the cut may move past the newline.
    assert cut(vocab, families, " f(x):\n    return x") in (b" f(x):", b" f(x):\n    return")


def test_allowed_restricts_the_cut_to_the_proposers_token_ends(vocab):
    d = detector(vocab, ["qwen2", "gemma-4"])
    text = b" one two three"
    assert d.first_boundary(text) == 4
    assert d.first_boundary(text, allowed={8, 14}) == 8


def test_detector_caches_tokenizer_calls(vocab):
    calls = []

    class Counting:
        def __init__(self, model):
            self.model = model

        def tokenize(self, text):
            calls.append(text)
            return self.model.tokenize(text)

    d = BoundaryDetector([Counting(vocab("qwen2"))])
    text = b" alpha beta gamma"
    d.first_boundary(text)
    first = len(calls)
    d.first_boundary(text)
    assert len(calls) == first  # the second call is answered from the cache
