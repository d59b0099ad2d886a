"""Reading images and scoring the answers: ``predict``, ``read``, ``check``, ``evaluate``."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from specread.cli.console import console, progress_bar, say, setup_logging, warn
from specread.cli.errors import fail, leave_stuck_workers, resumable
from specread.cli.options import (
    DEFAULT_PRESET,
    DEFAULT_READER,
    DEFAULT_VLM,
    DEFAULT_WORKERS,
    RUNNERS,
    CacheDirOpt,
    DeviceOpt,
    ImagesOpt,
    JsonOpt,
    MinConfidenceOpt,
    MinPrecisionOpt,
    ModelOpt,
    NoCacheOpt,
    PresetOpt,
    PromptTemplateOpt,
    ReaderOpt,
    ReaderOptions,
    RetrySideOpt,
    ScorerOpt,
    VerboseOpt,
    VlmBatchSizeOpt,
    VlmModelOpt,
    VlmThresholdOpt,
    WorkersOpt,
    check_choice,
)

if TYPE_CHECKING:
    from specread.rank.calibrate import Promise

__all__ = ["check", "evaluate", "predict", "read"]


def predict(
    input_csv: Annotated[Path, typer.Argument(help="Input CSV: index,image_link,group_id,entity_name.")],
    images: ImagesOpt,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output CSV (index,prediction); resumed if it exists.")
    ],
    workers: WorkersOpt = DEFAULT_WORKERS,
    scorer: ScorerOpt = DEFAULT_READER.scorer,
    preset: PresetOpt = DEFAULT_PRESET,
    device: DeviceOpt = DEFAULT_READER.ocr.device,
    retry_side: RetrySideOpt = DEFAULT_READER.retry_side,
    model: ModelOpt = DEFAULT_READER.model,
    min_precision: MinPrecisionOpt = DEFAULT_READER.min_precision,
    min_confidence: MinConfidenceOpt = DEFAULT_READER.min_confidence,
    reader: ReaderOpt = DEFAULT_READER.reader,
    vlm_model: VlmModelOpt = DEFAULT_VLM.model,
    vlm_threshold: VlmThresholdOpt = DEFAULT_VLM.threshold,
    vlm_batch_size: VlmBatchSizeOpt = DEFAULT_VLM.batch_size,
    prompt_template: PromptTemplateOpt = None,
    runner: Annotated[str, typer.Option("--runner", help="Where to run: local (process pool) or ray.")] = RUNNERS[0],
    engine: Annotated[str | None, typer.Option("--engine", hidden=True, help="Deprecated name of --runner.")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (--runner ray).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Download missing images into --images first.")] = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    confidence: Annotated[bool, typer.Option("--confidence", help="Add a confidence column.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start OUTPUT afresh instead of resuming it (drops its rows).")
    ] = False,
    allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing", help="Run even when most images are missing (their rows get the fallback)."),
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Predict every row of INPUT_CSV into OUTPUT (one OCR pass per unique image, resumable).

    OUTPUT is resumed only when it was written by the same job (same input rows, settings and
    specread version, recorded in OUTPUT's .job.json); images that cannot be read are listed in
    OUTPUT's .failures.csv, their rows get the fallback answer, and a rerun retries them.
    Ctrl-C or SIGTERM stops the run with the rows done so far kept (exit 130 / 143).
    """
    setup_logging(verbose)
    if engine is not None:  # --engine named the runner, not the OCR engine (that is the preset's)
        warn("--engine is deprecated and will be removed: use --runner")
        runner = engine
    check_choice("runner" if engine is None else "engine", runner, RUNNERS)
    config = ReaderOptions(
        preset=preset,
        device=device,
        retry_side=retry_side,
        cache_dir=cache_dir,
        no_cache=no_cache,
        scorer=scorer,
        reader=reader,
        model=model,
        min_precision=min_precision,
        min_confidence=min_confidence,
        vlm_model=vlm_model,
        vlm_threshold=vlm_threshold,
        vlm_batch_size=vlm_batch_size,
        prompt_template=prompt_template,
    ).config()
    from specread.io.rowtable import RowTable

    table = RowTable.read(input_csv)  # validated before any work starts, and read once: held compactly
    if download:
        from specread.io.download import download_rows

        images.mkdir(parents=True, exist_ok=True)
        download_rows(table.keys, images, console=console)  # one Row per image, group and entity
    if not images.is_dir():
        raise fail(f"images folder not found: {images}")
    run = {"with_confidence": confidence, "overwrite": overwrite, "allow_missing": allow_missing}
    resume = f"the rows done so far are in {output}; run the same command again to resume"
    with resumable(resume), progress_bar("reading images") as tick:
        if runner == "ray":
            from specread.batch.ray_runner import predict_csv_ray

            stats = predict_csv_ray(table, images, output, config, address=address, progress=tick, **run)
        else:
            from specread.batch.local import predict_csv

            announce = partial(say, "[dim]settings:[/]")  # once the run is checked, before any image is read
            stats = predict_csv(table, images, output, config, workers, progress=tick, announce=announce, **run)
    console.print(
        f"wrote {output}: {stats.rows} rows, {stats.images} images read, "
        f"{stats.skipped_rows} rows resumed, {stats.failed_images} unreadable images"
    )
    if stats.failed_images:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(stats.failures_by_kind.items(), key=lambda kv: -kv[1]))
        console.print(f"unreadable images by reason: {kinds}; listed in {stats.failures_file}")
    if config.min_precision or config.min_confidence:
        promises = None
        if config.min_precision:
            from specread.pipeline import reader_model

            calibration = reader_model(config).calibration  # the folder the run read with (kept loaded)
            if calibration is not None:
                promises = {e: calibration.promise(e, config.min_precision) for e in stats.answered}
        console.print(_answered_line(stats.answered, config.min_precision or config.min_confidence, promises))
    leave_stuck_workers()


