"""ftfix.analysis.vocab: vocabularies by content, compatibility, BOS policy of transformers 5."""

from __future__ import annotations

import json
import shutil

import pytest
from ckpt_builders import BASE_VOCAB_SIZE, TOKEN_IDS, build_tokenizer, vocab_for
from helpers import set_json_key

import ftfix
from ftfix.analysis import vocab
from ftfix.io.checkpoint import Checkpoint


def _open(path):
    return Checkpoint.open(path)


def _copy_realworld(shared_dir, name, dest):
    shutil.copytree(shared_dir / "realworld" / name, dest)
    for child in dest.iterdir():
        child.chmod(0o644)
    return dest


# ------------------------------------------------------------------------------ vocabularies
@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_vocabulary_matches_transformers(tmp_path, layout):
    """tokenizer.json's model vocabulary plus added tokens is what transformers' get_vocab has."""
    from transformers import AutoTokenizer

    path = build_tokenizer(tmp_path / "tok", layout=layout, added_tokens=["<tool>"])
    found = vocab.vocabulary(_open(path))
    assert found.complete
    assert found.sources == ("tokenizer.json",)
    assert found.tokens == AutoTokenizer.from_pretrained(str(path)).get_vocab()
    assert found.tokens == vocab_for(["<tool>"])
    assert found.id_of("<tool>") == BASE_VOCAB_SIZE
    assert found.by_id[TOKEN_IDS["<|eot_id|>"]] == "<|eot_id|>"


def test_vocabulary_partial_from_added_tokens(tmp_path):
    """Without a model file only the added tokens are known (added_tokens_decoder first)."""
    path = build_tokenizer(tmp_path / "tok", layout="v4", added_tokens=["<tool>"],
                           added_tokens_json=True)  # fmt: skip
    (path / "tokenizer.json").unlink()
    found = vocab.vocabulary(_open(path))
    assert not found.complete
    assert found.sources == ('tokenizer_config.json["added_tokens_decoder"]',)
    assert found.id_of("<tool>") == BASE_VOCAB_SIZE
    assert found.id_of("hello") is None
    set_json_key(path / "tokenizer_config.json", "added_tokens_decoder", None)
    legacy = vocab.vocabulary(_open(path))
    assert legacy.sources == ("added_tokens.json",)
    assert legacy.tokens == {"<tool>": BASE_VOCAB_SIZE}


def test_sentencepiece_model_matches_tokenizer_json(shared_dir):
    """Llama-2's real tokenizer.model parses to exactly the vocabulary of its tokenizer.json."""
    folder = shared_dir / "realworld" / "llama-2-7b-hf"
    pieces = vocab.parse_tokenizer_model((folder / "tokenizer.model").read_bytes())
    model = json.loads((folder / "tokenizer.json").read_text("utf-8"))["model"]["vocab"]
    assert pieces == model
    assert len(pieces) == 32000


def test_sentencepiece_mistral_v3(shared_dir):
    """Mistral v3's control tokens sit at their published ids."""
    data = (shared_dir / "realworld" / "mistral-7b-instruct-v0.3" / "tokenizer.model").read_bytes()
    pieces = vocab.parse_tokenizer_model(data)
    assert len(pieces) == 32768
    assert pieces["[INST]"] == 3
    assert pieces["[/INST]"] == 4


def test_tiktoken_llama3_ranks(shared_dir):
    """Llama 3's tiktoken ranks, spelled as byte-level BPE tokens like its tokenizer.json."""
    data = (shared_dir / "realworld" / "llama-3-tiktoken" / "tokenizer.model").read_bytes()
    ranks = vocab.parse_tokenizer_model(data)
    assert len(ranks) == 128000
    assert ranks["!"] == 0
    assert ranks["Ġthe"] == 279  # " the"
    assert ranks["ĊĊ"] == 271  # "\n\n", the tail of Llama 3's assistant header


