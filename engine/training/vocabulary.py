"""``vocabulary.json``: the words the embedded model knows, shipped in its folder.

The engine lists it with the model (``ModelInfo.vocabulary`` in /v1/models); the app never reads
engine files, so this is how the window learns what the built-in model can draw (placeholder,
"Prompt ideas", completion, the hint for a prompt with no known name).

    python -m engine.training.vocabulary --model resources/models/sfumato-tiny
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.protocol import PromptVocabulary
from engine.training.dataset import BACKGROUNDS, DEFAULT_STYLES, caption, emoji_table

FILE = "vocabulary.json"

#: Subjects for the example prompts (when the model knows them): varied shapes and colours.
EXAMPLE_SUBJECTS = (
    "hamburger",
    "rocket",
    "cat face",
    "sunflower",
    "pizza",
    "ghost",
    "taxi",
    "crown",
    "octopus",
    "birthday cake",
    "soccer ball",
    "red apple",
)

#: Prompts the shipped CPU-trained weights draw recognisably (the four picks of
#: tests/training/test_tiny_model.py, confirmed by the evaluation classifier); they lead the
#: examples until retrained weights make every example reliable.
KNOWN_GOOD = (
    "hamburger, twemoji style, on a purple background",
    "musical keyboard, noto style, on a yellow background",
    "four leaf clover, noto style, on a purple background",
    "soccer ball, twemoji style, on a purple background",
)


def build(
    names: list[str],
    symbols: list[str],
    styles: list[str],
    backgrounds: list[str],
    lead: tuple[str, ...] = (),
) -> PromptVocabulary:
    """A vocabulary for a model trained on ``caption(name, style, background)`` captions."""
    known = set(names)
    examples = [p for p in lead if p.split(",")[0] in known]
    picks = [n for n in EXAMPLE_SUBJECTS if n in known] or names[:12]
    # The captions say "on a <colour>", so examples avoid "on a orange".
    colours = [b for b in backgrounds if b[0] not in "aeiou"] or backgrounds
    for k, name in enumerate(picks):
        style = styles[k % len(styles)] if styles else None
        colour = colours[(5 * k + 1) % len(colours)] if colours else None
        prompt = caption(name, style, colour)
        if prompt not in examples and not any(e.startswith(name + ",") for e in examples):
            examples.append(prompt)
    return PromptVocabulary(
        subjects=list(names),
        symbols=list(symbols),
        styles=list(styles),
        backgrounds=list(backgrounds),
        examples=examples[:12],
    )


def from_dataset(
    names: list[str], symbols: list[str], styles: list[str], backgrounds: list[str]
) -> PromptVocabulary:
    return build(names, symbols, styles, backgrounds)


def save(vocab: PromptVocabulary, model_dir: Path) -> Path:
    path = Path(model_dir) / FILE
    path.write_text(json.dumps(vocab.model_dump(), ensure_ascii=False, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="the model folder to write into")
    p.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="take the emoji names from this evaluation classifier's config.json "
        "(the classes it was trained on) instead of engine/training/dataset.py",
    )
    args = p.parse_args(argv)
    if args.classifier:
        cfg = json.loads((args.classifier / "config.json").read_text())
        names, symbols = cfg["classes"], cfg.get("emoji", [])
    else:
        table = emoji_table()
        names, symbols = [e.name for e in table], [e.char for e in table]
    vocab = build(names, symbols, list(DEFAULT_STYLES), list(BACKGROUNDS), KNOWN_GOOD)
    print(save(vocab, args.model))


if __name__ == "__main__":
    main()