def _answered_line(
    answered: dict[str, list[float]], target: float, promises: dict[str, Promise | None] | None = None
) -> str:
    """Rows answered per entity under a precision target, the precision to expect of them, and its evidence.

    The expected precision is the mean calibrated confidence of the answered rows: with a
    calibrated model each answer's confidence is its held-out probability of being right. With
    ``promises`` (a precision target) each entity also says what its threshold rests on: the
    held-out answers above it, their precision and its lower bound, since a threshold chosen on
    a few dozen answers promises less than its precision suggests.
    """
    parts = []
    for entity, (rows, done, confidence) in sorted(answered.items()):
        expect = f", expected precision {confidence / done:.2f}" if done else ""
        if promises is not None:
            promise = promises.get(entity)
            if promise is None:
                expect += " (withheld: no threshold reached the target on held-out answers)"
            else:
                expect += (
                    f" (held out: {promise.precision:.2f} over {promise.answers} answers, at least {promise.lower:.2f})"
                )
        elif not done:
            expect = " (withheld)"
        parts.append(f"{entity} {int(done)}/{int(rows)}{expect}")
    return f"answered at target {target}: " + ("; ".join(parts) or "no row read this run")


def read(
    image: Annotated[Path, typer.Argument(help="One image file.")],
    entity: Annotated[list[str], typer.Option("--entity", "-e", help="Entity to read (repeatable).")],
    group_id: Annotated[str | None, typer.Option("--group-id", help="Product group (sharpens priors).")] = None,
    scorer: ScorerOpt = DEFAULT_READER.scorer,
    preset: PresetOpt = DEFAULT_PRESET,
    device: DeviceOpt = DEFAULT_READER.ocr.device,
    retry_side: RetrySideOpt = DEFAULT_READER.retry_side,
    model: ModelOpt = DEFAULT_READER.model,
    min_precision: MinPrecisionOpt = DEFAULT_READER.min_precision,
    min_confidence: MinConfidenceOpt = DEFAULT_READER.min_confidence,
    reader: ReaderOpt = DEFAULT_READER.reader,
    vlm_model: VlmModelOpt = DEFAULT_VLM.model,
    vlm_threshold: VlmThresholdOpt = DEFAULT_VLM.threshold,
    prompt_template: PromptTemplateOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Read one image: the value per entity and its evidence (text, box, confidence)."""
    setup_logging()
    config = ReaderOptions(
        preset=preset,
        device=device,
        retry_side=retry_side,
        cache_dir=cache_dir,
        no_cache=no_cache,
        scorer=scorer,
        reader=reader,
        model=model,
        min_precision=min_precision,
        min_confidence=min_confidence,
        vlm_model=vlm_model,
        vlm_threshold=vlm_threshold,
        prompt_template=prompt_template,
    ).config()
    from specread import readers
    from specread.rank.select import WITHHELD

    result = readers.build_reader(config).read(image, entity, group_id)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    for name, pred in result.predictions.items():
        ev = pred.evidence
        where = f'  from "{ev.text}" at box {tuple(round(v, 3) for v in ev.box)}' if ev else ""
        shown = pred.text or ("(withheld: under the precision target)" if pred.source == WITHHELD else "(none)")
        print(f"{name}: {shown}  confidence {pred.confidence:.2f}  [{pred.source or 'none'}]{where}")


def check(
    output: Annotated[Path, typer.Argument(help="Output CSV to check.")],
    input_csv: Annotated[Path, typer.Option("--input", help="The input CSV it answers.")],
) -> None:
    """The official sanity rules plus per-entity unit validity and index coverage (exit 1 on failure)."""
    from specread.io.check import check_output

    report = check_output(output, input_csv)
    for problem in report.problems:
        say("[red]✗[/]", problem)
    if not report.ok:
        console.print(f"[bold red]check failed[/] ({report.rows} rows)")
        raise typer.Exit(code=1)
    console.print(f"[green]✓[/] {output}: {report.rows} rows, {report.empty} empty, all valid")


def evaluate(
    predictions: Annotated[Path, typer.Argument(help="Output CSV (index,prediction).")],
    gold: Annotated[Path, typer.Argument(help="Gold CSV with entity_name,entity_value (and index).")],
    as_json: JsonOpt = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw the risk-coverage plot into this PNG (needs a confidence column)."),
    ] = None,
) -> None:
    """Official F1, precision, recall, per-entity table and F1 re-weighted to the test mix.

    When the predictions carry a ``confidence`` column (``predict --confidence``), also the
    reliability table (accuracy per confidence band, per entity) and the risk-coverage report:
    precision when only the most confident rows are answered, and the coverage reached at
    precision 0.90, 0.95 and 0.99.
    """
    from specread.io.dataset import read_confidences, read_gold, read_predictions
    from specread.metrics import plot_risk_coverage, reliability, risk_coverage, score_rows

    preds = read_predictions(predictions)
    values, entities = read_gold(gold)
    report = score_rows(preds, values, entities).to_dict()
    confidences = read_confidences(predictions)
    if confidences is not None:
        report["reliability"] = reliability(preds, confidences, values, entities)
        report["risk_coverage"] = risk_coverage(preds, confidences, values, entities)
    if plot is not None:
        if confidences is None:
            raise fail(f"{predictions} has no confidence column: write it with `specread predict --confidence`")
        try:
            plot_risk_coverage(preds, confidences, values, entities, str(plot))
        except ImportError:
            raise fail("--plot needs matplotlib: pip install 'specread[eda]'") from None
    if as_json:
        print(json.dumps(report, indent=2))
        return
    columns = ("f1", "precision", "recall", "accuracy")
    table = Table(title=f"F1 {report['f1']:.4f}   test-weighted F1 {report['weighted_f1']:.4f}")
    table.add_column("entity")
    for col in ("rows", *columns):
        table.add_column(col, justify="right")
    for entity, s in report["per_entity"].items():
        table.add_row(entity, str(s["rows"]), *(f"{s[c]:.3f}" for c in columns))
    table.add_row("all", str(report["rows"]), *(f"{report[c]:.3f}" for c in columns), style="bold")
    Console().print(table)
    if "reliability" in report:
        Console().print(_reliability_table(report["reliability"]))
        Console().print(_coverage_table(report["risk_coverage"]))
    if plot is not None:
        console.print(f"wrote {plot}")


def _coverage_table(report: dict[str, dict]) -> Table:
    """The coverage each entity reaches at precision 0.90 / 0.95 / 0.99, answering its surest rows first."""
    from specread.metrics import PRECISION_TARGETS

    table = Table(title="risk-coverage: share of rows answerable at a precision")
    table.add_column("entity")
    table.add_column("rows", justify="right")
    for target in PRECISION_TARGETS:
        table.add_column(f"at {target:.2f}", justify="right")
    for entity, r in report.items():
        cells = [f"{r['coverage_at'][str(t)]:.0%}" for t in PRECISION_TARGETS]
        table.add_row(entity, str(r["rows"]), *cells, style="bold" if entity == "all" else None)
    return table


def _reliability_table(bands: dict[str, list[dict]]) -> Table:
    """Accuracy (and rows) per confidence band, one line per entity: does 0.8 mean 80%?"""
    from specread.metrics import RELIABILITY_BANDS as n

    names = [f"{b / n:.1f}-{(b + 1) / n:.1f}" for b in range(n)]
    table = Table(title="reliability: accuracy (rows) per confidence band")
    table.add_column("entity")
    for name in names:
        table.add_column(name, justify="right")
    for entity, rows in bands.items():
        by_band = {r["band"]: r for r in rows}
        cells = [f"{by_band[n]['accuracy']:.2f} ({by_band[n]['rows']})" if n in by_band else "" for n in names]
        table.add_row(entity, *cells, style="bold" if entity == "all" else None)
    return table
