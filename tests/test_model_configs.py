from __future__ import annotations

from typing import Any

import msgspec
import pytest

from oasst_shared.model_configs import MODEL_CONFIGS, ModelConfig


def test_table_matches_reference(ref_models: Any) -> None:
    ref = ref_models["model_configs"]
    assert list(MODEL_CONFIGS) == list(ref)
    for name, expected in ref.items():
        assert msgspec.to_builtins(MODEL_CONFIGS[name]) == expected, name


def test_defaults_match_reference(ref_models: Any) -> None:
    fields = ref_models["modules"]["model_configs"]["models"]["ModelConfig"]["fields"]
    cfg = ModelConfig(model_id="m")
    for name, info in fields.items():
        if not info["required"]:
            assert getattr(cfg, name) == info["default"], name


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_compat_hash_format(name: str) -> None:
    cfg = MODEL_CONFIGS[name]
    q = "q" if cfg.quantized else "f"
    assert cfg.compat_hash == f"{cfg.model_id}-{cfg.max_total_length}-{cfg.max_input_length}-{q}"


def test_compat_hash_known_values() -> None:
    assert MODEL_CONFIGS["_lorem"].compat_hash == "_lorem-256-128-f"
    assert (
        MODEL_CONFIGS["OA_SFT_Llama_30Bq_7"].compat_hash == "OpenAssistant/oasst-sft-7-llama-30b-1792-1024-q"
    )
    assert ModelConfig(model_id="x").compat_hash == "x-1024-512-f"


def test_is_llama_and_is_lorem() -> None:
    assert MODEL_CONFIGS["OA_SFT_Llama_7B"].is_llama
    assert MODEL_CONFIGS["OA_SFT_Llama2_70B_10"].is_llama
    assert not MODEL_CONFIGS["OA_SFT_Pythia_12B"].is_llama
    assert MODEL_CONFIGS["_lorem"].is_lorem
    assert not MODEL_CONFIGS["distilgpt2"].is_lorem
    assert ModelConfig(model_id="Some/LLaMA-thing").is_llama


def test_model_config_wire_round_trip() -> None:
    cfg = MODEL_CONFIGS["OA_SFT_Pythia_12Bq"]
    data = cfg.json()
    assert ModelConfig.parse_raw(data) == cfg
    with pytest.raises(msgspec.ValidationError, match=r"\$\.max_input_length"):
        ModelConfig.parse_raw('{"model_id": "m", "max_input_length": "many"}')
