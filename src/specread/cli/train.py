"""Building the packaged models from labels: ``priors`` and ``train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specread.cli.console import console, progress_bar, setup_logging
from specread.cli.options import DEFAULT_READER, CacheDirOpt, ImagesOpt, SeedOpt, WorkersOpt

__all__ = ["priors", "train"]

LabelsArg = Annotated[Path, typer.Argument(help="Labels CSV: image_link,group_id,entity_name,entity_value.")]


def priors(
    train_csv: LabelsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write priors JSON.")],
    exclude: Annotated[
        list[Path] | None, typer.Option("--exclude", help="CSV(s) whose image_link rows are left out (eval sets).")
    ] = None,
) -> None:
    """Build the value/unit priors table from training labels (the packaged one is built this way)."""
    from specread.extract.priors import build_priors_file

    table, excluded = build_priors_file(train_csv, output, exclude or [])
    console.print(f"wrote {output}: {table.n_rows} label rows counted, {excluded} image links excluded")


def train(
    labels_csv: LabelsArg,
    images: ImagesOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ranker model.")],
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Train the candidate ranker on labelled images (the packaged model is built this way)."""
    setup_logging()
    from specread.batch.train import train_ranker

    with progress_bar("OCR") as tick:
        _, n_rows = train_ranker(
            labels_csv,
            images,
            output,
            cache_dir=cache_dir or DEFAULT_READER.cache_dir,
            workers=workers,
            seed=seed,
            progress=tick,
        )
    console.print(f"wrote {output}: trained on {n_rows} labelled rows, seed {seed}")