def test_tokenizer_model_pointer_is_not_a_vocabulary():
    """A Git LFS pointer in place of tokenizer.model is neither format."""
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
    assert vocab.parse_tokenizer_model(pointer) is None
    assert vocab.parse_tokenizer_model(b"") is None


def test_reflection_extends_llama3(shared_dir, tmp_path):
    """Reflection-Llama-3.1-70B grew Llama 3.1's vocabulary by 6 tokens: extended, not remapped."""
    model = shared_dir / "realworld" / "llama-3-tiktoken" / "tokenizer.model"
    ft = _copy_realworld(shared_dir, "reflection-llama-3.1-70b", tmp_path / "ft")
    shutil.copyfile(model, ft / "tokenizer.model")
    base = tmp_path / "base"
    base.mkdir()
    shutil.copyfile(model, base / "tokenizer.model")
    config = json.loads((ft / "tokenizer_config.json").read_text("utf-8"))
    config["added_tokens_decoder"] = {
        k: v for k, v in config["added_tokens_decoder"].items() if int(k) < 128256
    }
    (base / "tokenizer_config.json").write_text(json.dumps(config, indent=2), "utf-8")
    result = vocab.compare(_open(base), _open(ft))
    assert result.status == "extended"
    assert result.complete
    assert result.n_added == 6
    assert result.target_size == 128262
    assert result.model_same is True
    assert "FTX020" not in [f.code for f in ftfix.check(base, ft, select=["FTX020"]).findings]


def test_qwen_swapped_added_tokens_are_remapped(shared_dir, tmp_path):
    """Qwen2.5's real vocab.json: two added tokens swapped in the fine-tune is a remapping."""
    base = _copy_realworld(shared_dir, "qwen2.5-14b-instruct", tmp_path / "base")
    ft = _copy_realworld(shared_dir, "qwen2.5-14b-instruct", tmp_path / "ft")
    config = json.loads((ft / "tokenizer_config.json").read_text("utf-8"))
    decoder = config["added_tokens_decoder"]
    decoder["151644"], decoder["151645"] = decoder["151645"], decoder["151644"]
    (ft / "tokenizer_config.json").write_text(json.dumps(config, indent=2), "utf-8")
    result = vocab.compare(_open(base), _open(ft))
    assert result.status == "remapped"
    assert "'<|im_start|>' 151644 -> 151645" in result.changed


# ------------------------------------------------------------------------------ comparison
def test_compare_statuses(make_checkpoint):
    """same / extended / remapped / unknown, by content."""
    base = _open(make_checkpoint("base", added_tokens=["<a>"]))
    same = _open(make_checkpoint("same", layout="v4", added_tokens=["<a>"]))
    assert vocab.compare(base, same).status == "same"
    extended = _open(make_checkpoint("ext", added_tokens=["<a>", "<b>"]))
    result = vocab.compare(base, extended)
    assert (result.status, result.added) == ("extended", ("'<b>' (99)",))
    remapped = _open(make_checkpoint("moved", added_tokens=["<b>", "<a>"]))
    assert vocab.compatible(base, remapped) == "remapped"
    unknown_path = make_checkpoint("unknown", embedding_rows=128)
    (unknown_path / "tokenizer.json").unlink()
    result = vocab.compare(base, _open(unknown_path))
    assert result.status == "unknown"
    assert "vocab_size is 128" in result.reason
    assert not result.copy_allowed


def test_identical_tokenizer_json_skips_parsing(make_checkpoint, tmp_path):
    """Byte-identical tokenizer.json files are 'same' without comparing entries."""
    base = make_checkpoint("base")
    ft = tmp_path / "ft"
    shutil.copytree(base, ft)
    result = vocab.compare(_open(base), _open(ft))
    assert (result.status, result.complete, result.model_same) == ("same", True, True)


