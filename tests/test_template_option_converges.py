"""Issue 19: `--template FILE` whose template has no generation prompt: repairs converge."""

from __future__ import annotations

from ckpt_builders import build_merged, tree_digest

from ftfix.cli import main

NO_PROMPT = (
    "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
    "{{ m.content }}<|eot_id|>{% endfor %}"
)


def test_repairs_converge_and_keep_the_spliced_generation_prompt(tmp_path):
    base = build_merged(tmp_path / "base", chat_template=None)
    ft = build_merged(tmp_path / "ft", chat_template=None)
    template = tmp_path / "train.jinja"
    template.write_text(NO_PROMPT)
    argv = ["repair", "--unsafe-fixes", "--template", str(template), str(base), str(ft)]
    codes = [main(argv) for _ in range(3)]
    assert codes[-1] == 0 and codes[-2] == 0, codes  # FTX002 and FTX005 no longer fight
    settled = tree_digest(ft)
    assert main(argv) == 0 and tree_digest(ft) == settled
    assert "add_generation_prompt" in (ft / "chat_template.jinja").read_text()
