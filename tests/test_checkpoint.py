"""Checkpoint: classification, both file layouts, special tokens, and bad input at open()."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    LLAMA3_TEMPLATE,
    build_adapter,
    build_merged,
    build_tokenizer,
    build_trainer_root,
    tree_digest,
)

from ftfix.errors import CheckpointNotFoundError, InvalidCheckpointError, UnsafePathError
from ftfix.io.checkpoint import Checkpoint, Kind
from ftfix.io.problems import ProblemKind


def test_merged_v5_reads_jinja_template(make_checkpoint):
    """A transformers 5 folder keeps its template in chat_template.jinja."""
    ckpt = Checkpoint.open(make_checkpoint(layout="v5"))
    assert ckpt.kind is Kind.MERGED
    assert ckpt.layout == "v5"
    assert ckpt.chat_template() == LLAMA3_TEMPLATE
    assert [loc.describe() for loc in ckpt.template_locations()] == ["chat_template.jinja"]


def test_merged_v4_reads_tokenizer_config_key(make_checkpoint):
    """A transformers 4 folder keeps its template under tokenizer_config.json's key."""
    ckpt = Checkpoint.open(make_checkpoint(layout="v4"))
    assert ckpt.layout == "v4"
    assert ckpt.chat_template() == LLAMA3_TEMPLATE
    assert [loc.describe() for loc in ckpt.template_locations()] == [
        'tokenizer_config.json["chat_template"]'
    ]


def test_jinja_file_wins_over_stale_key(make_checkpoint):
    """Like transformers 5, chat_template.jinja wins when the key also exists."""
    path = make_checkpoint(layout="v5")
    config = json.loads((path / "tokenizer_config.json").read_text())
    config["chat_template"] = CHATML_TEMPLATE
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    ckpt = Checkpoint.open(path)
    assert ckpt.chat_template() == LLAMA3_TEMPLATE
    assert len(ckpt.template_locations()) == 2


def test_named_templates_both_layouts(tmp_path):
    """Named templates: additional_chat_templates/ (v5) and a list under the key (v4)."""
    extra = {"tool_use": CHATML_TEMPLATE}
    v5 = Checkpoint.open(build_tokenizer(tmp_path / "v5", extra_chat_templates=extra))
    v4 = Checkpoint.open(build_tokenizer(tmp_path / "v4", layout="v4", extra_chat_templates=extra))
    expected = {"default": LLAMA3_TEMPLATE, "tool_use": CHATML_TEMPLATE}
    assert v5.chat_templates() == expected
    assert v4.chat_templates() == expected


def test_special_tokens_v4_map_overrides_without_decoder(tmp_path):
    """Without added_tokens_decoder, special_tokens_map.json overrides, as transformers does."""
    path = build_tokenizer(tmp_path / "tok", layout="v4")
    config = json.loads((path / "tokenizer_config.json").read_text())
    config.pop("added_tokens_decoder", None)
    config["eos_token"] = "<|end_of_text|>"
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    assert Checkpoint.open(path).special_tokens()["eos_token"] == "<|eot_id|>"


def test_special_tokens_map_does_not_override_a_decoder_folder(tmp_path):
    """With added_tokens_decoder (every save since transformers 4.34), tokenizer_config wins."""
    path = build_tokenizer(tmp_path / "tok", layout="v4")
    config = json.loads((path / "tokenizer_config.json").read_text())
    assert "added_tokens_decoder" in config
    config["eos_token"] = "<|end_of_text|>"
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    stale = json.loads((path / "special_tokens_map.json").read_text())
    assert stale["eos_token"] != "<|end_of_text|>"  # the map still says something else
    assert Checkpoint.open(path).special_tokens()["eos_token"] == "<|end_of_text|>"

    from transformers import AutoTokenizer  # and transformers agrees

    assert AutoTokenizer.from_pretrained(str(path)).eos_token == "<|end_of_text|>"


def test_adapter_and_tokenizer_only(tmp_path):
    """adapter_config.json makes an adapter; tokenizer files alone make a tokenizer folder."""
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert Checkpoint.open(tmp_path / "adapter").kind is Kind.ADAPTER
    assert Checkpoint.open(build_tokenizer(tmp_path / "tok")).kind is Kind.TOKENIZER


@pytest.mark.slow
def test_real_peft_adapter_is_classified(tmp_path):
    """An adapter saved by peft is an adapter whose weights header can be read."""
    base = build_merged(tmp_path / "base", full_model=True)
    ckpt = Checkpoint.open(build_adapter(tmp_path / "lora", base))
    assert ckpt.kind is Kind.ADAPTER
    names = ckpt.weight_files()["adapter_model.safetensors"].tensors
    assert any("lora_A" in name for name in names)


