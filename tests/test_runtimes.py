"""The runtime models (ftfix/runtimes/): per runtime, a folder it serves and folders it breaks on.

Where the runtime's loader runs on this CPU the verdict is proven with the real thing:
transformers 5 (this venv), transformers 4.57 (`make venv-tf4`), and llama.cpp's own
`gguf-py` (`gguf.vocab.SpecialVocab`, what `convert_hf_to_gguf.py` uses to pick the template,
the eos id and add_bos). The others cite the source line the fact comes from (module docstrings).
"""

from __future__ import annotations

import json
import random

import pytest
from builders_config import read_json, run_tf4, set_json, tf4_python
from ckpt_builders import CHATML_TEMPLATE, LLAMA3_TEMPLATE, TOKEN_IDS, build_tokenizer

import ftfix
from ftfix.analysis.context import Context
from ftfix.analysis.ollama import levenshtein_below
from ftfix.io.checkpoint import Checkpoint
from ftfix.runtimes import RUNTIMES, Verdict, answers
from ftfix.runtimes.vllm import rank_flag

EOT, END_OF_TEXT, IM_END = (
    TOKEN_IDS["<|eot_id|>"],
    TOKEN_IDS["<|end_of_text|>"],
    TOKEN_IDS["<|im_end|>"],
)


def _answers(base, ft):
    by = {
        a.runtime: a
        for a in answers(Context(Checkpoint.open(base, role="base"), Checkpoint.open(ft)))
    }
    assert list(by) == [r.name for r in RUNTIMES]
    return by


def _portable(folder):
    """The class every transformers version imports (the v5 builder writes TokenizersBackend,
    which llama.cpp's converter cannot load under transformers 4)."""
    set_json(folder, "tokenizer_config.json", tokenizer_class="PreTrainedTokenizerFast")
    return folder


LOAD_TF4 = "from transformers import AutoTokenizer as A; import sys; A.from_pretrained(sys.argv[1])"


def _chatml_never_stops(make_checkpoint):
    """A ChatML fine-tune whose generation config and eos still say <|end_of_text|>."""
    base = make_checkpoint("base")
    ft = make_checkpoint(
        "ft",
        chat_template=CHATML_TEMPLATE,
        generation_eos=END_OF_TEXT,
        config_eos=END_OF_TEXT,
        eos_token="<|end_of_text|>",
    )
    return base, ft


def test_every_runtime_states_version_and_sources():
    """Each model names the version it was read from and the files its facts come from."""
    for runtime in RUNTIMES:
        assert runtime.version and runtime.sources, runtime.name
        assert type(runtime).__module__.startswith("ftfix.runtimes."), runtime.name
        doc = __import__(type(runtime).__module__, fromlist=["_"]).__doc__
        assert "modelled on" in doc or "Facts relied on" in doc, runtime.name


def test_healthy_folder_is_ok_where_transformers_rules(pair):
    """Healthy pair: the transformers-based servers load it, render the .jinja file, stop on 5."""
    from transformers import AutoTokenizer, GenerationConfig

    base, ft = pair
    by = _answers(base, ft)
    for name in ("transformers 5", "vLLM", "SGLang", "TGI"):
        assert by[name].verdict is Verdict.OK, by[name]
        assert by[name].template == "chat_template.jinja"
        assert EOT in by[name].stop_ids
    # transformers 5 itself: the same stop ids and the .jinja template
    assert list(by["transformers 5"].stop_ids) == [
        GenerationConfig.from_pretrained(str(ft)).eos_token_id
    ]
    tok = AutoTokenizer.from_pretrained(str(ft))
    assert tok.chat_template == (ft / "chat_template.jinja").read_text("utf-8")


def test_generation_config_that_never_stops(make_checkpoint):
    """eos <|end_of_text|> everywhere, turns end <|im_end|>: transformers and servers never stop;
    llama.cpp stops anyway, because it marks <|im_end|> as end of generation by its text
    (src/llama-vocab.cpp: `t.first == "<|im_end|>"` in the EOG list)."""
    from transformers import GenerationConfig

    base, ft = _chatml_never_stops(make_checkpoint)
    by = _answers(base, ft)
    for name in ("transformers 5", "transformers 4", "vLLM", "SGLang", "TGI", "mlx-lm"):
        assert any("turns end with <|im_end|> (7)" in r for r in by[name].reasons), name
        assert IM_END not in by[name].stop_ids
    assert by["transformers 5"].verdict is Verdict.WILL_NOT_STOP
    assert "--generation-config" in " ".join(by["vLLM"].reasons)
    assert GenerationConfig.from_pretrained(str(ft)).eos_token_id == END_OF_TEXT
    assert (
        IM_END in by["llama.cpp"].stop_ids and by["llama.cpp"].verdict is not Verdict.WILL_NOT_STOP
    )

    ftfix.repair(base, ft)  # FTX202 adds <|im_end|> to generation_config.json
    by = _answers(base, ft)
    assert by["transformers 5"].verdict is Verdict.OK and IM_END in by["vLLM"].stop_ids


