"""Fine-tuning a VLM on challenge labels: the reference solution's recipe, resumable.

The reference fine-tuned Moondream2's language part (vision frozen) on the
training labels with its seed prompt: 300 batches of 8 gave F1 0.452, 2,250
batches of 16 after cleaning the labels 0.612, 10,000 more 0.638. This module
does the same for any model :func:`specread.vlm.backends.load_backend` loads:

* ``mode="text-only"``: every language-model weight learns, the vision encoder
  and projector stay frozen; ``mode="lora"``: LoRA adapters (peft) on the
  language model's linear layers, merged into the weights when saved;
* an effective batch of ``batch_size`` examples split into micro-batches
  (gradient accumulation), AdamW, linear warm-up then cosine decay, gradient
  clipping; on GPU the frozen weights stay bf16 and the trained ones fp32
  under bf16 autocast;
* a checkpoint every ``checkpoint_every`` steps (trained weights, optimizer,
  schedule, random states) and ``resume=True`` continuing from the newest one
  with the same data order, so a resumed run ends where an uninterrupted one does;
* validation F1 with specread's own metric every ``eval_every`` steps;
* fixed seeds; the output folder is a normal model folder plus
  ``specread_vlm.json`` (the prompt template used), ready for ``specread predict --reader vlm --model``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from specread.answer import Answer
from specread.io.images import load_image
from specread.metrics import score_rows
from specread.vlm.base import TrainableVlmBackend
from specread.vlm.data import Example, batch_examples, load_examples, split_by_image
from specread.vlm.prompt import PromptTemplate, load_template, parse_answer

__all__ = ["MODEL_CARD", "FinetuneConfig", "FinetuneResult", "evaluate_examples", "finetune", "latest_checkpoint"]

log = logging.getLogger("specread")

MODEL_CARD = "specread_vlm.json"
"""Written next to the weights: the prompt template and how the model was trained."""


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run needs, as plain data (saved in each checkpoint).

    Attributes:
        model: base model folder or id (or a previous output folder).
        train_csv: cleaned labels (``specread clean`` output).
        images_dir: images named by the file name of ``image_link``.
        output_dir: where checkpoints, ``metrics.jsonl`` and the final model go.
        steps: optimizer steps (each of ``batch_size`` examples).
        batch_size: examples per optimizer step.
        micro_batch: examples per forward pass (gradient accumulation); default ``batch_size``.
        lr: peak learning rate; default 3e-5 for text-only, 2e-4 for LoRA.
        warmup: share of steps spent warming up linearly.
        schedule: ``"cosine"`` (decay to 10% of the peak) or ``"constant"`` after warm-up.
        mode: ``"text-only"`` or ``"lora"``.
        checkpoint_every: steps between checkpoints (and at the end).
        eval_every: steps between validation runs (0: only at the end).
        val_csv: validation labels (else ``val_fraction`` of the training images is held out).
        val_images: images of ``val_csv`` (default ``images_dir``).
        val_fraction: share of training images held out when no ``val_csv`` is given.
        val_max: at most this many validation questions per evaluation.
        negatives: share of images also asked about an absent entity (answer "blank").
        template: prompt template file (default: the reference's seed prompt).
        resume: continue from the newest checkpoint in ``output_dir``.
        stop_at: end the run after this step without the final save (tests simulate a kill with it).
    """

    model: str
    train_csv: str
    images_dir: str
    output_dir: str
    steps: int = 100
    batch_size: int = 16
    micro_batch: int | None = None
    lr: float | None = None
    warmup: float = 0.05
    schedule: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    mode: str = "text-only"
    lora_rank: int = 16
    lora_alpha: int = 32
    train_projector: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    eval_every: int = 500
    val_csv: str | None = None
    val_images: str | None = None
    val_fraction: float = 0.0
    val_max: int = 512
    negatives: float = 0.1
    template: str | None = None
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    trust_remote_code: bool = False
    max_new_tokens: int = 24
    eval_batch_size: int = 16
    resume: bool = False
    stop_at: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be at least 1")
        if self.micro_batch is not None and not 1 <= self.micro_batch <= self.batch_size:
            raise ValueError("micro_batch must be between 1 and batch_size")
        if self.mode not in ("text-only", "lora"):
            raise ValueError(f"unknown mode {self.mode!r}; choose text-only or lora")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose cosine or constant")

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (2e-4 if self.mode == "lora" else 3e-5)


@dataclass
class FinetuneResult:
    """What a run did: where the model is, the loss per step and each validation score."""

    output_dir: Path
    steps_done: int
    losses: list[float] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    train_examples: int = 0
    rows_without_image: int = 0
    finished: bool = False


