"""Building models from labels: ``priors`` (a priors table) and ``train`` (a model folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specread.cli.console import console, progress_bar, setup_logging
from specread.cli.errors import resumable
from specread.cli.options import (
    DEFAULT_PRESET,
    DEFAULT_READER,
    DEFAULT_WORKERS,
    RUNNERS,
    CacheDirOpt,
    DeviceOpt,
    ImagesOpt,
    PresetOpt,
    SeedOpt,
    WorkersOpt,
    check_choice,
    ocr_settings,
)

__all__ = ["priors", "train"]

LabelsArg = Annotated[Path, typer.Argument(help="Labels CSV: image_link,group_id,entity_name,entity_value.")]


def priors(
    train_csv: LabelsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write priors JSON.")],
    exclude: Annotated[
        list[Path] | None, typer.Option("--exclude", help="CSV(s) whose image_link rows are left out (eval sets).")
    ] = None,
) -> None:
    """Build the value/unit priors table from training labels (`specread train --priors` counts them the same way)."""
    from specread.extract.priors import build_priors_file

    table, excluded = build_priors_file(train_csv, output, exclude or [])
    console.print(f"wrote {output}: {table.n_rows} label rows counted, {excluded} image links excluded")


def train(
    labels_csv: LabelsArg,
    images: ImagesOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write (ranker, priors, manifest).")],
    preset: PresetOpt = DEFAULT_PRESET,
    device: DeviceOpt = DEFAULT_READER.ocr.device,
    priors: Annotated[
        str | None,
        typer.Option(
            "--priors",
            help="Priors from this priors.json or labels CSV; 'none': LABELS_CSV's own labels alone "
            "(default: LABELS_CSV's labels added to the packaged priors, or to --base's).",
        ),
    ] = None,
    priors_exclude: Annotated[
        list[Path] | None,
        typer.Option("--priors-exclude", help="CSV(s) whose image_link rows a --priors labels CSV is counted without."),
    ] = None,
    holdout: Annotated[
        int,
        typer.Option(
            "--holdout",
            min=0,
            help="Hold out 1/N of the rows (grouped by image and group_id) to measure F1 before the last fit; 0: none.",
        ),
    ] = 5,
    seed: SeedOpt = 0,
    workers: WorkersOpt = DEFAULT_WORKERS,
    cache_dir: CacheDirOpt = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base", help="Start from this model folder ('packaged': the packaged model) and adapt it to the labels."
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", min=1, help="Boosting rounds (default: 600 from scratch, 100 new ones with --base)."),
    ] = None,
    capacity: Annotated[
        str,
        typer.Option(
            "--capacity",
            help="Ranker size: auto (by the number of training images), small (7-leaf trees, no capacity "
            "features) or large (15-leaf trees that learn the catalogue's unit and drawing conventions).",
        ),
    ] = "auto",
    clean: Annotated[
        bool,
        typer.Option("--clean", help="Clean the labels first (the `specread clean` rules) and train on the result."),
    ] = False,
    download: Annotated[
        bool, typer.Option("--download", help="Download the labels' missing images into --images first.")
    ] = False,
    streaming: Annotated[
        bool,
        typer.Option(
            "--streaming", help="Features in disk shards, fitted shard by shard: flat memory for large label sets."
        ),
    ] = False,
    runner: Annotated[
        str, typer.Option("--runner", help="OCR pass: local (--workers processes) or ray (a Ray cluster).")
    ] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (--runner ray).")] = None,
) -> None:
    """Train a model folder on labelled images (the packaged model is built this way).

    Pages are read with --preset: predicting with the model needs the same page settings.
    Pages are cached one by one, so an interrupted run resumes where it stopped. With --clean
    the cleaned labels are written beside the folder (OUTPUT.labels.clean.csv) and the folder's
    fingerprint is theirs. Ctrl-C or SIGTERM stops it with the pages read so far cached (exit 130 / 143).
    """
    setup_logging()
    from specread.batch.train import train_ranker
    from specread.data import PACKAGED_MODEL
    from specread.io.dataset import read_labels
    from specread.rank.model import load_model
    from specread.rank.train import CAPACITIES

    check_choice("runner", runner, RUNNERS)
    check_choice("capacity", capacity, CAPACITIES)
    ocr = ocr_settings(preset, device)  # --device cuda without a GPU fails before any image is read
    start = load_model(str(PACKAGED_MODEL) if base == "packaged" else base) if base else None
    if clean:
        from specread.labels.clean import clean_csv

        cleaned = output.parent / f"{output.name}.labels.clean.csv"
        report = clean_csv(labels_csv, cleaned)
        console.print(f"cleaned {labels_csv}: {report.rows_in} rows in, {report.rows_out} out -> {cleaned}")
        labels_csv = cleaned
    if download:
        from specread.io.download import download_rows

        images.mkdir(parents=True, exist_ok=True)
        download_rows(read_labels(labels_csv), images, console=console)

    resume = "the pages read so far are in the OCR cache; run the same command again to resume"
    with resumable(resume), progress_bar("OCR") as tick:
        model, n_rows = train_ranker(
            labels_csv,
            images,
            output,
            ocr=ocr,
            priors=priors,
            priors_exclude=priors_exclude or [],
            holdout=holdout,
            cache_dir=cache_dir or DEFAULT_READER.cache_dir,
            workers=workers,
            seed=seed,
            progress=tick,
            base=start,
            rounds=rounds,
            capacity=capacity,
            streaming=streaming,
            runner=runner,
            address=address,
        )
    metrics = model.card["metrics"]
    scored = (
        f"hold-out F1 {metrics['f1']:.3f}, test-weighted F1 {metrics['weighted_f1']:.3f} on {metrics['rows']} rows"
        if "f1" in metrics
        else f"no hold-out figures ({metrics['skipped']})"
    )
    console.print(f"wrote {output}: trained on {n_rows} labelled rows, seed {seed}; {scored}")
