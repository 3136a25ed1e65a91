"""ftfix.io.tokenizer: the tables read from tokenizer.json answer exactly as `tokenizers` does,
and a check of a healthy pair never builds the `tokenizers` object (the speed of `ftfix check`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
from ckpt_builders import SPECIAL_TOKENS, build_backend_tokenizer, build_merged
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors

import ftfix
from ftfix.io import tokenizer as tokenizer_module
from ftfix.io.tokenizer import TokenizerView, _without_merges, open_tokenizer

TEXTS = ["<|im_end|>", "<|eot_id|>", "<s>", "hello world", "<unk>", "", "</s>"]


def _bpe_with_template(tmp_path: Path) -> str:
    """A small byte-level BPE whose post-processor adds a BOS, with merges and added tokens."""
    vocab = {"<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4, "Ġ": 5, "Ġa": 6}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b"), ("Ġ", "a")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.add_special_tokens(["<s>", "</s>", AddedToken("<|im_end|>", special=True)])
    tok.add_tokens([AddedToken("merges", special=False)])  # a token named like the key
    # Overlapping added tokens: tokenizers takes the longest match at a position.
    tok.add_special_tokens([AddedToken("<|im", special=True, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    return tok.to_str()


def _sources(tmp_path: Path, shared: Path | None) -> list[tuple[str, str]]:
    found = [
        ("wordlevel", build_backend_tokenizer(["<extra>", "<more>"]).to_str()),
        (
            "wordlevel-bos",
            build_backend_tokenizer(bos_token="<|begin_of_text|>", add_bos=True).to_str(),
        ),
        ("bpe-template", _bpe_with_template(tmp_path)),
    ]
    if shared is not None:
        for folder in ("llama-2-7b-hf", "phi-3-mini-128k-instruct"):
            path = shared / "realworld" / folder / "tokenizer.json"
            if path.is_file():
                found.append((folder, path.read_text(encoding="utf-8")))
    return found


@pytest.fixture(scope="module")
def sources(tmp_path_factory, request):
    shared = Path(__file__).resolve().parents[2] / "shared"
    return _sources(tmp_path_factory.mktemp("tok"), shared if shared.is_dir() else None)


def test_tables_match_tokenizers(sources, tmp_path):
    """Added tokens, vocabulary, sizes, ids both ways and added-token encodings agree."""
    assert len(sources) >= 3
    for name, text in sources:
        real = Tokenizer.from_str(text)
        view = TokenizerView(text.encode(), tmp_path / name)
        added = {i: (t.content, t.special) for i, t in real.get_added_tokens_decoder().items()}
        mine = {i: (t.content, t.special) for i, t in view.get_added_tokens_decoder().items()}
        assert mine == added, name
        assert view.get_vocab(with_added_tokens=False) == real.get_vocab(with_added_tokens=False)
        assert view.get_vocab(with_added_tokens=True) == real.get_vocab(with_added_tokens=True)
        for flag in (True, False):
            assert view.get_vocab_size(flag) == real.get_vocab_size(flag), (name, flag)
        probes = [*TEXTS, *[t for t, _ in added.values()]]
        for token in probes:
            assert view.token_to_id(token) == real.token_to_id(token), (name, token)
        for token_id in [*added, 0, 1, 5, real.get_vocab_size() - 1, 10**6]:
            assert view.id_to_token(token_id) == real.id_to_token(token_id), (name, token_id)
        for token, _ in added.values():
            for specials in (True, False):
                theirs = real.encode(token, add_special_tokens=specials)
                ours = view.encode(token, add_special_tokens=specials)
                assert list(ours.ids) == list(theirs.ids), (name, token, specials)
                assert list(ours.tokens) == list(theirs.tokens), (name, token, specials)
                assert list(ours.offsets) == list(theirs.offsets), (name, token, specials)
        assert not view.built, f"{name}: answered from the tables without building"


def test_ordinary_text_builds_the_real_tokenizer(tmp_path):
    """Splitting text that is not one added token goes to `tokenizers` (built once, lazily)."""
    text = build_backend_tokenizer().to_str()
    view = TokenizerView(text.encode(), tmp_path / "t.json")
    expected = Tokenizer.from_str(text).encode("hello world", add_special_tokens=False).ids
    assert list(view.encode("hello world", add_special_tokens=False).ids) == list(expected)
    assert view.built
    assert view.normalizer is not None  # delegated attribute


def test_merges_are_skipped_only_where_safe(tmp_path):
    """The fast cut keeps everything but the merges, and declines anything unusual."""
    text = _bpe_with_template(tmp_path)
    full = json.loads(text)
    cut = _without_merges(text.encode())
    assert cut is not None and cut["model"]["merges"] == []
    full["model"]["merges"] = []
    assert cut == full
    # A key after the merges: cutting would drop it, so the full parse is used instead.
    moved = json.loads(text)
    moved["model"]["after"] = 1
    assert _without_merges(json.dumps(moved).encode()) is None
    reordered = dict(reversed(list(json.loads(text).items())))  # "model" no longer last
    assert _without_merges(json.dumps(reordered).encode()) is None


def test_bad_json_is_a_clear_error(tmp_path):
    """Not JSON, or JSON without a model: InvalidCheckpointError with the file's path."""
    for data in (b"{", b"[]", b'{"model": 3}', b"\xff\xfe"):
        with pytest.raises(ftfix.InvalidCheckpointError, match=r"t\.json"):
            TokenizerView(data, tmp_path / "t.json")