def test_trainer_root_opens_newest_checkpoint(tmp_path):
    """A trainer output folder opens its newest checkpoint-N (numeric, not lexical, order)."""
    root = build_trainer_root(tmp_path / "out", steps=(9, 10))
    ckpt = Checkpoint.open(root)
    assert ckpt.root.name == "checkpoint-10"
    assert ckpt.display.endswith("checkpoint-10")


def test_sharded_index_is_validated(make_checkpoint):
    """Every tensor of a sharded model maps to a shard that holds it."""
    ckpt = Checkpoint.open(make_checkpoint(shards=2))
    files = ckpt.weight_files()
    assert len(files) == 2
    assert ckpt.find_tensor("model.embed_tokens.weight") is not None


def test_staged_view_overlays_without_writing(make_checkpoint):
    """A staged view shows planned bytes; the folder is untouched."""
    path = make_checkpoint()
    before = tree_digest(path)
    ckpt = Checkpoint.open(path)
    staged = ckpt.staged({"chat_template.jinja": b"{{ 'x' }}", "new.txt": b"1"})
    assert staged.chat_template() == "{{ 'x' }}"
    assert staged.exists("new.txt")
    assert ckpt.chat_template() == LLAMA3_TEMPLATE
    assert tree_digest(path) == before


@pytest.mark.parametrize(
    ("filename", "content", "reason"),
    [
        pytest.param("config.json", b'{"a": 1,,}', "invalid JSON", id="config-invalid-json"),
        pytest.param("tokenizer_config.json", b"\xff\xfe{}", "not UTF-8", id="tokcfg-not-utf8"),
        pytest.param("generation_config.json", b"[1, 2]", "expected a JSON object", id="gen-list"),
        pytest.param("config.json", b'{"x": NaN}', "invalid JSON", id="config-nan"),
    ],
)
def test_bad_json_is_a_clear_error(make_checkpoint, filename, content, reason):
    """A file that cannot be parsed is recorded at open(); reading it fails with `path: reason`
    and a hint (the rule reading it is skipped, the file rule reports it)."""
    path = make_checkpoint()
    (path / filename).write_bytes(content)
    ckpt = Checkpoint.open(path)
    assert ckpt.problems[filename].kind is ProblemKind.UNREADABLE
    assert reason in ckpt.problems[filename].reason
    with pytest.raises(InvalidCheckpointError) as info:
        ckpt.json(filename)
    text = str(info.value)
    assert text.startswith(f"{path / filename}: ")
    assert reason in text
    assert "\nhint: " in text


def test_missing_path_and_file_instead_of_folder(tmp_path):
    """A missing path and a file both give clear errors."""
    with pytest.raises(CheckpointNotFoundError, match="no such file or directory"):
        Checkpoint.open(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidCheckpointError, match="is a file, not a checkpoint folder"):
        Checkpoint.open(tmp_path / "file")


def test_folder_without_checkpoint_files(tmp_path):
    """An empty folder is not a checkpoint; the hint says what to pass."""
    with pytest.raises(InvalidCheckpointError, match="not a Hugging Face checkpoint") as info:
        Checkpoint.open(tmp_path)
    assert "adapter_config.json" in str(info.value)


def test_hub_id_not_in_cache(tmp_path, monkeypatch):
    """A Hub id for the base is looked up in the local cache only."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointNotFoundError, match="not in the local Hugging Face cache"):
        Checkpoint.open("someorg/somemodel", role="base")


@pytest.mark.parametrize(
    "shard",
    [
        pytest.param("../outside.safetensors", id="parent-dir"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("sub/model.safetensors", id="subfolder"),
    ],
)
def test_index_shard_outside_folder_is_refused(make_checkpoint, shard):
    """weight_map entries must be plain file names in the folder."""
    path = make_checkpoint(shards=2)
    index_path = path / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard
    index_path.write_text(json.dumps(index))
    ckpt = Checkpoint.open(path)
    problem = ckpt.problems["model.safetensors.index.json"]
    assert "is not a file in the checkpoint folder" in problem.reason
    with pytest.raises(InvalidCheckpointError, match="is not a file in the checkpoint folder"):
        ckpt.weight_files()
    with pytest.raises(UnsafePathError):  # read directly, the index is still refused
        ckpt._shards_from_index(index)


def test_index_missing_shard(make_checkpoint):
    """An index naming a shard that is not there: a problem on the shard; weights unreadable."""
    path = make_checkpoint(shards=2)
    shard = sorted(path.glob("model-*.safetensors"))[-1]
    shard.unlink()
    ckpt = Checkpoint.open(path)
    assert ckpt.problems[shard.name].kind is ProblemKind.MISSING_SHARD
    with pytest.raises(InvalidCheckpointError, match="is not in the folder"):
        ckpt.weight_files()
