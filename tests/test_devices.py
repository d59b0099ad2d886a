"""--device auto|cpu|cuda: provider choice, the fallback, and the error without CUDA (issue 13).

No GPU is needed: onnxruntime's provider list is faked, and so is RapidOCR where the
engine's construction is checked.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from conftest import rapid_engine
from specread.errors import DeviceUnavailableError, SpecreadError
from specread.ocr import devices, internals
from specread.ocr.devices import CUDA_PROVIDER, resolve_device
from specread.ocr.rapid import RapidOcrEngine
from specread.settings import OcrSettings, preset

CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]
WITH_CUDA = [CUDA_PROVIDER, "CPUExecutionProvider"]
_REAL_LOAD = RapidOcrEngine.load  # before conftest swaps it for a guard in fast tests


@pytest.mark.parametrize(
    ("requested", "providers", "expected"),
    [
        ("auto", CPU_ONLY, "cpu"),
        ("auto", WITH_CUDA, "cuda"),
        ("cpu", WITH_CUDA, "cpu"),
        ("cuda", WITH_CUDA, "cuda"),
    ],
)
def test_device_resolves_against_the_providers(requested: str, providers: list[str], expected: str) -> None:
    assert resolve_device(requested, providers) == expected


def test_cuda_without_the_provider_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailableError) as caught:
        resolve_device("cuda", CPU_ONLY)

    error = caught.value
    assert isinstance(error, SpecreadError) and isinstance(error, RuntimeError)
    assert error.device == "cuda" and error.providers == tuple(CPU_ONLY)
    assert "specread[gpu]" in str(error) and "CPUExecutionProvider" in str(error)


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("gpu", WITH_CUDA)
    with pytest.raises(ValueError, match="unknown OCR device"):
        rapid_engine(device="tpu")


def test_this_installation_resolves_auto_to_what_onnxruntime_offers() -> None:
    expected = "cuda" if CUDA_PROVIDER in devices.available_providers() else "cpu"

    assert resolve_device("auto") == expected


def test_settings_default_to_auto() -> None:
    assert OcrSettings().device == "auto"
    assert all(preset(name).device == "auto" for name in ("accurate", "fast"))


def test_a_cpu_engine_keeps_its_fingerprint_and_a_gpu_engine_gets_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "available_providers", lambda: CPU_ONLY)
    cpu = RapidOcrEngine(preset("fast"))
    assert cpu.resolved_device() == "cpu"
    assert cpu.fingerprint() == rapid_engine("fast", device="cpu").fingerprint()

    monkeypatch.setattr(devices, "available_providers", lambda: WITH_CUDA)
    gpu = RapidOcrEngine(preset("fast"))
    assert gpu.resolved_device() == "cuda"
    assert gpu.fingerprint().endswith("-cuda") and "-ov-" not in gpu.fingerprint()
    assert gpu.at_det_side(1600).resolved_device() == "cuda"  # the second pass reads where the first does


def test_an_engine_asked_for_cuda_without_it_fails_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "available_providers", lambda: CPU_ONLY)

    with pytest.raises(DeviceUnavailableError):
        rapid_engine(device="cuda").fingerprint()


class _FakeRapidOcr:
    """Records the parameters RapidOCR would be built with."""

    built: ClassVar[list[dict[str, object]]] = []

    def __init__(self, params: dict[str, object]) -> None:
        _FakeRapidOcr.built.append(params)
        self.text_det, self.text_rec, self.text_cls = (
            SimpleNamespace(session=None, rec_image_shape=[3, 48, 320]) for _ in range(3)
        )


@pytest.mark.parametrize("device_providers", [WITH_CUDA, CPU_ONLY], ids=["gpu", "cpu-fallback"])
def test_the_engine_asks_onnxruntime_for_cuda_only_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch, device_providers: list[str]
) -> None:
    import rapidocr

    monkeypatch.setattr(devices, "available_providers", lambda: device_providers)
    monkeypatch.setattr(rapidocr, "RapidOCR", _FakeRapidOcr)
    _FakeRapidOcr.built.clear()

    _REAL_LOAD(rapid_engine(backend="onnxruntime"))

    (params,) = _FakeRapidOcr.built
    assert params.get("EngineConfig.onnxruntime.use_cuda", False) is (device_providers is WITH_CUDA)


def test_a_gpu_engine_leaves_openvino_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import rapidocr

    monkeypatch.setattr(devices, "available_providers", lambda: WITH_CUDA)
    monkeypatch.setattr(rapidocr, "RapidOCR", _FakeRapidOcr)
    monkeypatch.setattr(internals, "openvino_params", lambda threads: pytest.fail("OpenVINO on a GPU run"))
    _FakeRapidOcr.built.clear()

    _REAL_LOAD(RapidOcrEngine(preset("fast")))

    (params,) = _FakeRapidOcr.built
    assert params["EngineConfig.onnxruntime.use_cuda"] is True
    assert not any(key.endswith("engine_type") for key in params)  # every stage on onnxruntime


def test_the_gpu_preset_batches_pictures_and_pads_the_detector_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "available_providers", lambda: WITH_CUDA)
    gpu = RapidOcrEngine(preset("gpu"))

    assert gpu.resolved_device() == "cuda" and gpu.fingerprint().endswith("-cuda")
    assert "-dp320-" in gpu.fingerprint() and "-padline-" in gpu.fingerprint()
    assert gpu.settings.batch_images > preset("fast").batch_images
    assert gpu.settings.rec_batch > preset("fast").rec_batch


@pytest.mark.parametrize("command", ["predict", "read"])
def test_cli_device_cuda_without_a_gpu_exits_2(
    cli, tmp_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setattr(devices, "available_providers", lambda: CPU_ONLY)
    if command == "predict":
        args = ["predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", tmp_path / "out.csv"]
    else:
        args = ["read", next(Path(tmp_dataset.images).iterdir()), "--entity", "item_weight"]

    result = cli(*args, "--device", "cuda")

    assert result.exit_code == 2
    assert "OCR device 'cuda' is not available" in result.output
    assert not (tmp_path / "out.csv").exists()


def test_cli_unknown_device_exits_2(cli, tmp_dataset, tmp_path: Path) -> None:
    result = cli(
        "predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", tmp_path / "o.csv", "--device", "tpu"
    )

    assert result.exit_code == 2
    assert "unknown OCR device 'tpu'" in result.output
