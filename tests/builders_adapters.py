"""Tiny real bases and peft-saved LoRA adapters for the adapter rules (FTX3xx), and the ways to
break them by editing the saved files as sharded saves, renamed models and untrained runs do.

Bases are LlamaForCausalLM (and a Llava wrapper around the same text weights) saved by
transformers; adapters are saved by peft. torch/transformers/peft are imported lazily.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ckpt_builders import build_merged, read_safetensors_header

LAYERS = 3
ADAPTER_FILE = "adapter_model.safetensors"


def build_base(path: str | os.PathLike[str], *, layers: int = LAYERS, seed: int = 0) -> Path:
    """A merged tiny Llama with `layers` decoder layers (tokenizer files from ckpt_builders)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = build_merged(path, full_model=True)
    config = LlamaConfig.from_pretrained(str(out))
    config.num_hidden_layers = layers
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    (out / "model.safetensors").unlink()
    model.save_pretrained(str(out))
    return out


def build_llava_base(path: str | os.PathLike[str], text_base: str | os.PathLike[str]) -> Path:
    """A Llava model whose language model is `text_base`'s weights (keys `model.language_model.*`).

    The vision tower is wider than the text model, so no LoRA shape fits both.
    """
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaForCausalLM,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    text = LlamaForCausalLM.from_pretrained(str(text_base))
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=text.config.num_hidden_layers,
        num_attention_heads=2,
        image_size=8,
        patch_size=4,
    )
    config = LlavaConfig(
        text_config=text.config.to_dict(), vision_config=vision, image_token_index=97
    )
    torch.manual_seed(1)
    model = LlavaForConditionalGeneration(config)
    model.model.language_model.load_state_dict(text.model.state_dict())
    model.lm_head.load_state_dict(text.lm_head.state_dict())
    out = Path(path)
    model.save_pretrained(str(out))
    return out


def build_lora(
    path: str | os.PathLike[str],
    base: str | os.PathLike[str],
    *,
    target_modules: Sequence[str] | str = ("q_proj", "v_proj"),
    rank_pattern: Mapping[str, int] | None = None,
    modules_to_save: Sequence[str] = (),
    r: int = 2,
    trained: bool = True,
    init_lora_weights: bool | str = True,
    use_dora: bool = False,
    seed: int = 0,
    **lora_kw: Any,
) -> Path:
    """A LoRA adapter saved by peft. `trained` moves every lora_B (and saved module) off its
    initial value, as training would; otherwise the adapter is saved as peft created it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM.from_pretrained(str(base))
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        rank_pattern=dict(rank_pattern or {}),
        modules_to_save=list(modules_to_save) or None,
        init_lora_weights=init_lora_weights,
        use_dora=use_dora,
        task_type="CAUSAL_LM",
        **lora_kw,
    )
    peft_model = get_peft_model(model, config)
    if trained:
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if any(p in name for p in ("lora_B", "lora_embedding_A", "modules_to_save")):
                    param.add_(torch.randn_like(param) * 0.1)
    out = Path(path)
    peft_model.save_pretrained(str(out))
    return out


def peft_logits(base: str | os.PathLike[str], adapter: str | os.PathLike[str]) -> np.ndarray:
    """Logits of `base` (Llama or Llava) with `adapter` loaded by peft, for a fixed prompt."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, LlamaForCausalLM, LlavaForConditionalGeneration

    kind = AutoConfig.from_pretrained(str(base)).model_type
    cls = LlavaForConditionalGeneration if kind == "llava" else LlamaForCausalLM
    model = PeftModel.from_pretrained(cls.from_pretrained(str(base)), str(adapter))
    model.eval()
    with torch.no_grad():
        ids = torch.tensor([[1, 20, 30, 40, 50, 60]])
        logits = model(input_ids=ids).logits
    return np.asarray(logits.float().numpy())


def base_logits(base: str | os.PathLike[str]) -> np.ndarray:
    """Logits of the bare base for the same prompt as `peft_logits`."""
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(base))
    model.eval()
    with torch.no_grad():
        return np.asarray(model(input_ids=torch.tensor([[1, 20, 30, 40, 50, 60]])).logits.numpy())