@lru_cache(maxsize=64)
def _image(path: Path) -> Image.Image:
    arr, _ = load_image(path)
    return Image.fromarray(arr)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate_examples(
    backend: TrainableVlmBackend,
    template: PromptTemplate,
    examples: Sequence[Example],
    batch_size: int = 16,
    max_new_tokens: int = 24,
) -> tuple[dict[str, Any], list[str]]:
    """Score generated answers against the examples' labels with :func:`specread.metrics.score_rows`.

    Returns:
        ``(report, predictions)``: the metric report (``to_dict()``) and the prediction text per example.
    """
    preds: list[str] = []
    was_training = getattr(backend.model, "training", False)
    backend.model.eval()
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            gens = backend.generate(
                [_image(e.image) for e in chunk], [template.render(e.entity) for e in chunk], max_new_tokens
            )
            for e, g in zip(chunk, gens, strict=True):
                answer = parse_answer(g.text, e.entity)
                preds.append(answer.text if answer else "")
    finally:
        if was_training:
            backend.model.train()
    keys = [str(i) for i in range(len(examples))]
    report = score_rows(
        dict(zip(keys, preds, strict=True)),
        {k: e.value for k, e in zip(keys, examples, strict=True)},
        {k: e.entity for k, e in zip(keys, examples, strict=True)},
    ).to_dict()
    report["exact"] = sum(p == _canonical(e.value) for p, e in zip(preds, examples, strict=True))
    return report, preds


def _canonical(value: str) -> str:
    """A label as specread writes it (``"500 gram"`` -> ``"500.0 gram"``), ``""`` for an empty one."""
    answer = Answer.parse(value)
    return "" if answer is None else answer.text


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``output_dir/checkpoints``, or None."""
    root = Path(output_dir) / "checkpoints"
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def _schedule(cfg: FinetuneConfig) -> Callable[[int], float]:
    warm = max(1, round(cfg.warmup * cfg.steps)) if cfg.warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, cfg.steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _save_checkpoint(
    cfg: FinetuneConfig, backend: TrainableVlmBackend, optimizer: Any, scheduler: Any, step: int
) -> Path:
    import torch

    root = Path(cfg.output_dir) / "checkpoints"
    path = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(backend.trainable_state(), tmp / "trainable.pt")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "config": asdict(cfg)}, indent=2), encoding="utf-8")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)  # a checkpoint is visible only once complete
    old = sorted(p for p in root.glob("step-*") if p != path)
    for stale in old[: max(0, len(old) - cfg.keep_checkpoints + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    return path


def _load_checkpoint(path: Path, backend: TrainableVlmBackend, optimizer: Any, scheduler: Any) -> int:
    import torch

    backend.load_trainable_state(torch.load(path / "trainable.pt", map_location="cpu"))
    opt = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(json.loads((path / "state.json").read_text(encoding="utf-8"))["step"])


def finetune(
    cfg: FinetuneConfig,
    progress: Callable[[int, int, float], None] | None = None,
    backend: TrainableVlmBackend | None = None,
) -> FinetuneResult:
    """Run (or resume) one fine-tuning job; see the module docstring for the recipe.

    Args:
        cfg: the run's settings.
        progress: called with ``(step, steps, loss)`` after every optimizer step.
        backend: an already loaded :class:`~specread.vlm.base.TrainableVlmBackend` (tests pass
            stand-ins); default loads ``cfg.model`` with :func:`~specread.vlm.backends.load_backend`.

    Returns:
        The run's losses and validations; ``finished`` is False when ``stop_at`` ended it early.

    Raises:
        ValueError: no usable training examples, or ``resume`` without a checkpoint.
    """
    from specread.vlm.backends import load_backend, resolve_device

    started = time.perf_counter()
    _seed_everything(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = load_template(cfg.template)
    train, val, missing = _split_examples(cfg)
    device = resolve_device(cfg.device)
    if backend is None:
        backend = load_backend(cfg.model, device=device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    params, optimizer, scheduler = _optimizer(cfg, backend)
    start = _resume(out, backend, optimizer, scheduler) if cfg.resume else 0
    result = FinetuneResult(out, start, train_examples=len(train), rows_without_image=missing)
    amp = _autocast(device)
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as metrics:
        backend.model.train()
        for step in range(start, cfg.steps):
            batch = batch_examples(train, step, cfg.batch_size, cfg.seed)
            total = _train_step(cfg, backend, template, batch, params, optimizer, scheduler, amp)
            done = step + 1
            result.losses.append(total)
            result.steps_done = done
            record: dict[str, Any] = {"step": done, "loss": round(total, 6), "lr": scheduler.get_last_lr()[0]}
            if val and _due(done, cfg.steps, cfg.eval_every):
                record["val"] = _validate(cfg, backend, template, val, amp, result, done)
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            if progress:
                progress(done, cfg.steps, total)
            if _due(done, cfg.steps, cfg.checkpoint_every):
                _save_checkpoint(cfg, backend, optimizer, scheduler, done)
            if cfg.stop_at is not None and done >= cfg.stop_at and done < cfg.steps:
                result.wall_s = time.perf_counter() - started
                return result
    _save_model(cfg, backend, template, result)
    result.finished = True
    result.wall_s = time.perf_counter() - started
    return result


def _split_examples(cfg: FinetuneConfig) -> tuple[list[Example], list[Example], int]:
    """``(train, val, rows_without_image)``: validation from ``val_csv``, else a share of the training images."""
    examples, missing = load_examples(cfg.train_csv, cfg.images_dir, cfg.negatives, cfg.seed)
    if cfg.val_csv:
        val, _ = load_examples(cfg.val_csv, cfg.val_images or cfg.images_dir, 0.0, cfg.seed)
        train = examples
    elif cfg.val_fraction > 0:
        train, val = split_by_image(examples, cfg.val_fraction, cfg.seed)
    else:
        train, val = examples, []
    if not train:
        raise ValueError(f"no training examples with an image under {cfg.images_dir} ({missing} rows lack one)")
    val = val[: cfg.val_max]
    log.info("%d training questions (%d rows without image), %d validation", len(train), missing, len(val))
    return train, val, missing


def _optimizer(cfg: FinetuneConfig, backend: TrainableVlmBackend) -> tuple[list[Any], Any, Any]:
    """``(params, optimizer, scheduler)`` for the weights ``cfg.mode`` trains, which become fp32 first."""
    import torch

    backend.prepare_training(cfg.mode, cfg.lora_rank, cfg.lora_alpha, cfg.train_projector)
    params = [p for p in backend.model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in params:  # fp32 master weights for what learns, even when the rest is bf16
            p.data = p.data.float()
    optimizer = torch.optim.AdamW(params, lr=cfg.peak_lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    return params, optimizer, scheduler


def _resume(out: Path, backend: TrainableVlmBackend, optimizer: Any, scheduler: Any) -> int:
    """Load the newest checkpoint under ``out``; the step it was written after."""
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        raise ValueError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    start = _load_checkpoint(ckpt, backend, optimizer, scheduler)
    log.info("resumed from %s (step %d)", ckpt, start)
    return start


def _autocast(device: str) -> AbstractContextManager[Any]:
    """bf16 autocast on a GPU that has it (frozen bf16 and trained fp32 weights meet), else nothing."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def _due(done: int, steps: int, every: int) -> bool:
    """Whether step ``done`` is the last one or a multiple of ``every`` (0: only the last)."""
    return done == steps or bool(every and done % every == 0)


