"""A1111's prompt language, pinned on the examples A1111 documents (its doctests and wiki)."""

from __future__ import annotations

import pytest

from engine.prompts.chunking import CHUNK, chunk_tokens
from engine.prompts.parser import entry_at, extract_networks, parse_emphasis, prompt_schedule


def g(prompt: str, steps: int = 10):
    return [[end, text] for end, text in prompt_schedule(prompt, steps)]


@pytest.mark.parametrize(
    "prompt,want",
    [
        ("test", [[10, "test"]]),
        ("a [b:3]", [[3, "a "], [10, "a b"]]),
        ("a [b: 3]", [[3, "a "], [10, "a b"]]),
        ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
        ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
        ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
        ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
        ("a [unbalanced", [[10, "a [unbalanced"]]),
        ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
        ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
        ("[a|(b:1.1)]", [[k, "a" if k % 2 else "(b:1.1)"] for k in range(1, 11)]),
        ("a | b [c:2]", [[10, "a | b [c:2]"]]),  # '|' outside [..|..]: the prompt is used as is
    ],
)
def test_schedules(prompt, want):
    assert g(prompt) == want


def test_a1111_wiki_editing_example():
    prompt = (
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
        "[ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]"
    )
    assert g(prompt, 100) == [
        [25, "fantasy landscape with a mountain and an oak in foreground shoddy"],
        [50, "fantasy landscape with a lake and an oak in foreground in background shoddy"],
        [60, "fantasy landscape with a lake and an oak in foreground in background masterful"],
        [75, "fantasy landscape with a lake and an oak in background masterful"],
        [100, "fantasy landscape with a lake and a christmas tree in background masterful"],
    ]


def test_steps_switch_where_a1111_switches():
    sched = prompt_schedule("a [b:3]", 10)
    assert [entry_at(sched, s) for s in range(10)] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    alt = prompt_schedule("[a|b]", 4)
    assert [alt[entry_at(alt, s)][1] for s in range(4)] == ["a", "a", "b", "a"]


@pytest.mark.parametrize(
    "text,want",
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
        ("((x))", [("x", 1.2100000000000002)]),
        ("[x]", [("x", 1 / 1.1)]),
        ("(x:1.0)", [("x", 1.0)]),
        ("a BREAK b", [("a", 1.0), ("BREAK", -1), ("b", 1.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_emphasis(text, want):
    assert parse_emphasis(text) == want


def test_network_tags_leave_the_prompt():
    text, tags = extract_networks("a cat <lora:ink:0.8>, <lyco:paper> (x:1.2)")
    assert text == "a cat ,  (x:1.2)"
    assert [(t.kind, t.name, t.te_weight, t.unet_weight) for t in tags] == [
        ("lora", "ink", 0.8, 0.8),
        ("lyco", "paper", 1.0, 1.0),
    ]
    _, (tag,) = extract_networks("<lora:a:0.5:0.25>")
    assert (tag.te_weight, tag.unet_weight) == (0.5, 0.25)
    with pytest.raises(ValueError, match="must be a number"):
        extract_networks("<lora:a:strong>")


BOS, EOS, COMMA = 1000, 1001, 5


def _cut(pieces):
    return chunk_tokens(pieces, BOS, EOS, COMMA)


def test_chunks_of_75_padded_with_end_tokens():
    out = _cut([(list(range(10, 90)), 1.0)])  # 80 tokens, no comma: a hard cut at 75
    assert len(out.chunks) == 2 and out.token_count == 80
    first, second = out.chunks
    assert len(first.tokens) == CHUNK + 2 and first.tokens[0] == BOS and first.tokens[-1] == EOS
    assert first.tokens[1:76] == list(range(10, 85))
    assert second.tokens[1:6] == list(range(85, 90)) and set(second.tokens[6:]) == {EOS}


def test_comma_back_off_moves_the_words_after_the_last_comma():
    tokens = list(range(10, 70)) + [COMMA] + list(range(100, 130))  # comma at position 60
    first, second = _cut([(tokens, 1.2)]).chunks
    assert first.tokens[1:62] == tokens[:61] and set(first.tokens[62:]) == {EOS}
    assert first.weights[61] == 1.2 and first.weights[62] == 1.0  # padding weighs 1
    assert second.tokens[1:31] == list(range(100, 130))


def test_no_back_off_when_the_comma_is_more_than_20_tokens_back():
    tokens = list(range(10, 50)) + [COMMA] + list(range(100, 140))  # comma at 40: 35 back
    first, _ = _cut([(tokens, 1.0)]).chunks
    assert first.tokens[1:76] == tokens[:75]


def test_break_starts_a_new_chunk():
    out = _cut([([11, 12], 1.0), ([], -1), ([13], 1.0)])
    assert [c.tokens[1:3] for c in out.chunks] == [[11, 12], [13, EOS]]
    assert out.token_count == CHUNK + 1
