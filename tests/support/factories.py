"""Example messages with fixed, realistic values, none read from this machine: a large GPU
worker's first frame and its load. The tests, the CLI suite and ``benchmarks/messages.py`` build
them here rather than each spelling out the dozen hardware fields.
"""

from __future__ import annotations

from datetime import datetime, timezone

from oasst_shared.model_configs import MODEL_CONFIGS, ModelConfig
from oasst_shared.schemas import inference

__all__ = ["GB", "T0", "TB", "hardware_info", "metrics_info", "worker_info"]

GB = 2**30
TB = 2**40

T0 = datetime(2023, 4, 1, 12, 0, tzinfo=timezone.utc)
"""The fixed time of the examples."""

NVIDIA_DRIVER = "535.154.05"


def hardware_info(*, gpus: int = 8) -> inference.WorkerHardwareInfo:
    """A Linux server with 64 cores, 1 TB of memory and ``gpus`` A100 80 GB cards."""
    return inference.WorkerHardwareInfo(
        uname_sysname="Linux",
        uname_release="6.1.0-18-amd64",
        uname_version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
        uname_machine="x86_64",
        uname_processor="",
        cpu_count_physical=64,
        cpu_count_logical=128,
        cpu_freq_max=3700.0,
        cpu_freq_min=1500.0,
        mem_total=TB,
        swap_total=8 * GB,
        nvidia_driver_version=NVIDIA_DRIVER,
        gpus=[
            inference.WorkerGpuInfo(name="NVIDIA A100-SXM4-80GB", total_memory=80 * GB) for _ in range(gpus)
        ],
    )


def worker_info(
    model_config: ModelConfig | None = None, *, max_parallel_requests: int = 8, gpus: int = 8
) -> inference.WorkerInfo:
    """A worker's first frame: ``model_config`` (a 30B Llama by default) on ``hardware_info``."""
    return inference.WorkerInfo(
        config=inference.WorkerConfig(
            model_config=MODEL_CONFIGS["OA_SFT_Llama_30Bq_7"] if model_config is None else model_config,
            max_parallel_requests=max_parallel_requests,
        ),
        hardware_info=hardware_info(gpus=gpus),
    )


def metrics_info(*, gpus: int = 1, created_at: datetime = T0) -> inference.WorkerMetricsInfo:
    """A busy worker's load at ``created_at``: CPU 12.5 %, memory 43.25 %, each GPU 97 % / 81.5 %."""
    return inference.WorkerMetricsInfo(
        created_at=created_at,
        cpu_usage=12.5,
        mem_usage=43.25,
        swap_usage=0.0,
        gpus=[inference.GpuMetricsInfo(gpu_usage=97.0, mem_usage=81.5) for _ in range(gpus)],
    )