def _train_step(
    cfg: FinetuneConfig,
    backend: TrainableVlmBackend,
    template: PromptTemplate,
    batch: Sequence[Example],
    params: list[Any],
    optimizer: Any,
    scheduler: Any,
    amp: AbstractContextManager[Any],
) -> float:
    """One optimizer step over ``batch`` in micro-batches (gradients accumulated); the batch's mean loss."""
    import torch

    micro = cfg.micro_batch or cfg.batch_size
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i in range(0, len(batch), micro):
        chunk = batch[i : i + micro]
        with amp:
            loss = backend.loss(
                [_image(e.image) for e in chunk],
                [template.render(e.entity) for e in chunk],
                [e.answer for e in chunk],
            )
        (loss * len(chunk) / len(batch)).backward()
        total += float(loss.detach()) * len(chunk) / len(batch)
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    return total


def _validate(
    cfg: FinetuneConfig,
    backend: TrainableVlmBackend,
    template: PromptTemplate,
    val: Sequence[Example],
    amp: AbstractContextManager[Any],
    result: FinetuneResult,
    done: int,
) -> dict[str, Any]:
    """Score ``val`` after step ``done`` into ``result``; the summary that ``metrics.jsonl`` keeps."""
    with amp:  # frozen bf16 and trained fp32 weights meet here too
        report, _ = evaluate_examples(backend, template, val, cfg.eval_batch_size, cfg.max_new_tokens)
    result.validations.append({"step": done, **report})
    log.info("step %d: validation F1 %.4f", done, report["f1"])
    return {k: report[k] for k in ("f1", "precision", "recall", "rows", "exact")}


def _save_model(
    cfg: FinetuneConfig, backend: TrainableVlmBackend, template: PromptTemplate, result: FinetuneResult
) -> None:
    """The final weights in ``cfg.output_dir`` and, beside them, the model card ``predict`` reads the prompt from."""
    out = Path(cfg.output_dir)
    backend.model.eval()
    backend.save(out)
    card = {
        "base_model": cfg.model,
        "mode": cfg.mode,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "template": template.text,
        "hint_suffix": template.hint_suffix,
        "final_validation": result.validations[-1] if result.validations else None,
    }
    (out / MODEL_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
