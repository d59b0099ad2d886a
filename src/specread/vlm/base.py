"""The backend interface: what the VLM reader and the fine-tuning loop ask of a model adapter.

Two small protocols, satisfied structurally (no base class to inherit):

* :class:`VlmBackend`: answers for (image, prompt) pairs; all
  :class:`specread.vlm.reader.VlmReader` needs, so a scripted stand-in with one
  ``generate`` method is a valid backend;
* :class:`TrainableVlmBackend`: a :class:`VlmBackend` that
  :func:`specread.vlm.finetune.finetune` can train, checkpoint and save.

:class:`specread.vlm.backends.HFBackend` and
:class:`specread.vlm.backends.MoondreamBackend` implement both, and
:func:`specread.vlm.backends.load_backend` returns a :class:`TrainableVlmBackend`.
This module imports neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

__all__ = ["Generation", "TrainableVlmBackend", "VlmBackend"]


@dataclass(frozen=True)
class Generation:
    """One generated answer and how sure the model was (0..1; 0.5 when the model gives no scores)."""

    text: str
    confidence: float


@runtime_checkable
class VlmBackend(Protocol):
    """A vision-language model that answers prompts about images."""

    def generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 24
    ) -> list[Generation]:
        """Greedy answers for the pairs ``zip(images, prompts)``, one per pair, in order."""
        ...


@runtime_checkable
class TrainableVlmBackend(VlmBackend, Protocol):
    """A :class:`VlmBackend` the fine-tuning loop can train.

    Attributes:
        name: the adapter family (``"hf"``, ``"moondream"``), for logs and messages.
        model: the whole ``torch.nn.Module``: the loop calls ``train()``, ``eval()``
            and ``parameters()`` on it (the optimizer takes those with ``requires_grad``).
    """

    name: str
    model: Any

    def prepare_training(
        self, mode: str = "text-only", lora_rank: int = 16, lora_alpha: int = 32, train_projector: bool = False
    ) -> list[str]:
        """Freeze the vision side, make the language part (or LoRA adapters on it) trainable; trainable names."""
        ...

    def loss(self, images: Sequence[Image.Image], prompts: Sequence[str], answers: Sequence[str]) -> torch.Tensor:
        """Mean next-token loss over the answer tokens of one micro-batch (a scalar to ``backward()``)."""
        ...

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable weights by name (what a checkpoint stores)."""
        ...

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put checkpointed trainable weights back."""
        ...

    def save(self, out_dir: str | Path) -> None:
        """Write a model folder that :func:`specread.vlm.backends.load_backend` loads (LoRA merged in)."""
        ...