def test_llama_cpp_template_precedence_is_the_converters(pair):
    """Both a key and a .jinja file that differ: transformers renders the file, llama.cpp's
    converter writes the key into the GGUF (proven with gguf-py's SpecialVocab); TGI's router
    reads the key (router/src/server.rs HubTokenizerConfig)."""
    gguf_vocab = pytest.importorskip("gguf.vocab")
    from transformers import AutoTokenizer

    base, ft = pair
    set_json(_portable(ft), "tokenizer_config.json", chat_template=CHATML_TEMPLATE)
    by = _answers(base, ft)
    assert by["llama.cpp"].verdict is Verdict.DIFFERENT_PROMPT
    assert by["llama.cpp"].template.startswith("tokenizer_config.json[chat_template]")
    assert by["TGI"].verdict is Verdict.DIFFERENT_PROMPT  # its router reads the key too
    assert by["transformers 5"].template == "chat_template.jinja"
    assert gguf_vocab.SpecialVocab(ft).chat_template == CHATML_TEMPLATE
    assert AutoTokenizer.from_pretrained(str(ft)).chat_template == LLAMA3_TEMPLATE


def test_llama_cpp_eos_and_bos_match_gguf_py(make_checkpoint):
    """The GGUF's eos id and add_bos as gguf-py derives them; BOS doubled with a bos template."""
    gguf_vocab = pytest.importorskip("gguf.vocab")
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", add_bos=True)
    special = gguf_vocab.SpecialVocab(ft)
    answer = _answers(base, ft)["llama.cpp"]
    assert answer.stop_ids[0] == special.special_token_ids["eos"] == EOT
    assert special.add_special_token.get("bos") is True
    assert answer.bos_doubled is True  # LLAMA3_TEMPLATE prints bos_token and the GGUF adds one
    plain = _answers(base, make_checkpoint("ft2"))["llama.cpp"]
    assert plain.bos_doubled is False


def test_llama_cpp_ignores_generation_config(make_checkpoint):
    """Only generation_config.json stops on the turn end (eos says <|end_of_text|>) and the turn
    end is not one of llama.cpp's EOG texts: llama.cpp will not stop."""
    base = make_checkpoint("base")
    ft = make_checkpoint(
        "ft", eos_token="<|end_of_text|>", config_eos=END_OF_TEXT, generation_eos=[END_OF_TEXT, 6]
    )
    _portable(ft)
    # a template whose turns end with <|im_start|> (id 6): in no EOG list
    (ft / "chat_template.jinja").write_text(
        CHATML_TEMPLATE.replace("<|im_end|>", "<|im_start|>"), "utf-8"
    )
    by = _answers(base, ft)
    assert by["transformers 5"].verdict is Verdict.OK
    assert by["llama.cpp"].verdict is Verdict.WILL_NOT_STOP
    assert "ignores generation_config.json" in by["llama.cpp"].reasons[-1]
    assert by["Ollama"].verdict in (Verdict.WILL_NOT_STOP, Verdict.DIFFERENT_PROMPT)
    assert any("PARAMETER stop" in r for r in by["Ollama"].reasons)


def test_transformers4_tokenizer_class(pair):
    """TokenizersBackend: transformers 4 will not load (proven with 4.57); after the class is
    PreTrainedTokenizerFast it loads, and transformers 5 is unaffected."""
    base, ft = pair
    assert _answers(base, ft)["transformers 4"].verdict is Verdict.WILL_NOT_LOAD
    assert _answers(base, ft)["transformers 5"].verdict is Verdict.OK
    if tf4_python() is not None:
        result = run_tf4(LOAD_TF4, str(ft))
        assert "TokenizersBackend does not exist" in result.stderr
    set_json(ft, "tokenizer_config.json", tokenizer_class="PreTrainedTokenizerFast")
    assert _answers(base, ft)["transformers 4"].verdict is Verdict.OK
    if tf4_python() is not None:
        result = run_tf4(LOAD_TF4, str(ft))
        assert result.returncode == 0, result.stderr[-1000:]


def _adapter(folder, **config):
    """An adapter folder as trainers save it (config and tokenizer; weights do not matter)."""
    folder.mkdir()
    data = {
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "target_modules": ["q_proj", "v_proj"],
        **config,
    }
    (folder / "adapter_config.json").write_text(json.dumps(data))
    build_tokenizer(folder)
    return folder


