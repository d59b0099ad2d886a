"""What the VLM adapters share: device and dtype, loading, and training (freezing, LoRA, state, merging).

Each adapter (:mod:`specread.vlm.hf`, :mod:`specread.vlm.moondream`) adds only its inference and
its loss on top of :class:`TrainingMixin` and :func:`load_model`. torch and transformers are
imported lazily, inside the functions, so the default install never needs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["VISION_KEYS", "TrainingMixin", "as_list", "load_model", "mean_prob", "resolve_device", "resolve_dtype"]

VISION_KEYS = (
    "vision_tower",
    "vision_model",
    "vision_encoder",
    "visual",
    "multi_modal_projector",
    "mm_projector",
    "connector",
    "image_newline",
    "vision",
)
"""Parameter-name parts that mark the vision side (encoder and projector): frozen when training the language part."""


def resolve_device(device: str | None = None) -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"`` (an explicit choice is kept)."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | None, device: str) -> torch.dtype:
    """bf16 on GPU (when supported), float32 on CPU, unless ``dtype`` names one."""
    import torch

    if dtype and dtype != "auto":
        try:
            return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16}.get(
                dtype, getattr(torch, dtype)
            )
        except AttributeError:
            raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    """``from_pretrained`` renamed ``torch_dtype`` to ``dtype`` in transformers 4.56."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def load_model(auto: Any, path: str | Path, device: str | None, dtype: str | None, **kwargs: Any) -> tuple[Any, str]:
    """``auto.from_pretrained(path)`` in the resolved dtype, moved to the resolved device, in eval mode."""
    device = resolve_device(device)
    model = auto.from_pretrained(str(path), **kwargs, **_dtype_kwargs(resolve_dtype(dtype, device))).to(device)
    model.eval()
    return model, device


def _is_vision(name: str) -> bool:
    parts = name.split(".")
    return any(key in parts for key in VISION_KEYS)


def mean_prob(logprobs: Sequence[float]) -> float:
    vals = [v for v in logprobs if math.isfinite(v)]
    return math.exp(sum(vals) / len(vals)) if vals else 0.0


def _lora_targets(model: torch.nn.Module, language_only: Callable[[str], bool]) -> list[str]:
    import torch

    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and language_only(name) and not name.endswith("lm_head")
    ]
    if not names:
        raise ValueError("found no linear layers in the language part to put LoRA adapters on")
    return names


class TrainingMixin:
    """Freezing, LoRA wrapping, trainable state and merging on save, shared by the adapters.

    An adapter says what it trains through three hooks: :meth:`_trainable_root`
    (the module that learns: the whole model, or Moondream's ``text_model``),
    :meth:`_set_trainable_root` (where a LoRA-wrapped or merged root goes back)
    and :meth:`_language_param` (which names under the root are language side).
    """

    name: str
    model: Any
    lora: bool = False

    def _language_param(self, name: str) -> bool:
        return not _is_vision(name)

    def prepare_training(
        self, mode: str = "text-only", lora_rank: int = 16, lora_alpha: int = 32, train_projector: bool = False
    ) -> list[str]:
        """Freeze the vision side and choose what learns; returns the trainable parameter names.

        Args:
            mode: ``"text-only"`` trains every language-model weight (the
                reference's "language part only"); ``"lora"`` trains LoRA
                adapters on the language model's linear layers (peft).
            lora_rank: LoRA rank ``r``.
            lora_alpha: LoRA scaling ``alpha``.
            train_projector: also train the vision->text projector (text-only mode).
        """
        if mode not in ("text-only", "lora"):
            raise ValueError(f"unknown training mode {mode!r}; choose text-only or lora")
        model = self._trainable_root()
        for p in self.model.parameters():  # what lies outside the root never learns
            p.requires_grad_(False)
        if mode == "lora":
            from peft import LoraConfig, get_peft_model

            targets = _lora_targets(model, self._language_param)
            config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=targets)
            wrapped = get_peft_model(model, config)
            self._set_trainable_root(wrapped)
            self.lora = True
        else:
            projector = ("multi_modal_projector", "mm_projector", "connector", "merger", "projection")
            for name, p in model.named_parameters():
                keep = self._language_param(name) or (train_projector and any(k in name for k in projector))
                p.requires_grad_(keep)
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        if not names:
            raise ValueError("nothing to train: no language-model parameters were found")
        return names

    def _trainable_root(self) -> Any:
        return self.model

    def _set_trainable_root(self, module: Any) -> None:
        self.model = module

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable weights by name (what a checkpoint stores)."""
        return {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put checkpointed trainable weights back; every trainable name must be present."""
        params = dict(self.model.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and n not in state]
        if missing:
            raise ValueError(f"checkpoint lacks {len(missing)} trainable weights, e.g. {missing[0]}")
        import torch

        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].device, params[name].dtype))

    def _merge_lora(self) -> None:
        """Fold trained LoRA adapters into the root's weights (a plain model again); no-op without LoRA."""
        if self.lora:
            self._set_trainable_root(self._trainable_root().merge_and_unload())
            self.lora = False


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
