"""What engine/a1111.py writes must read back in A1111's own infotext reader, not only in ours.

A1111's reader (``parse_generation_parameters`` in its ``modules/infotext_utils.py``) is
documented by its behaviour, which this test states as a grammar and checks on random recipes:

- the text's last line is the settings line when it holds at least three ``key: value`` pairs;
  every line before it is the prompt, until a line starting ``Negative prompt:``;
- a key starts with a word character and continues with word characters, spaces, ``-`` and ``/``
  only (no parentheses, dots or plus signs: such a key swallows or breaks its neighbours);
- a value is either a JSON string in double quotes (read with ``json.loads``) or runs to the
  next comma; a value holding a comma, a colon or a line break must therefore be quoted;
- ``Size: WxH`` becomes two fields.

A scratch run of A1111's code itself (commit 0365002) on 3,000 random recipes read every prompt,
negative prompt and value back (docs/recipes.md); this keeps our writer inside the grammar.
"""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import a1111
from engine.protocol import FlowOptions, GenerateParams, UncertaintyOptions

#: A1111's pair: key as above; value quoted (non-empty JSON string) or up to the next comma.
A1111_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
A1111_KEY = re.compile(r"\w[\w \-/]+")


def read_like_a1111(text: str) -> dict[str, str]:
    *lines, last = text.strip().split("\n")
    if len(A1111_PAIR.findall(last)) < 3:
        lines, last = [*lines, last], ""
    prompt, negative, in_negative = [], [], False
    for line in (line.strip() for line in lines):
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    fields = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in A1111_PAIR.findall(last):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = json.loads(value)
        size = re.fullmatch(r"(\d+)x(\d+)", value)
        if size:
            fields[f"{key}-1"], fields[f"{key}-2"] = size.groups()
        else:
            fields[key] = value
    return fields


def test_every_written_label_is_a_key_a1111_reads():
    for row in a1111.ROWS:
        if row.write is not None:
            assert A1111_KEY.fullmatch(row.label), f"A1111 cannot read the key {row.label!r}"


WORDS = [
    "castle",
    "(red:1.3)",
    "[blue]",
    "BREAK",
    "<lora:ink_v2:0.8>",
    "a, b",
    "x: y",
    'say "hi"',
    "émoji 🎨",
    "50%",
    "\\(esc\\)",
    "[a:b:0.5]",
    "[cat|dog]",
    "Steps: 3,",
]
phrase = st.lists(st.sampled_from(WORDS), min_size=1, max_size=10).map(" ".join)


@st.composite
def recipes(draw) -> GenerateParams:
    prompt = draw(phrase)
    if draw(st.booleans()):
        prompt += "\n" + draw(phrase)  # a prompt over two lines
    uncertainty = draw(
        st.none()
        | st.builds(
            UncertaintyOptions,
            samples=st.integers(1, 9),
            skip=st.integers(1, 6),
            decodes=st.integers(1, 9),
        )
    )
    return GenerateParams(
        prompt=prompt,
        negative_prompt=draw(st.just("") | phrase),
        sampler=draw(
            st.sampled_from(
                [
                    "Euler a",
                    "DPM++ 2M Karras",
                    "DDIM",
                    "DPM++ SDE",
                    "UniPC",
                    "Flow Euler",
                    "Analytic-DDIM",
                ]
            )
        ),
        seed=draw(st.integers(0, 2**32 - 1)),
        steps=draw(st.integers(1, 150)),
        cfg_scale=draw(st.sampled_from([1, 4.5, 7, 12.25])),
        width=draw(st.sampled_from([64, 512, 768])),
        height=draw(st.sampled_from([64, 512, 1024])),
        model=draw(st.sampled_from(["sfumato-tiny", "sd15, v1", "my:model"])),
        batch_size=draw(st.integers(1, 4)),
        clip_skip=draw(st.sampled_from([1, 2])),
        lora_hashes=draw(st.sampled_from(["", "ink_v2: 0123456789ab, paper: ba9876543210"])),
        ti_hashes=draw(st.sampled_from(["", "bad_hands: 0123456789ab"])),
        calibrated=draw(st.booleans()),
        uncertainty=uncertainty,
        schedule=draw(st.sampled_from(["default", "karras", "exponential"])),
        flow=draw(
            st.none()
            | st.builds(
                FlowOptions,
                guidance=st.sampled_from([None, 3.5]),
                shift=st.sampled_from([None, 1.15, 3.0]),
            )
        ),
    )


@settings(max_examples=300, deadline=None)
@given(recipes())
def test_a1111_reads_back_every_prompt_and_value_we_write(params: GenerateParams):
    text = a1111.write(params)
    fields = read_like_a1111(text)
    assert fields["Prompt"] == params.prompt.strip()
    assert fields["Negative prompt"] == params.negative_prompt.strip()
    for row in a1111.ROWS:
        value = None if row.write is None else row.write(params)
        if value is None or value == "":
            continue
        if row.label == "Size":
            assert (fields["Size-1"], fields["Size-2"]) == (str(params.width), str(params.height))
        else:
            assert fields.get(row.label) == str(value), (row.label, text)
