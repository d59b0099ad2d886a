"""The adapter for transformers-native image-text-to-text models (LLaVA, Idefics3/SmolVLM, Qwen2-VL, PaliGemma...).

``AutoProcessor`` + ``AutoModelForImageTextToText`` (``AutoModelForVision2Seq`` on older
transformers). Prompts go through the processor's chat template when it has one; otherwise the
image token is put in front of the prompt (PaliGemma's processor places it itself).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specread.vlm.base import Generation

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

from specread.vlm.training import TrainingMixin, as_list, load_model, mean_prob

__all__ = ["HFBackend"]


class HFBackend(TrainingMixin):
    """A transformers-native image-text-to-text model with its processor (a :class:`TrainableVlmBackend`).

    Args:
        model: e.g. ``LlavaForConditionalGeneration``, ``Idefics3ForConditionalGeneration``.
        processor: the matching ``AutoProcessor`` output.
        device: where inputs are sent (the model must already be there).
    """

    name = "hf"

    def __init__(self, model: Any, processor: Any, device: str = "cpu") -> None:
        self.model = model
        self.processor = processor
        self.device = device
        tok = processor.tokenizer
        self.eos_ids = sorted(
            {i for i in as_list(getattr(model.generation_config, "eos_token_id", None)) if i is not None}
            | ({tok.eos_token_id} if tok.eos_token_id is not None else set())
        )
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (self.eos_ids or [0])[0]
        self.uses_suffix = "suffix" in inspect.signature(type(processor).__call__).parameters

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ) -> HFBackend:
        """Load weights and processor from a folder or hub id (offline here: folders only)."""
        import transformers
        from transformers import AutoProcessor

        auto = getattr(transformers, "AutoModelForImageTextToText", None) or transformers.AutoModelForVision2Seq
        kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
        processor = AutoProcessor.from_pretrained(str(path), **kwargs)
        model, device = load_model(auto, path, device, dtype, **kwargs)
        return cls(model, processor, device)

    # -- prompts ---------------------------------------------------------------
    def format_prompt(self, prompt: str) -> str:
        """The model's own framing of a user turn holding one image and ``prompt``."""
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if self.uses_suffix:  # PaliGemma-style processors add image tokens and BOS themselves
            return prompt
        token = getattr(self.processor, "image_token", None) or "<image>"
        return f"{token}\n{prompt}\n"

    def _inputs(self, images: Sequence[Image.Image], texts: Sequence[str], side: str, **extra: Any) -> Any:
        tok = self.processor.tokenizer
        tok.padding_side = side
        batch = self.processor(images=list(images), text=list(texts), return_tensors="pt", padding=True, **extra)
        dtype = next(self.model.parameters()).dtype
        return {
            k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device)) if hasattr(v, "to") else v
            for k, v in batch.items()
        }

    # -- inference -------------------------------------------------------------
    def generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 24
    ) -> list[Generation]:
        """Greedy answers for (image, prompt) pairs, one batch."""
        import torch

        if not prompts:
            return []
        inputs = self._inputs(images, [self.format_prompt(p) for p in prompts], "left")
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=self.eos_ids or None,
                pad_token_id=self.pad_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
            scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        new = out.sequences[:, inputs["input_ids"].shape[1] :]
        results = []
        for i in range(new.shape[0]):
            ids = new[i].tolist()
            end = next((j + 1 for j, t in enumerate(ids) if t in self.eos_ids), len(ids))
            text = self.processor.tokenizer.decode(ids[:end], skip_special_tokens=True).strip()
            results.append(Generation(text, mean_prob(scores[i, :end].float().tolist())))
        return results

    # -- training --------------------------------------------------------------
    def training_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], answers: Sequence[str]
    ) -> dict[str, Any]:
        """Model inputs with ``labels`` on the answer tokens only (prompt, image and padding are -100).

        The answer (plus the tokenizer's EOS, so the model learns to stop) is
        appended to the framed prompt; its tokens are found at the end of each
        row and checked, so a tokenizer that merges across the boundary fails
        loudly instead of training on shifted labels.

        Raises:
            ValueError: the answer tokens are not where they should be.
        """
        import torch

        if self.uses_suffix:
            return self._inputs(images, [self.format_prompt(p) for p in prompts], "right", suffix=list(answers))
        tok = self.processor.tokenizer
        eos = tok.eos_token or ""
        texts = [self.format_prompt(p) + a + eos for p, a in zip(prompts, answers, strict=True)]
        batch = self._inputs(images, texts, "right")
        ids, mask = batch["input_ids"], batch["attention_mask"]
        labels = torch.full_like(ids, -100)
        for i, answer in enumerate(answers):
            target = tok(answer + eos, add_special_tokens=False)["input_ids"]
            end = int(mask[i].sum())
            start = end - len(target)
            if start < 0 or ids[i, start:end].tolist() != target:
                raise ValueError(
                    f"answer {answer!r} does not tokenize the same inside the prompt; "
                    "this tokenizer merges across the prompt/answer boundary"
                )
            labels[i, start:end] = ids[i, start:end]
        batch["labels"] = labels
        return batch

    def loss(self, images: Sequence[Image.Image], prompts: Sequence[str], answers: Sequence[str]) -> torch.Tensor:
        """Mean next-token loss over the answer tokens of one micro-batch."""
        return self.model(**self.training_batch(images, prompts, answers)).loss

    def save(self, out_dir: str | Path) -> None:
        """Write a folder that ``load_backend`` (and ``specread predict --model``) loads; LoRA is merged in."""
        self._merge_lora()
        self.model.save_pretrained(str(out_dir))
        self.processor.save_pretrained(str(out_dir))
