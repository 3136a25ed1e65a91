"""FTX408 tokenizer-class-unloadable: `TokenizersBackend` written by transformers 5.

The fix is proven with both major versions' own loaders: transformers 5 (this venv) loads the
repaired folder as the same tokenizer, and transformers 4.57 (the venv `make venv-tf4` builds)
refuses the folder before and loads it after, with the same ids.
"""

from __future__ import annotations

import json

import pytest
from builders_config import read_json, run_tf4, set_json, tf4_python
from ckpt_builders import LLAMA3_TEMPLATE, PROBE_CONVERSATIONS, copy_checkpoint

import ftfix

TEXTS = ["Hello, how are you?", "<|im_start|>user\nhi<|im_end|>", "What is your name? 42"]
TF4_ENCODE = """
import json, sys
from transformers import AutoTokenizer
try:
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
texts = json.loads(sys.argv[2])
print(json.dumps({
    "class": type(tok).__name__,
    "ids": [tok(t).input_ids for t in texts],
    "eos": tok.eos_token, "bos": tok.bos_token, "pad": tok.pad_token,
    "chat": tok.apply_chat_template(json.loads(sys.argv[3]), tokenize=False,
                                    add_generation_prompt=True),
}))
"""


def _found(report):
    return [f for f in report.findings if f.code == "FTX408"]


def _tf5(folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    return {
        "ids": [tok(t).input_ids for t in TEXTS],
        "specials": (tok.eos_token, tok.bos_token, tok.pad_token),
        "chat": tok.apply_chat_template(
            list(PROBE_CONVERSATIONS[0]), tokenize=False, add_generation_prompt=True
        ),
    }


def _tf4(folder):
    result = run_tf4(
        TF4_ENCODE, str(folder), json.dumps(TEXTS), json.dumps(list(PROBE_CONVERSATIONS[0]))
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def v5_save_of_v4_base(make_checkpoint):
    """A v4-layout base (PreTrainedTokenizerFast) and a fine-tune saved by transformers 5."""
    base = make_checkpoint("base", layout="v4", chat_template=LLAMA3_TEMPLATE)
    ft = make_checkpoint("ft", layout="v5", chat_template=LLAMA3_TEMPLATE)
    assert read_json(ft, "tokenizer_config.json")["tokenizer_class"] == "TokenizersBackend"
    return base, ft


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy_pairs(make_checkpoint, tmp_path, layout):
    """The base's own class (either layout): nothing, even TokenizersBackend on both sides."""
    base = make_checkpoint("base", layout=layout)
    assert _found(ftfix.check(base, copy_checkpoint(base, tmp_path / "ft"))) == []


def test_fix_writes_base_class(v5_save_of_v4_base):
    """TokenizersBackend where the base says PreTrainedTokenizerFast: error, safe fix."""
    base, ft = v5_save_of_v4_base
    (finding,) = _found(ftfix.check(base, ft))
    assert finding.severity.value == "error"
    assert "TokenizersBackend" in finding.message and "transformers 4" in finding.message
    before = _tf5(ft)

    ftfix.repair(base, ft, select=["FTX408"])
    assert read_json(ft, "tokenizer_config.json")["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert _tf5(ft) == before  # transformers 5 loads the same tokenizer
    assert _found(ftfix.check(base, ft)) == []


def test_base_also_tf5_uses_generic_fast(make_checkpoint, tmp_path):
    """Base says TokenizersBackend, fine-tune a foreign class: PreTrainedTokenizerFast."""
    base = make_checkpoint("base")
    ft = copy_checkpoint(base, tmp_path / "ft")
    set_json(ft, "tokenizer_config.json", tokenizer_class="Qwen2Tokenizer")
    (finding,) = _found(ftfix.check(base, ft))
    assert finding.severity.value == "warning"
    ftfix.repair(base, ft)
    assert read_json(ft, "tokenizer_config.json")["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_transformers4_loads_after_repair(v5_save_of_v4_base):
    """transformers 4.57: refuses TokenizersBackend, loads the repair with 5.x's ids."""
    if tf4_python() is None:
        pytest.skip("no transformers 4 venv and `make venv-tf4` could not build one")
    base, ft = v5_save_of_v4_base
    before = _tf4(ft)
    assert "TokenizersBackend does not exist" in before["error"]
    expected = _tf5(ft)

    ftfix.repair(base, ft, select=["FTX408"])
    after = _tf4(ft)
    assert after["class"] == "PreTrainedTokenizerFast"
    assert after["ids"] == expected["ids"]
    assert (after["eos"], after["bos"], after["pad"]) == expected["specials"]
    assert after["chat"] == expected["chat"]
