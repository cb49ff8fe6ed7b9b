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


# The work-queue key (``work:{compat_hash}``) of every model of the reference's table, written out:
# the reference's rule is model_id-max_total_length-max_input_length-(q quantized | f full); the
# spec lists the configs but not their hashes.
KNOWN_COMPAT_HASHES: dict[str, str] = {
    "_lorem": "_lorem-256-128-f",
    "distilgpt2": "distilgpt2-1024-512-f",
    "OA_SFT_Pythia_12B": "OpenAssistant/oasst-sft-1-pythia-12b-2048-1024-f",
    "OA_SFT_Pythia_12Bq": "OpenAssistant/oasst-sft-1-pythia-12b-2048-1024-q",
    "OA_SFT_Pythia_12B_4": "OpenAssistant/oasst-sft-4-pythia-12b-epoch-3.5-2048-1024-f",
    "OA_SFT_Pythia_12Bq_4": "OpenAssistant/oasst-sft-4-pythia-12b-epoch-3.5-2048-1024-q",
    "OA_SFT_Llama_7B": "OpenAssistant/oasst_sft_llama_7b_mask_1000-2048-1024-f",
    "OA_SFT_Llama_13B": "OpenAssistant/oasst_sft_llama_13b_mask_1500-2048-1024-f",
    "OA_SFT_Llama_13Bq": "OpenAssistant/oasst_sft_llama_13b_mask_1500-2048-1024-q",
    "OA_SFT_Llama_30B": "OpenAssistant/llama_30b_oasst_latcyr_1000-1792-1024-f",
    "OA_SFT_Llama_30Bq": "OpenAssistant/llama_30b_oasst_latcyr_1000-1792-1024-q",
    "OA_SFT_Llama_30B_2": "OpenAssistant/llama_30b_oasst_latcyr_400-1792-1024-f",
    "OA_SFT_Llama_30Bq_2": "OpenAssistant/llama_30b_oasst_latcyr_400-1792-1024-q",
    "OA_SFT_Llama_30B_5": "OpenAssistant/oasst-sft-5-llama-30b-epoch-1-1792-1024-f",
    "OA_SFT_Llama_30Bq_5": "OpenAssistant/oasst-sft-5-llama-30b-epoch-1-1792-1024-q",
    "OA_SFT_Llama_30B_6": "OpenAssistant/oasst-sft-6-llama-30b-1792-1024-f",
    "OA_SFT_Llama_30Bq_6": "OpenAssistant/oasst-sft-6-llama-30b-1792-1024-q",
    "OA_SFT_Llama_30B_7": "OpenAssistant/oasst-sft-7-llama-30b-1792-1024-f",
    "OA_SFT_Llama_30Bq_7": "OpenAssistant/oasst-sft-7-llama-30b-1792-1024-q",
    "OA_SFT_Llama_30B_7e3": "OpenAssistant/oasst-sft-7e3-llama-30b-1792-1024-f",
    "OA_RLHF_Llama_30B_2_7k": "OpenAssistant/oasst-rlhf-2-llama-30b-7k-steps-1792-1024-f",
    "Carper_RLHF_13B_1": "CarperAI/vicuna-13b-fine-tuned-rlhf-2048-1024-f",
    "Carper_RLHF_13Bq_1": "CarperAI/vicuna-13b-fine-tuned-rlhf-2048-1024-q",
    "OA_SFT_Llama2_70B_10": "OpenAssistant/llama2-70b-oasst-sft-v10-4096-3072-f",
    "OA_SFT_CodeLlama_13B_10": "OpenAssistant/codellama-13b-oasst-sft-v10-12288-8192-f",
}


def test_known_compat_hashes_cover_the_reference_table(ref_models: Any) -> None:
    assert KNOWN_COMPAT_HASHES.keys() == ref_models["model_configs"].keys()


@pytest.mark.parametrize(("name", "expected"), list(KNOWN_COMPAT_HASHES.items()))
def test_compat_hash_known_values(name: str, expected: str) -> None:
    assert MODEL_CONFIGS[name].compat_hash == expected


def test_compat_hash_of_a_config_outside_the_table() -> None:
    assert ModelConfig(model_id="x").compat_hash == "x-1024-512-f"
    small = ModelConfig(model_id="a/b", max_input_length=7, max_total_length=9, quantized=True)
    assert small.compat_hash == "a/b-9-7-q"


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
