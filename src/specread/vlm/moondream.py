"""The adapter for Moondream2, whose code ships with its weights (``trust_remote_code``).

Inference uses its documented methods: ``query(image, question)["answer"]`` (2025 revisions) or
``encode_image`` + ``answer_question`` / ``batch_answer`` (2024 revisions). Fine-tuning follows
Moondream's own fine-tuning notebook: image embeddings from ``vision_encoder`` spliced after the BOS
embedding of ``text_model`` (2024 revisions only; the 2025 revisions need their own training scripts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specread.vlm.base import Generation

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

from specread.vlm.training import TrainingMixin, load_model

__all__ = ["MoondreamBackend"]


class MoondreamBackend(TrainingMixin):
    """Moondream2 through its own (remote-code) methods (a :class:`TrainableVlmBackend`).

    Args:
        model: the object ``AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`` returns.
        tokenizer: needed by the 2024 revisions (``answer_question``) and for fine-tuning.
        device: where the model lives.
    """

    name = "moondream"
    QUESTION = "\n\nQuestion: {question}\n\nAnswer:"
    """The framing of Moondream's ``answer_question`` and of its fine-tuning notebook."""

    def __init__(self, model: Any, tokenizer: Any = None, device: str = "cpu") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    @classmethod
    def load(
        cls, path: str | Path, device: str | None = None, dtype: str | None = None, revision: str | None = None
    ) -> MoondreamBackend:
        """Load Moondream2 (its code comes with its weights, so remote code is trusted)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model, device = load_model(AutoModelForCausalLM, path, device, dtype, revision=revision, trust_remote_code=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), revision=revision)
        except (OSError, ValueError):  # 2025 revisions carry their own tokenizer inside the model
            tokenizer = None
        return cls(model, tokenizer, device)

    # -- inference -------------------------------------------------------------
    def generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 24
    ) -> list[Generation]:
        """Answers through ``query`` (new API), ``batch_answer`` or ``encode_image`` + ``answer_question``."""
        model = self.model  # LoRA wraps text_model in place, never the whole model
        texts: list[str]
        if hasattr(model, "query"):
            encoded: dict[int, Any] = {}
            texts = []
            for image, prompt in zip(images, prompts, strict=True):
                key = id(image)  # one encoding per image when several entities share it
                if key not in encoded:
                    encoded[key] = model.encode_image(image) if hasattr(model, "encode_image") else image
                texts.append(str(model.query(encoded[key], prompt)["answer"]))
        elif hasattr(model, "batch_answer") and self.tokenizer is not None:
            texts = list(
                model.batch_answer(
                    images=list(images), prompts=list(prompts), tokenizer=self.tokenizer, max_new_tokens=max_new_tokens
                )
            )
        else:
            texts = [
                model.answer_question(model.encode_image(image), prompt, self.tokenizer, max_new_tokens=max_new_tokens)
                for image, prompt in zip(images, prompts, strict=True)
            ]
        return [Generation(t.strip(), 0.5) for t in texts]

    # -- training (2024 revisions: vision_encoder + text_model) ---------------
    def _trainable_root(self) -> Any:
        model = self.model
        if not (hasattr(model, "vision_encoder") and hasattr(model, "text_model")):
            raise ValueError(
                "fine-tuning needs a Moondream2 revision with vision_encoder and text_model (2024 revisions); "
                "the 2025 revisions are trained with Moondream's own scripts"
            )
        if self.tokenizer is None:
            raise ValueError("fine-tuning Moondream2 needs its tokenizer")
        return model.text_model

    def _set_trainable_root(self, module: Any) -> None:
        self.model.text_model = module

    def _language_param(self, name: str) -> bool:
        return True  # the root is text_model: all of it learns, as in the reference (vision frozen)

    def loss(self, images: Sequence[Image.Image], prompts: Sequence[str], answers: Sequence[str]) -> torch.Tensor:
        """The fine-tuning notebook's loss: BOS, image embeddings, question, then the answer (scored)."""
        import torch

        model, tok = self.model, self.tokenizer
        with torch.no_grad():
            img_embs = model.vision_encoder(list(images))
        n_img = img_embs.shape[1]
        tokens, labels = [], []
        for prompt, answer in zip(prompts, answers, strict=True):
            q = tok(self.QUESTION.format(question=prompt), add_special_tokens=False)["input_ids"]
            a = tok(f" {answer}{tok.eos_token}", add_special_tokens=False)["input_ids"]
            tokens.append([tok.bos_token_id, *q, *a])
            labels.append([-100] * (1 + n_img + len(q)) + a)
        width = max(len(lab) for lab in labels)
        mask = [[1] * len(lab) + [0] * (width - len(lab)) for lab in labels]
        labels = [lab + [-100] * (width - len(lab)) for lab in labels]
        tokens = [t + [tok.eos_token_id] * (width - n_img - len(t)) for t in tokens]
        text = model.text_model
        tok_t = torch.tensor(tokens, device=self.device)
        embs = text.get_input_embeddings()(tok_t)
        inputs = torch.cat([embs[:, :1], img_embs.to(embs.dtype), embs[:, 1:]], dim=1)
        out = text(
            inputs_embeds=inputs,
            attention_mask=torch.tensor(mask, device=self.device),
            labels=torch.tensor(labels, device=self.device),
        )
        return out.loss

    def save(self, out_dir: str | Path) -> None:
        """``save_pretrained`` of the whole model (LoRA merged into ``text_model``) plus its tokenizer."""
        self._merge_lora()
        self.model.save_pretrained(str(out_dir))
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(out_dir))
