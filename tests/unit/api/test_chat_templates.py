"""The end-of-turn token read from a chat template's text, as admission derives it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesft_api.chat_templates import end_of_turn_in_template

ROOT = Path(__file__).resolve().parents[3]

# Templates as model repositories ship them (shortened to their message loops).
DERIVABLE = {
    "kubesft chatml": (
        (ROOT / "trainer_image/kubesft_trainer/model/templates/chatml.jinja").read_text(),
        "<|im_end|>",
    ),
    "chatml, one expression": (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}",
        "<|im_end|>",
    ),
    "chatml, written out": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}",
        "<|im_end|>",
    ),
    "llama 3": (
        "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
        "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}",
        "<|eot_id|>",
    ),
    "gemma": (
        "{% for message in messages %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
        "'<end_of_turn>\n' }}{% endfor %}",
        "<end_of_turn>",
    ),
    "a separate expression": (
        "{% for m in messages %}{{ m.content }}{{ '<|end|>' }}{% endfor %}",
        "<|end|>",
    ),
    "zephyr, the tokenizer's EOS": (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token }}"
        "{% endfor %}",
        None,
    ),
}


@pytest.mark.parametrize(("template", "expected"), DERIVABLE.values(), ids=list(DERIVABLE))
def test_the_token_after_every_message_is_the_end_of_turn(template: str, expected: str | None) -> None:
    assert end_of_turn_in_template(template) == expected


def test_a_template_without_one_token_after_its_messages_is_ambiguous() -> None:
    with pytest.raises(ValueError, match=r"writes no token right after a message's content"):
        end_of_turn_in_template("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    with pytest.raises(ValueError, match=r"different tokens \(<\|a\|>, <\|u\|>\)"):
        end_of_turn_in_template(
            "{% for m in messages %}{% if m.role == 'user' %}{{ m.content + '<|u|>' }}"
            "{% else %}{{ m.content + '<|a|>' }}{% endif %}{% endfor %}"
        )
