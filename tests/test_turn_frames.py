"""ftfix.analysis.turns: the assistant frame is derived only when it does not depend on content."""

from __future__ import annotations

from ftfix.analysis.turns import SENTINELS, assistant_frame

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The assistant header names the answer's first letter: framing depends on the content.
BY_CONTENT = (
    "{% for m in messages %}{% if m.role == 'assistant' %}<A:{{ m.content[3] }}>{{ m.content }}"
    "</A>{% else %}<U>{{ m.content }}</U>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<A:?>{% endif %}"
)


def test_frame_of_a_plain_template():
    """ChatML: header, trailer and generation prompt as the template prints them."""
    frame = assistant_frame(CHATML, {})
    assert frame is not None
    assert frame.header == "<|im_start|>assistant\n"
    assert frame.trailer == "<|im_end|>\n"
    assert frame.generation_prompt == "<|im_start|>assistant\n"


def test_content_dependent_frame_is_not_a_frame():
    """Two answers framed differently: no frame (a stop token cannot be derived from it)."""
    assert SENTINELS[0][3] != SENTINELS[1][3]  # the template below sees different letters
    assert assistant_frame(BY_CONTENT, {}) is None