def test_views_are_shared_by_content(tmp_path):
    """Two files with the same bytes give the same view (parsed once per process)."""
    data = build_backend_tokenizer().to_str().encode()
    assert open_tokenizer(data, tmp_path / "a.json") is open_tokenizer(data, tmp_path / "b.json")


def test_checking_a_healthy_pair_builds_no_tokenizer(tmp_path, monkeypatch):
    """`ftfix check` of a healthy chat pair answers every rule from the tables.

    (Splitting a special token's text into pieces, to tell a subtoken-mean row, needs the real
    tokenizer; it is asked only for rows the fine-tune changed from the base.)
    """
    monkeypatch.setattr(tokenizer_module, "_VIEWS", OrderedDict())  # nothing built earlier
    base = build_merged(tmp_path / "base")
    ft = build_merged(tmp_path / "ft")
    report = ftfix.check(base, ft)
    assert report.exit_code == 0, report.render_text()
    view = open_tokenizer((ft / "tokenizer.json").read_bytes(), ft / "tokenizer.json")
    assert not view.built, "a rule built the tokenizers object"
    assert set(SPECIAL_TOKENS) <= {t.content for t in view.get_added_tokens_decoder().values()}


def test_leading_ids_match_tokenizers(sources, tmp_path):
    """The first ids of a text that starts with added tokens are the real tokenizer's."""
    for name, text in sources:
        real = Tokenizer.from_str(text)
        view = TokenizerView(text.encode(), tmp_path / name)
        contents = [t.content for t in real.get_added_tokens_decoder().values()]
        compared = 0
        for first in contents:
            for follow in ("", " hello", *contents[:3]):
                sample = first + follow
                for specials in (True, False):
                    ours = view.leading_ids(sample, add_special_tokens=specials)
                    if ours is None:
                        continue  # left to the real tokenizer: nothing to compare
                    theirs = real.encode(sample, add_special_tokens=specials).ids
                    assert ours == list(theirs)[: len(ours)], (name, sample, specials)
                    compared += 1
        assert compared > len(contents), name  # the tables decided most of them
        assert not view.built


def test_a_file_tokenizers_cannot_load_is_refused_at_open(tmp_path):
    """A garbage `Precompiled` charsmap makes tokenizers panic: a clear error, at once."""
    doc = json.loads(build_backend_tokenizer().to_str())
    doc["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": "AAAA"}
    data = json.dumps(doc).encode()
    with pytest.raises(ftfix.InvalidCheckpointError, match=r"cannot load tokenizer\.json"):
        TokenizerView(data, tmp_path / "tokenizer.json")
    with pytest.raises(BaseException, match="charsmap"):  # what the loader itself does
        Tokenizer.from_str(data.decode())


def test_a_prefix_that_is_not_the_bos_token_is_not_adding_bos(tmp_path):
    """A post-processor that puts another special first does not "add BOS" (FTX023/FTX024)."""
    from ckpt_builders import build_tokenizer

    from ftfix.analysis.vocab import bos_policy
    from ftfix.io.checkpoint import Checkpoint

    folder = build_tokenizer(tmp_path / "tok", bos_token="<|begin_of_text|>", add_bos=True)
    doc = json.loads((folder / "tokenizer.json").read_text())
    header = next(t for t in doc["added_tokens"] if t["content"] == "<|start_header_id|>")
    doc["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": "<|start_header_id|>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {
            "<|start_header_id|>": {
                "id": "<|start_header_id|>",
                "ids": [header["id"]],
                "tokens": ["<|start_header_id|>"],
            }
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    policy = bos_policy(Checkpoint.open(folder))
    assert policy.prefix == (header["id"],)
    assert policy.adds is False
