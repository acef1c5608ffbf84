"""The prompt-language helpers of the Prompt panel: counter text, LoRA tags and completion."""

from app.state.prompt_tools import (
    lora_tag,
    matching_loras,
    tag_being_typed,
    token_label,
)
from engine.prompts_protocol import LoraInfo, TokenCount


def test_counter_reads_like_a1111():
    assert token_label(TokenCount(tokens=83, limit=150, chunks=[75, 8])) == "83 / 150"
    assert token_label(None) == ""


def test_tag_being_typed_and_matches():
    text = "a cat <lora:in"
    assert tag_being_typed(text, len(text)) == (12, "in")
    assert tag_being_typed("a <lora:ink:1> b", 16) is None
    assert tag_being_typed("<lyco:", 6) == (6, "")
    loras = [
        LoraInfo(name="ink", path="/l/ink.safetensors", base="SD 1.x"),
        LoraInfo(name="Paper", path="/l/p.safetensors", base="SD 1.x"),
        LoraInfo(name="old", path="/l/old.pt", base="?", problem="a pickle"),
    ]
    assert [x.name for x in matching_loras(loras, "")] == ["ink", "Paper"]
    assert [x.name for x in matching_loras(loras, "pa")] == ["Paper"]
    assert lora_tag("ink") == "<lora:ink:1>" and lora_tag("ink", 0.75) == "<lora:ink:0.75>"
