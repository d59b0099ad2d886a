"""OpenVINO sessions for the bundled models, and cutting the recogniser's output layer.

The same ONNX models RapidOCR runs on onnxruntime can run on OpenVINO instead
(``backend="openvino"``): on x86 CPUs its convolution kernels make the detector about
three times cheaper at identical float32 precision, which is what the ``fast`` preset
builds on (``benchmarks/throughput.py`` measures it). RapidOCR's own OpenVINO sessions
take no precision or kernel-cache settings (and default to bf16 where the CPU has it),
so :class:`OpenVinoSession` replaces them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

__all__ = ["OpenVinoSession", "keep_output_classes", "latin_classes", "openvino_capabilities"]


@cache
def openvino_capabilities() -> tuple[str, ...]:
    """The CPU's OpenVINO optimisation capabilities (``"BF16"`` where it computes bfloat16 natively)."""
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoSession:
    """Callable like RapidOCR's session: one float32 batch in, the first output out.

    Args:
        model_path: an ONNX file or OpenVINO IR.
        threads: inference threads.
        precision: ``"bf16"`` to compute in bfloat16, anything else float32 (an INT8
            model's integer layers run in integers whatever this says).
        kernel_cache: compiled input shapes kept (``CPU_RUNTIME_CACHE_CAPACITY``).
        keep_classes: output classes to keep (:func:`keep_output_classes`), or None for all.
    """

    def __init__(
        self,
        model_path: str | Path,
        threads: int,
        precision: str,
        kernel_cache: int,
        keep_classes: list[int] | None,
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:  # pragma: no cover - openvino is a dependency
            raise ImportError("backend='openvino' needs the openvino package: pip install openvino") from exc
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            # An INT8 model's integer layers run in integers whatever this says; its few float
            # layers stay f32, so its pages are the same on every CPU.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "CPU_RUNTIME_CACHE_CAPACITY": kernel_cache,
            # Pinning puts every worker process's thread on the same cores: two workers ran at
            # ~60% of a core each with it, at a full core each without it.
            "ENABLE_CPU_PINNING": False,
        }
        core = ov.Core()
        model = core.read_model(str(model_path))
        if keep_classes is not None:
            keep_output_classes(model, keep_classes)
        self._request = core.compile_model(model, "CPU", config).create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer([batch])
        # The output tensor is reused by the next call: hand out a copy.
        return np.array(self._request.get_output_tensor().data, copy=True)


def latin_classes(characters: list[str]) -> list[int]:
    """Indices of the recogniser classes a product label in a Latin script can need.

    Kept: the CTC blank (0), Latin (Basic, Latin-1, Extended-A/B), Greek (``μ``),
    general punctuation (primes, quotes), super/subscripts, letterlike symbols
    (``℮``, ``ℓ``), number forms (``½``), math operators, CJK unit squares
    (``㎏``, ``㎖``), full-width forms, and the trailing space.
    """
    ranges = ((0x20, 0x250), (0x370, 0x400), (0x2000, 0x2300), (0x3300, 0x3400), (0xFF00, 0xFFF0))
    keep = [0]
    for i, char in enumerate(characters[1:], start=1):
        if len(char) == 1 and any(lo <= ord(char) < hi for lo, hi in ranges):
            keep.append(i)
    return keep


def keep_output_classes(model: object, keep: list[int]) -> None:
    """Cut an OpenVINO model's last-axis classes (weights and bias of its output layer) to ``keep``.

    Fewer classes halve recognition cost with ``charset="latin"``: the output layer
    scores each of 18,710 characters per 8 pixels of width otherwise.
    """
    from openvino import opset13 as ops

    classes = model.output(0).get_partial_shape()[-1].get_length()  # type: ignore[attr-defined]
    if classes == len(keep):  # already cut (the INT8 recogniser is saved that way)
        return
    index = np.asarray(keep)
    cut = 0
    for op in model.get_ordered_ops():  # type: ignore[attr-defined]
        if op.get_type_name() != "Constant":
            continue
        shape = list(op.get_output_shape(0))
        if not shape or shape[-1] != classes:
            continue
        sliced = ops.constant(np.ascontiguousarray(op.get_data()[..., index]))
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(sliced.output(0))
        cut += 1
    if not cut:
        raise ValueError(f"no output-layer constant with {classes} classes found")
    model.validate_nodes_and_infer_types()  # type: ignore[attr-defined]