def test_adapters_vllm_cannot_serve(make_checkpoint, tmp_path):
    """modules_to_save and rank 64: vLLM and SGLang refuse.

    vllm/lora/peft_helper.py rejects modules_to_save, vllm/config/lora.py has max_lora_rank=16;
    transformers + peft load it; a plain r=8 adapter is ok.
    """
    base = make_checkpoint("base")
    ok = _answers(base, _adapter(tmp_path / "plain"))
    assert ok["vLLM"].verdict is Verdict.OK and ok["SGLang"].verdict is Verdict.OK

    by = _answers(
        base, _adapter(tmp_path / "full", r=64, modules_to_save=["embed_tokens", "lm_head"])
    )
    vllm = " ".join(by["vLLM"].reasons)
    assert by["vLLM"].verdict is Verdict.WILL_NOT_LOAD
    assert (
        "modules_to_save" in vllm
        and "merge before serving" in vllm
        and "--max-lora-rank 64" in vllm
    )
    assert by["SGLang"].verdict is Verdict.WILL_NOT_LOAD and "max-lora-rank" not in " ".join(
        by["SGLang"].reasons
    )
    assert by["llama.cpp"].verdict is Verdict.WILL_NOT_LOAD
    assert by["transformers 5"].verdict is Verdict.OK

    tokens = _answers(base, _adapter(tmp_path / "tokens", trainable_token_indices=[7]))
    assert tokens["vLLM"].verdict is Verdict.WILL_NOT_LOAD


def test_rank_flag():
    """The smallest --max-lora-rank vLLM accepts (its Literal of ranks)."""
    assert rank_flag(17) == "--max-lora-rank 32"
    assert rank_flag(64) == "--max-lora-rank 64"
    assert rank_flag(1000) == "merge before serving"


def test_ollama_template_matching(make_checkpoint):
    """Same template as the base: Ollama matches what the base matched; ChatML on a Llama-3 base
    is 100+ edits away: bare prompt (template/template.go Named: Levenshtein < 100)."""
    base = make_checkpoint("base")
    same = _answers(base, make_checkpoint("same"))["Ollama"]
    assert same.template == "library match (as the base)"
    chatml = make_checkpoint("chatml", chat_template=CHATML_TEMPLATE)
    chatml = _answers(base, _portable(chatml))["Ollama"]
    assert chatml.verdict is Verdict.DIFFERENT_PROMPT and "TEMPLATE" in chatml.reasons[-1]


def _levenshtein(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_banded_edit_distance_matches_full():
    """The banded distance equals the textbook one below the limit, and says None above it."""
    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice("ab<|>") for _ in range(rng.randint(0, 30)))
        b = "".join(rng.choice("ab<|>") for _ in range(rng.randint(0, 30)))
        full = _levenshtein(a, b)
        assert levenshtein_below(a, b, 8) == (full if full < 8 else None), (a, b)


def test_report_text_json_html_and_cli(make_checkpoint, capsys):
    """check --runtimes: the table in text, the list in JSON, a table in HTML."""
    from ftfix.cli import main

    base, ft = _chatml_never_stops(make_checkpoint)
    report = ftfix.check(base, ft, runtimes=True)
    text = report.render_text()
    assert "Where it will be served" in text and "vLLM 0.11" in text and "will not stop" in text
    doc = report.to_dict()
    assert [r["runtime"] for r in doc["runtimes"]] == [r.name for r in RUNTIMES]
    assert doc["runtimes"][0]["verdict"] == "will not stop"
    assert "Where it will be served" in report._repr_html_()
    assert "runtimes" not in ftfix.check(base, ft).to_dict()

    assert main(["check", str(base), str(ft), "--runtimes", "--format", "json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["runtimes"][2]["runtime"] == "vLLM"
    assert (
        read_json(ft, "generation_config.json")["eos_token_id"] == END_OF_TEXT
    )  # check wrote nothing


def test_drifted_architecture_breaks_vllm_and_llama_cpp_only(pair):
    """A bare `LlamaModel` over the base's keys: vLLM (embedding model) and llama.cpp's converter
    (class by name) break; transformers and mlx-lm go by model_type."""
    base, ft = pair
    set_json(_portable(ft), "config.json", architectures=["LlamaModel"])
    by = _answers(base, ft)
    assert by["vLLM"].verdict is Verdict.WILL_NOT_LOAD and "FTX403" in by["vLLM"].reasons[0]
    assert by["llama.cpp"].verdict is Verdict.WILL_NOT_LOAD
    assert by["transformers 5"].verdict is Verdict.OK and by["mlx-lm"].verdict is Verdict.OK


def test_adapter_without_any_model_config_has_unknown_stops(tmp_path):
    """An adapter judged without its base's config: no runtime claims it will not stop."""
    adapter = _adapter(tmp_path / "lonely")
    ck = Checkpoint.open(adapter)
    for answer in answers(Context(ck, ck)):
        assert answer.verdict is not Verdict.WILL_NOT_STOP, answer
