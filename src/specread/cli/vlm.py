"""Fine-tuning the optional VLM reader: ``finetune`` (the ``vlm`` extra)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

import specread.vlm.finetune as training
from specread.cli.console import console, progress_bar, setup_logging
from specread.cli.options import ImagesOpt, PromptTemplateOpt, SeedOpt

__all__ = ["finetune"]

D = training.FinetuneConfig
"""Its class attributes are the fields' defaults: the options' defaults."""


def finetune(
    model: Annotated[str, typer.Option("--model", help="Base VLM folder or id (or a previous output).")],
    train_csv: Annotated[Path, typer.Option("--train", help="Cleaned labels CSV (specread clean output).")],
    images_dir: ImagesOpt,
    output_dir: Annotated[Path, typer.Option("--output", "-o", help="Output folder (checkpoints, metrics, model).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")] = D.steps,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per optimizer step.")] = D.batch_size,
    micro_batch: Annotated[
        int | None, typer.Option("--micro-batch", min=1, help="Examples per forward pass (gradient accumulation).")
    ] = D.micro_batch,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (default 3e-5, LoRA 2e-4).")] = D.lr,
    lora: Annotated[
        bool, typer.Option("--lora", help="Train LoRA adapters on the language part (peft); default: all of it.")
    ] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1)] = D.lora_rank,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = D.lora_alpha,
    train_projector: Annotated[
        bool, typer.Option("--train-projector", help="Without --lora: also train the vision-to-text projector.")
    ] = D.train_projector,
    schedule: Annotated[str, typer.Option("--schedule", help="cosine or constant after warm-up.")] = D.schedule,
    warmup: Annotated[float, typer.Option("--warmup", min=0.0, max=1.0, help="Share of steps warming up.")] = D.warmup,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=1, help="Steps per checkpoint.")
    ] = D.checkpoint_every,
    eval_every: Annotated[
        int, typer.Option("--eval-every", min=0, help="Steps between validations (0: end).")
    ] = D.eval_every,
    val_csv: Annotated[Path | None, typer.Option("--val", help="Validation labels CSV.")] = D.val_csv,
    val_images: Annotated[
        Path | None, typer.Option("--val-images", help="Images of --val (default --images).")
    ] = D.val_images,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", min=0.0, max=0.9, help="Hold out this share of images (no --val).")
    ] = D.val_fraction,
    val_max: Annotated[int, typer.Option("--val-max", min=1, help="Validation questions per evaluation.")] = D.val_max,
    negatives: Annotated[
        float, typer.Option("--negatives", min=0.0, max=1.0, help="Share of images also asked an absent entity.")
    ] = D.negatives,
    template: PromptTemplateOpt = D.template,
    seed: SeedOpt = D.seed,
    device: Annotated[
        str | None, typer.Option("--device", help="cuda, cpu... (default: cuda when present).")
    ] = D.device,
    dtype: Annotated[str | None, typer.Option("--dtype", help="auto, bfloat16, float32...")] = D.dtype,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow model code from the folder.")
    ] = D.trust_remote_code,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest checkpoint in --output.")
    ] = D.resume,
) -> None:
    """Fine-tune a VLM on cleaned labels (needs the 'vlm' extra), resumable, with validation F1.

    Without --lora every language-model weight learns and the vision encoder stays frozen.
    """
    # The parameters are named as FinetuneConfig's fields: the config is built from them by name.
    options = {name: str(value) if isinstance(value, Path) else value for name, value in locals().items()}
    setup_logging(verbose=True)  # validation scores and resume points are logged at INFO
    cfg = training.FinetuneConfig(
        mode="lora" if lora else D.mode, **{f.name: options[f.name] for f in fields(D) if f.name in options}
    )
    with progress_bar("fine-tuning", total=cfg.steps) as tick:
        result = training.finetune(cfg, progress=lambda step, total, loss: tick(step, total, f"loss {loss:.4f}"))
    last = result.validations[-1]["f1"] if result.validations else None
    console.print(
        f"wrote {result.output_dir}: {result.steps_done} steps, final loss "
        f"{result.losses[-1] if result.losses else float('nan'):.4f}"
        + (f", validation F1 {last:.4f}" if last is not None else "")
        + f", {result.wall_s:.0f} s"
    )