# ---------------------------------------------------------------- one kit for the whole session
ADAPTERS: dict[str, dict[str, Any]] = {
    "attention": {"target_modules": ("q_proj", "v_proj")},
    "mlp": {"target_modules": ("gate_proj", "up_proj", "down_proj")},
    "rank-pattern": {
        "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj"),
        "rank_pattern": {"q_proj": 4},
    },
    "modules-to-save": {"target_modules": ("q_proj", "v_proj"), "modules_to_save": ("lm_head",)},
    "all-linear": {"target_modules": "all-linear"},
    "full-names": {"target_modules": tuple(f"model.layers.{i}.mlp.up_proj" for i in range(LAYERS))},
    "untrained": {"target_modules": ("q_proj", "v_proj"), "trained": False},
    "dora": {"target_modules": ("q_proj", "v_proj"), "use_dora": True},
    "embedding": {"target_modules": ("embed_tokens", "q_proj")},
}
_KIT: dict[str, Path] = {}


def kit(tmp_path_factory: Any) -> dict[str, Path]:
    """Build once per session: `base`, `llava` (same text weights) and one adapter per ADAPTERS
    entry. Tests copy an adapter (`copy_adapter`) before breaking it."""
    if not _KIT:
        root = Path(tmp_path_factory.mktemp("adapter-kit"))
        _KIT["base"] = build_base(root / "base")
        _KIT["llava"] = build_llava_base(root / "llava", _KIT["base"])
        for name, kw in ADAPTERS.items():
            _KIT[name] = build_lora(root / name, _KIT["base"], **kw)
    return dict(_KIT)


def copy_adapter(src: Path, dst: Path) -> Path:
    """A private copy of a kit adapter."""
    import shutil

    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------- breaking saved files
def _read(file: Path) -> tuple[dict[str, Any], bytes]:
    header = read_safetensors_header(file)
    (length,) = struct.unpack("<Q", file.read_bytes()[:8])
    return header, file.read_bytes()[8 + length :]


def rewrite_tensors(
    file: str | os.PathLike[str],
    change: Callable[[str, str, list[int], bytes], tuple[str, list[int], bytes] | None],
) -> None:
    """Rewrite a safetensors file tensor by tensor: `change(name, dtype, shape, data)` returns
    the new `(name, shape, data)` or `None` to drop the tensor. Metadata is kept."""
    path = Path(file)
    header, data = _read(path)
    meta = header.pop("__metadata__", None)
    out: dict[str, Any] = {} if meta is None else {"__metadata__": meta}
    chunks: list[bytes] = []
    offset = 0
    for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        start, end = entry["data_offsets"]
        result = change(name, entry["dtype"], list(entry["shape"]), data[start:end])
        if result is None:
            continue
        new_name, shape, blob = result
        out[new_name] = {
            "dtype": entry["dtype"],
            "shape": shape,
            "data_offsets": [offset, offset + len(blob)],
        }
        chunks.append(blob)
        offset += len(blob)
    text = json.dumps(out, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def empty_tensors(adapter: Path) -> None:
    """ZeRO-3 without gathering: every tensor saved as a `[0]` placeholder."""
    rewrite_tensors(adapter / ADAPTER_FILE, lambda n, d, s, b: (n, [0], b""))


def flatten_tensors(adapter: Path) -> None:
    """FSDP flat parameters: every tensor saved 1-D."""
    rewrite_tensors(adapter / ADAPTER_FILE, lambda n, d, s, b: (n, [int(np.prod(s))], b))


def no_tensors(adapter: Path) -> None:
    """The 40-byte adapter: a header with metadata and no tensors."""
    rewrite_tensors(adapter / ADAPTER_FILE, lambda n, d, s, b: None)


def zero_lora_b(adapter: Path) -> None:
    """An untrained adapter: every lora_B back to zero."""
    rewrite_tensors(
        adapter / ADAPTER_FILE,
        lambda n, d, s, b: (n, s, bytes(len(b)) if ".lora_B." in n else b),
    )


def rename_prefix(adapter: Path, old: str, new: str) -> None:
    """Keys under another module prefix, e.g. a multimodal wrapper's."""
    rewrite_tensors(
        adapter / ADAPTER_FILE,
        lambda n, d, s, b: (n.replace(old, new, 1) if n.startswith(old) else n, s, b),
    )


def drop_layers(adapter: Path, layers: Sequence[int]) -> None:
    """A save that lost some layers' tensors."""
    marks = tuple(f".layers.{i}." for i in layers)
    rewrite_tensors(
        adapter / ADAPTER_FILE, lambda n, d, s, b: None if any(m in n for m in marks) else (n, s, b)
    )


def without_base(adapter: Path, hub_id: str = "ftfix-test-org/never-published-base") -> Path:
    """Point the adapter at a base that cannot be had (offline, not cached): checked alone."""
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = hub_id
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    (adapter / "README.md").unlink(missing_ok=True)  # peft's model card names the base too
    return adapter
