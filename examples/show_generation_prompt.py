"""Print what transformers' apply_chat_template renders for a checkpoint (the user's view).

python examples/show_generation_prompt.py build/demo/finetuned
"""

from __future__ import annotations

import sys

from transformers import AutoTokenizer

MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


def main(path: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    print(f"{path}: apply_chat_template(add_generation_prompt=True) ->")
    print(f"  {prompt!r}")
    opens_turn = prompt.rstrip("\n").endswith("<|end_header_id|>")
    print("  ends with the assistant header: " + ("yes" if opens_turn else "NO (empty answers)"))


if __name__ == "__main__":
    main(sys.argv[1])
