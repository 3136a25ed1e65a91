"""Issue 14's rules and runtime table without a base (issue 12's `check(ft)`).

Rules that judge the folder alone (FTX401, FTX404, FTX406, FTX407, FTX409, FTX420-FTX422)
declare no base need and run; those that compare with the base are skipped and listed.
"""

from __future__ import annotations

import json

from builders_config import set_json
from ckpt_builders import build_tokenizer

import ftfix


def test_folder_alone_rules_run_without_base(make_checkpoint):
    """A merged folder with a stale 4-bit config and no dtype: found with no base at all."""
    ft = make_checkpoint("ft")
    set_json(ft, "config.json", remove=("dtype",), use_cache=False,
             quantization_config={"quant_method": "bitsandbytes"})  # fmt: skip
    report = ftfix.check(ft)
    codes = {f.code for f in report.findings}
    assert {"FTX401", "FTX404"} <= codes
    assert "FTX402" not in codes  # needs the base's use_cache
    assert "FTX402" in {s.code for s in report.skipped_rules}
    ftfix.repair(ft)
    config = json.loads((ft / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"


def test_adapter_rules_and_table_without_base(tmp_path):
    """An adapter whose base cannot be had: FTX420/FTX422 still report; the table still prints."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    config = {"peft_type": "LORA", "r": 64, "lora_alpha": 16, "target_modules": ["q_proj"],
              "modules_to_save": ["lm_head"], "base_model_name_or_path": None}  # fmt: skip
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    build_tokenizer(adapter)
    report = ftfix.check(adapter, runtimes=True)
    assert {"FTX420", "FTX422"} <= {f.code for f in report.findings}
    vllm = next(a for a in report.runtimes if a.runtime == "vLLM")
    assert vllm.verdict.value == "will not load"
    assert "Where it will be served" in report.render_text()
