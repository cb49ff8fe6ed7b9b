"""Hardware figures: decoding never reads this machine; collecting does, explicitly and safely.

NVML is replaced by a fake ``pynvml`` module in ``sys.modules``; psutil's absence is simulated
with ``sys.modules["psutil"] = None`` (which makes ``import psutil`` raise ImportError).
"""

from __future__ import annotations

import os
import platform
import sys
import types
from datetime import timedelta
from typing import Any

import msgspec
import psutil
import pytest

from oasst_shared import hardware
from oasst_shared.schemas import inference
from oasst_shared.utils import utcnow
from tests.support import factories
from tests.support.factories import GB, TB


def big_worker() -> inference.WorkerInfo:
    """A worker unlike this machine: 8 GPUs, 1 TB of memory."""
    return factories.worker_info(gpus=8)


def big_metrics() -> inference.WorkerMetricsInfo:
    """A busy 8-GPU worker's load, decoded from its JSON text."""
    return inference.WorkerMetricsInfo.parse_raw(factories.metrics_info(gpus=8).json())


class _Forbidden(Exception):
    pass


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise _Forbidden("the local machine was read while decoding")


@pytest.fixture
def machine_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way of reading this machine raises: psutil, NVML, platform, the collectors."""
    for name in ("cpu_count", "cpu_freq", "virtual_memory", "swap_memory", "cpu_percent"):
        monkeypatch.setattr(psutil, name, _forbidden)
    fake = types.ModuleType("pynvml")
    fake.__getattr__ = _forbidden  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(platform, "uname", _forbidden)
    monkeypatch.setattr(hardware, "collect_hardware_info", _forbidden)
    monkeypatch.setattr(hardware, "collect_metrics_info", _forbidden)
    with pytest.raises(_Forbidden):  # the trap is armed
        inference.WorkerHardwareInfo.collect()


@pytest.mark.usefixtures("machine_unreadable")
def test_decoding_never_reads_the_local_machine() -> None:
    worker = big_worker()
    text = worker.json()
    for decoded in (
        inference.WorkerInfo.parse_raw(text),
        msgspec.json.decode(text, type=inference.WorkerInfo),
        inference.WorkerInfo.parse_obj(worker.dict()),
        msgspec.msgpack.decode(msgspec.msgpack.encode(worker), type=inference.WorkerInfo),
    ):
        assert decoded == worker
        assert len(decoded.hardware_info.gpus) == 8
        assert decoded.hardware_info.mem_total == TB
        assert decoded.hardware_info.nvidia_driver_version == "535.154.05"
    metrics = big_metrics()
    pong = msgspec.json.decode(
        inference.PongResponse(request_id="p", metrics=metrics).json(), type=inference.WorkerResponse
    )
    assert pong.metrics == metrics
    assert pong.metrics.cpu_usage == 12.5
    assert len(pong.metrics.gpus) == 8
    assert pong.metrics.created_at.utcoffset() == timedelta(0)


def test_big_worker_decodes_unchanged_here() -> None:
    """Without traps, on this (smaller) machine: still exactly what was sent."""
    worker = big_worker()
    decoded = inference.WorkerInfo.parse_raw(worker.json())
    assert decoded == worker
    local = inference.WorkerHardwareInfo.collect()
    assert decoded.hardware_info != local
    assert decoded.hardware_info.mem_total == TB != local.mem_total


# --------------------------------------------------------------------------- local figures


def test_collect_hardware_info_here() -> None:
    info = inference.WorkerHardwareInfo.collect()
    assert isinstance(info, inference.WorkerHardwareInfo)
    uname = platform.uname()
    assert (info.uname_sysname, info.uname_release, info.uname_machine) == (
        uname.system,
        uname.release,
        uname.machine,
    )
    assert info.cpu_count_logical == psutil.cpu_count(logical=True)
    assert info.cpu_count_logical >= 1
    assert info.mem_total == psutil.virtual_memory().total > 0
    assert info.swap_total >= 0
    assert info.cpu_freq_max >= info.cpu_freq_min >= 0.0
    assert all(isinstance(g, inference.WorkerGpuInfo) for g in info.gpus)
    # what a worker sends survives the wire
    assert inference.WorkerHardwareInfo.parse_raw(info.json()) == info


def test_collect_metrics_info_here() -> None:
    before = utcnow()
    metrics = inference.WorkerMetricsInfo.collect()
    assert isinstance(metrics, inference.WorkerMetricsInfo)
    assert before <= metrics.created_at <= utcnow()
    assert metrics.created_at.utcoffset() == timedelta(0)
    assert 0.0 <= metrics.mem_usage <= 100.0
    assert 0.0 <= metrics.swap_usage <= 100.0
    assert metrics.cpu_usage >= 0.0
    assert inference.WorkerMetricsInfo.parse_raw(metrics.json()) == metrics


def test_sources_here() -> None:
    sources = hardware.sources()
    assert set(sources) == {"psutil", "nvml"}
    assert sources["psutil"] is None  # installed in this environment
    assert sources["nvml"] is None or isinstance(sources["nvml"], str)


# -------------------------------------------------------------------------------- no psutil


@pytest.fixture
def no_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)


@pytest.mark.usefixtures("no_psutil")
def test_hardware_without_psutil_is_partial() -> None:
    info = hardware.collect_hardware_info()
    assert info.cpu_count_logical == os.cpu_count()
    assert info.cpu_count_physical == 0
    assert (info.cpu_freq_max, info.cpu_freq_min) == (0.0, 0.0)
    if sys.platform.startswith("linux"):  # sysconf and /proc/meminfo stand in for psutil
        assert info.mem_total == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") > 0
    assert info.uname_sysname == platform.system()
    assert inference.WorkerHardwareInfo.parse_raw(info.json()) == info


@pytest.mark.usefixtures("no_psutil")
def test_metrics_without_psutil_are_zero() -> None:
    metrics = hardware.collect_metrics_info()
    assert (metrics.cpu_usage, metrics.mem_usage, metrics.swap_usage) == (0.0, 0.0, 0.0)
    assert metrics.created_at.utcoffset() == timedelta(0)


@pytest.mark.usefixtures("no_psutil")
def test_sources_report_missing_psutil() -> None:
    reason = hardware.sources()["psutil"]
    assert reason is not None
    assert "psutil" in reason
    assert "hardware" in reason  # names the extra to install


# ------------------------------------------------------------------------------ fake NVML


class FakeNvml(types.ModuleType):
    """Just enough of ``pynvml`` for hardware.py: two GPUs, or an init failure."""

    def __init__(self, gpus: list[dict[str, Any]], *, init_error: Exception | None = None) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"535.54.03"  # older bindings return bytes

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> str | bytes:
        name: str | bytes = handle["name"]
        return name

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any]) -> Any:
        return types.SimpleNamespace(
            total=handle["total"], used=handle["used"], free=handle["total"] - handle["used"]
        )

    def nvmlDeviceGetUtilizationRates(self, handle: dict[str, Any]) -> Any:
        return types.SimpleNamespace(gpu=handle["util"], memory=0)


TWO_GPUS = [
    {"name": b"NVIDIA A100-SXM4-80GB", "total": 80 * GB, "used": 20 * GB, "util": 75},
    {"name": "NVIDIA A100-SXM4-40GB", "total": 40 * GB, "used": 30 * GB, "util": 5},
]


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml(TWO_GPUS)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_gpu_hardware_from_nvml(two_gpus: FakeNvml) -> None:
    info = inference.WorkerHardwareInfo.collect()
    assert info.nvidia_driver_version == "535.54.03"
    assert info.gpus == [
        inference.WorkerGpuInfo(name="NVIDIA A100-SXM4-80GB", total_memory=80 * GB),
        inference.WorkerGpuInfo(name="NVIDIA A100-SXM4-40GB", total_memory=40 * GB),
    ]
    assert two_gpus.inits == two_gpus.shutdowns == 1  # NVML is shut down again


def test_gpu_metrics_from_nvml(two_gpus: FakeNvml) -> None:
    metrics = inference.WorkerMetricsInfo.collect()
    assert metrics.gpus == [
        inference.GpuMetricsInfo(gpu_usage=75.0, mem_usage=25.0),
        inference.GpuMetricsInfo(gpu_usage=5.0, mem_usage=75.0),
    ]
    assert two_gpus.inits == two_gpus.shutdowns == 1


def test_sources_with_working_nvml(two_gpus: FakeNvml) -> None:
    assert hardware.sources()["nvml"] is None


@pytest.fixture
def nvml_broken(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml(TWO_GPUS, init_error=RuntimeError("NVML Shared Library Not Found"))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_nvml_init_failure_means_no_gpus(nvml_broken: FakeNvml) -> None:
    info = hardware.collect_hardware_info()
    assert info.gpus == []
    assert info.nvidia_driver_version is None
    assert info.mem_total > 0  # the rest is still there
    assert hardware.collect_metrics_info().gpus is None
    assert nvml_broken.shutdowns == 0  # never started, never shut down
    reason = hardware.sources()["nvml"]
    assert reason is not None
    assert "NVML Shared Library Not Found" in reason


def test_nvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert hardware.collect_hardware_info().gpus == []
    assert hardware.collect_metrics_info().gpus is None
    reason = hardware.sources()["nvml"]
    assert reason is not None
    assert "pynvml" in reason


def test_nvml_failing_midway_does_not_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(TWO_GPUS)

    def broken(handle: Any) -> Any:
        raise RuntimeError("GPU is lost")

    fake.nvmlDeviceGetMemoryInfo = broken  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    info = hardware.collect_hardware_info()
    assert isinstance(info, inference.WorkerHardwareInfo)
    assert info.nvidia_driver_version == "535.54.03"
    assert hardware.collect_metrics_info().gpus is None
    assert fake.inits == fake.shutdowns == 2


@pytest.mark.usefixtures("no_psutil")
def test_nothing_available_still_collects(nvml_broken: FakeNvml) -> None:
    info = hardware.collect_hardware_info()
    metrics = hardware.collect_metrics_info()
    assert info.gpus == []
    assert metrics.gpus is None
    assert metrics.cpu_usage == 0.0
    assert all(reason is not None for reason in hardware.sources().values())
