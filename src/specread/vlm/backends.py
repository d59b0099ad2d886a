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
checkpoints and ``save``. What the two families share (freezing, LoRA,
checkpoint state, merging on save, loading) lives in :class:`_TrainingMixin`
and :func:`_load_model`; each adapter adds only its inference and its loss.
torch and transformers are imported here only, lazily, so the default install
never needs them.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specread.vlm.base import Generation, TrainableVlmBackend, VlmBackend

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

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

log = logging.getLogger("specread")

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


def _load_model(auto: Any, path: str | Path, device: str | None, dtype: str | None, **kwargs: Any) -> tuple[Any, str]:
    """``auto.from_pretrained(path)`` in the resolved dtype, moved to the resolved device, in eval mode."""
    device = resolve_device(device)
    model = auto.from_pretrained(str(path), **kwargs, **_dtype_kwargs(resolve_dtype(dtype, device))).to(device)
    model.eval()
    return model, device


def _is_vision(name: str) -> bool:
    parts = name.split(".")
    return any(key in parts for key in VISION_KEYS)


def _mean_prob(logprobs: Sequence[float]) -> float:
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


class _TrainingMixin:
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


class HFBackend(_TrainingMixin):
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
            {i for i in _as_list(getattr(model.generation_config, "eos_token_id", None)) if i is not None}
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
        model, device = _load_model(auto, path, device, dtype, **kwargs)
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
            results.append(Generation(text, _mean_prob(scores[i, :end].float().tolist())))
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


class MoondreamBackend(_TrainingMixin):
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

        model, device = _load_model(
            AutoModelForCausalLM, path, device, dtype, revision=revision, trust_remote_code=True
        )
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


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


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
