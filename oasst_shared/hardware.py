"""Collecting this machine's hardware and load, for a worker to report.

This is the only place that reads the local machine; decoding a received
``WorkerHardwareInfo`` / ``WorkerMetricsInfo`` never does. The figures come from the standard
library, ``psutil`` and NVML (``nvidia-ml-py``), the latter two from the ``hardware`` extra.
Where a source is missing (no psutil, no NVML, no GPU, a driver error) the result is partial,
never an exception: figures that could not be read are ``0`` (GPU lists empty), and
``sources()`` says which source was unavailable and why.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import platform
from types import ModuleType
from typing import Any

from oasst_shared.schemas.inference import (
    GpuMetricsInfo,
    WorkerGpuInfo,
    WorkerHardwareInfo,
    WorkerMetricsInfo,
)
from oasst_shared.utils import utcnow

__all__ = ["collect_hardware_info", "collect_metrics_info", "sources"]

logger = logging.getLogger(__name__)


def _import(name: str) -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module(name), None
    except ImportError as exc:
        return None, f"{name} is not installed ({exc}); install the `hardware` extra"


def _psutil() -> tuple[Any, str | None]:
    return _import("psutil")


class _Nvml:
    """An initialised NVML session (``with``), or the reason there is none."""

    def __init__(self) -> None:
        self.module: Any = None
        self.error: str | None = None

    def __enter__(self) -> _Nvml:
        module, error = _import("pynvml")
        if module is None:
            self.error = error
            return self
        try:
            module.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, driver missing, ...
            self.error = f"NVML could not start: {exc}"
            return self
        self.module = module
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.module is not None:
            try:
                self.module.nvmlShutdown()
            except Exception as exc:
                logger.debug("nvmlShutdown failed: %s", exc)

    def handles(self) -> list[Any]:
        if self.module is None:
            return []
        count = self.module.nvmlDeviceGetCount()
        return [self.module.nvmlDeviceGetHandleByIndex(i) for i in range(count)]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def sources() -> dict[str, str | None]:
    """Each source of figures mapped to ``None`` when usable, else the reason it is not."""
    _, psutil_error = _psutil()
    with _Nvml() as nvml:
        nvml_error = nvml.error
    return {"psutil": psutil_error, "nvml": nvml_error}


def _memory_without_psutil() -> tuple[int, int]:
    """Total RAM and swap from sysconf and /proc/meminfo (Linux); 0 where unknown."""
    mem_total = 0
    with contextlib.suppress(ValueError, OSError, AttributeError):
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    swap_total = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("SwapTotal:"):
                    swap_total = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return mem_total, swap_total


def collect_hardware_info() -> WorkerHardwareInfo:
    """This machine's OS, CPUs, memory and GPUs."""
    uname = platform.uname()
    psutil, psutil_error = _psutil()
    if psutil is not None:
        logical = psutil.cpu_count(logical=True) or 0
        physical = psutil.cpu_count(logical=False) or 0
        freq = psutil.cpu_freq()
        freq_max = float(freq.max) if freq is not None else 0.0
        freq_min = float(freq.min) if freq is not None else 0.0
        mem_total = int(psutil.virtual_memory().total)
        swap_total = int(psutil.swap_memory().total)
    else:
        logger.debug("hardware info without psutil: %s", psutil_error)
        logical = os.cpu_count() or 0
        physical = 0
        freq_max = freq_min = 0.0
        mem_total, swap_total = _memory_without_psutil()

    driver: str | None = None
    gpus: list[WorkerGpuInfo] = []
    with _Nvml() as nvml:
        if nvml.module is not None:
            try:
                driver = _text(nvml.module.nvmlSystemGetDriverVersion())
                for handle in nvml.handles():
                    gpus.append(
                        WorkerGpuInfo(
                            name=_text(nvml.module.nvmlDeviceGetName(handle)),
                            total_memory=int(nvml.module.nvmlDeviceGetMemoryInfo(handle).total),
                        )
                    )
            except Exception as exc:
                logger.debug("reading GPUs through NVML failed: %s", exc)
        else:
            logger.debug("hardware info without GPUs: %s", nvml.error)

    return WorkerHardwareInfo(
        uname_sysname=uname.system,
        uname_release=uname.release,
        uname_version=uname.version,
        uname_machine=uname.machine,
        uname_processor=uname.processor,
        cpu_count_physical=physical,
        cpu_count_logical=logical,
        cpu_freq_max=freq_max,
        cpu_freq_min=freq_min,
        mem_total=mem_total,
        swap_total=swap_total,
        nvidia_driver_version=driver,
        gpus=gpus,
    )


def collect_metrics_info() -> WorkerMetricsInfo:
    """This machine's current CPU, memory, swap and GPU usage, in percent."""
    psutil, psutil_error = _psutil()
    if psutil is not None:
        cpu = float(psutil.cpu_percent())
        mem = float(psutil.virtual_memory().percent)
        swap = float(psutil.swap_memory().percent)
    else:
        logger.debug("metrics without psutil: %s", psutil_error)
        cpu = mem = swap = 0.0

    gpus: list[GpuMetricsInfo] | None = None
    with _Nvml() as nvml:
        if nvml.module is not None:
            try:
                gpus = []
                for handle in nvml.handles():
                    memory = nvml.module.nvmlDeviceGetMemoryInfo(handle)
                    usage = nvml.module.nvmlDeviceGetUtilizationRates(handle)
                    mem_pct = 100.0 * memory.used / memory.total if memory.total else 0.0
                    gpus.append(GpuMetricsInfo(gpu_usage=float(usage.gpu), mem_usage=mem_pct))
            except Exception as exc:
                logger.debug("reading GPU metrics through NVML failed: %s", exc)
                gpus = None

    return WorkerMetricsInfo(created_at=utcnow(), cpu_usage=cpu, mem_usage=mem, swap_usage=swap, gpus=gpus)
