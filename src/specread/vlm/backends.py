"""Model adapters: one small surface over very different vision-language models.

Two families are supported:

* **transformers-native image-text-to-text models** (LLaVA, Idefics3/SmolVLM,
  Qwen2-VL, PaliGemma...): ``AutoProcessor`` + ``AutoModelForImageTextToText``
  (``AutoModelForVision2Seq`` on older transformers). Prompts go through the
  processor's chat template when it has one; otherwise the image token is put
  in front of the prompt (PaliGemma's processor places it itself).
* **Moondream2**, whose code ships with its weights (``trust_remote_code``).
  Inference uses its documented methods: ``query(image, question)["answer"]``
  (2025 revisions) or ``encode_image`` + ``answer_question`` / ``batch_answer``
  (2024 revisions). Fine-tuning follows Moondream's own fine-tuning notebook:
  image embeddings from ``vision_encoder`` spliced after the BOS embedding of
  ``text_model`` (2024 revisions only; the 2025 revisions need their own
  training scripts).

Both implement :class:`specread.vlm.base.TrainableVlmBackend` (structurally):
``generate`` (batched, greedy, with a confidence: the geometric-mean
probability of the generated tokens where the model exposes scores), ``loss``
for training, ``prepare_training`` (vision frozen, language part trained fully
or through LoRA), ``trainable_state`` / ``load_trainable_state`` for
checkpoints and ``save``. One adapter per module (:mod:`specread.vlm.hf`,
:mod:`specread.vlm.moondream`); what the two families share (freezing, LoRA,
checkpoint state, merging on save, loading) lives in
:class:`specread.vlm.training.TrainingMixin` and :func:`~specread.vlm.training.load_model`;
each adapter adds only its inference and its loss. This module picks the adapter
(:func:`load_backend`). torch and transformers are imported lazily, so the
default install never needs them.
"""

from __future__ import annotations

import json
from pathlib import Path

from specread.vlm.base import Generation, TrainableVlmBackend, VlmBackend
from specread.vlm.hf import HFBackend
from specread.vlm.moondream import MoondreamBackend
from specread.vlm.training import VISION_KEYS, resolve_device, resolve_dtype

__all__ = [
    "VISION_KEYS",
    "Generation",
    "HFBackend",
    "MoondreamBackend",
    "TrainableVlmBackend",
    "VlmBackend",
    "load_backend",
    "resolve_device",
    "resolve_dtype",
]


def _model_type(path: str | Path) -> str:
    config = Path(path) / "config.json"
    if config.is_file():
        return str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
    return ""


def load_backend(
    model: str | Path,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> TrainableVlmBackend:
    """Load a VLM from a folder (or hub id, where a hub is reachable) behind the right adapter.

    Moondream is recognised by ``"moondream"`` in its config's ``model_type``
    or in its name; everything else goes through ``AutoProcessor`` +
    ``AutoModelForImageTextToText``.

    Example:
        >>> backend = load_backend("models/specread-vlm")          # doctest: +SKIP
        >>> backend.generate([image], ["Extract item weight ..."])  # doctest: +SKIP
        [Generation(text='500.0 gram', confidence=0.93)]
    """
    if "moondream" in _model_type(model) or "moondream" in str(model).lower():
        return MoondreamBackend.load(model, device=device, dtype=dtype, revision=revision)
    return HFBackend.load(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, revision=revision)