def test_staged_views_see_new_tokenizer(make_checkpoint):
    """A staged edit of tokenizer.json gives a new vocabulary; unchanged bytes are reused."""
    ckpt = _open(make_checkpoint("base"))
    first = vocab.vocabulary(ckpt)
    assert vocab.vocabulary(ckpt.staged({"config.json": b"{}"})) is first
    data = json.loads(ckpt.read_bytes("tokenizer.json"))
    data["added_tokens"].append({**data["added_tokens"][-1], "id": 98, "content": "<new>"})
    data["model"]["vocab"]["<new>"] = 98
    staged = ckpt.staged({"tokenizer.json": json.dumps(data).encode()})
    assert vocab.vocabulary(staged).id_of("<new>") == 98
    assert first.id_of("<new>") is None


# ------------------------------------------------------------------------------ BOS policy
@pytest.mark.parametrize("layout", ["v5", "v4"])
@pytest.mark.parametrize("add_bos", [True, False])
def test_bos_policy_matches_transformers(tmp_path, layout, add_bos):
    """bos_policy says what transformers' tokenizer(text) does."""
    from transformers import AutoTokenizer

    path = build_tokenizer(tmp_path / "tok", layout=layout, add_bos=add_bos)
    policy = vocab.bos_policy(_open(path))
    ids = AutoTokenizer.from_pretrained(str(path))("hello")["input_ids"]
    assert policy.adds is (ids[0] == 1) is add_bos
    assert policy.token_id == 1
    assert policy.prefix == ((1,) if add_bos else ())
    assert policy.describe() == "'<|begin_of_text|>' (1)"


def test_add_bos_token_is_ignored_with_tokenizer_json(tmp_path):
    """transformers 5 drops add_bos_token when tokenizer.json exists; so does bos_policy."""
    from transformers import AutoTokenizer

    path = build_tokenizer(tmp_path / "tok", layout="v4", add_bos=False)
    set_json_key(path / "tokenizer_config.json", "add_bos_token", True)
    assert AutoTokenizer.from_pretrained(str(path))("hello")["input_ids"][0] != 1
    assert vocab.bos_policy(_open(path)).adds is False


def test_bos_policy_without_tokenizer_json(tmp_path):
    """Folders without tokenizer.json follow add_bos_token, or are unknown without it."""
    path = build_tokenizer(tmp_path / "tok", layout="v4")
    (path / "tokenizer.json").unlink()
    assert vocab.bos_policy(_open(path)).adds is None
    set_json_key(path / "tokenizer_config.json", "add_bos_token", True)
    policy = vocab.bos_policy(_open(path))
    assert (policy.adds, policy.prefix) == (True, (1,))
    assert policy.source == "tokenizer_config.json add_bos_token"
    assert vocab.encode(_open(path), "<|eot_id|>", add_special_tokens=True) == [1, 5]
    assert vocab.encode(_open(path), "hello") is None


def test_check_path_reads_real_sizes_quickly(shared_dir, tmp_path):
    """The real Qwen2.5 vocabulary (151k tokens) is read and compared in well under a second."""
    import time

    base = _copy_realworld(shared_dir, "qwen2.5-14b-instruct", tmp_path / "base")
    ft = _copy_realworld(shared_dir, "qwen2.5-14b-instruct", tmp_path / "ft")
    (ft / "added_tokens.json").unlink()
    start = time.perf_counter()
    report = ftfix.check(base, ft, select=["FTX02"])
    assert time.perf_counter() - start < 5.0
    assert [f.code for f in report.findings] == ["FTX021", "FTX024"]


def test_vocab_txt_wordpiece(tmp_path):
    """A WordPiece vocab.txt is one token per line; the final newline adds no empty token."""
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n##s\n", "utf-8")
    (folder / "tokenizer_config.json").write_text('{"unk_token": "[UNK]"}', "utf-8")
    found = vocab.vocabulary(_open(folder))
    assert found.tokens == {"[PAD]": 0, "[UNK]": 1, "hello": 2, "##s": 3}
    assert found.sources == ("vocab.txt",)
