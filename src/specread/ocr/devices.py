"""Where OCR runs: ``auto``, ``cpu`` or ``cuda``, resolved once against the providers installed.

A GPU runs the bundled float models through onnxruntime's CUDA execution provider
(``pip install 'specread[gpu]'`` installs ``onnxruntime-gpu``). ``auto`` takes the GPU
when that provider is there and the CPU otherwise, so one command line serves a
laptop and a GPU node; ``cuda`` is a promise the run needs a GPU, and breaking it
is an error before any image is read, not a silent CPU run ten times slower.

Example:
    >>> from specread.ocr.devices import resolve_device
    >>> resolve_device("auto", providers=["CPUExecutionProvider"])
    'cpu'
    >>> resolve_device("auto", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    'cuda'
"""

from __future__ import annotations

from collections.abc import Sequence

from specread.errors import DeviceUnavailableError

__all__ = ["CUDA_PROVIDER", "DEVICES", "available_providers", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")
CUDA_PROVIDER = "CUDAExecutionProvider"


def available_providers() -> list[str]:
    """onnxruntime's execution providers in this installation (``onnxruntime-gpu`` adds CUDA)."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def resolve_device(requested: str, providers: Sequence[str] | None = None) -> str:
    """``"cpu"`` or ``"cuda"``: where OCR runs for ``requested`` given the installed ``providers``.

    Args:
        requested: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        providers: onnxruntime's available providers (default: this installation's; tests pass a list).

    Raises:
        ValueError: ``requested`` is not one of :data:`DEVICES`.
        DeviceUnavailableError: ``"cuda"`` without onnxruntime's CUDA provider.
    """
    if requested not in DEVICES:
        raise ValueError(f"unknown OCR device {requested!r}; choose one of: {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    found = available_providers() if providers is None else list(providers)
    if CUDA_PROVIDER in found:
        return "cuda"
    if requested == "cuda":
        raise DeviceUnavailableError("cuda", tuple(found))
    return "cpu"
