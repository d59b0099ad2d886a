"""Command line: ``specread --help``. Thin: every command calls library functions."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from specread.errors import SpecreadError
from specread.progress import make_progress

if TYPE_CHECKING:
    from specread.pipeline import ReaderConfig

app = typer.Typer(
    help="Read product specifications (weight, volume, voltage, wattage, dimensions) off product images.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )


def _os_error_message(exc: OSError) -> str:
    """One line for a failed file operation: the OS reason and the path, no traceback."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


CacheOpt = Annotated[
    str | None,
    typer.Option("--cache-dir", help="OCR cache folder (default: $SPECREAD_CACHE or the user cache folder)."),
]
PresetOpt = Annotated[str, typer.Option("--preset", help="OCR speed/accuracy preset: accurate or fast.")]
RetryOpt = Annotated[
    int,
    typer.Option(
        "--retry-side",
        min=0,
        help="OCR an image again with the detector at this side when an entity finds no value (0: off).",
    ),
]


@app.command()
def predict(
    input_csv: Annotated[Path, typer.Argument(help="Input CSV: index,image_link,group_id,entity_name.")],
    images: Annotated[Path, typer.Option("--images", help="Folder of images, named by the file name of image_link.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output CSV (index,prediction); resumed if it exists.")
    ],
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
    scorer: Annotated[str, typer.Option("--scorer", help="Candidate selection: ranker or rules.")] = "ranker",
    preset: PresetOpt = "accurate",
    retry_side: RetryOpt = 0,
    reader: Annotated[str, typer.Option("--reader", help="ocr, vlm or hybrid (OCR first, VLM when unsure).")] = "ocr",
    model: Annotated[str | None, typer.Option("--model", help="VLM weights folder or id (vlm/hybrid).")] = None,
    vlm_threshold: Annotated[
        float, typer.Option("--vlm-threshold", help="hybrid: rows under this OCR confidence go to the VLM.")
    ] = 0.5,
    vlm_batch_size: Annotated[int, typer.Option("--vlm-batch-size", min=1, help="Prompts per VLM generate call.")] = 8,
    prompt_template: Annotated[
        Path | None, typer.Option("--prompt-template", help="VLM prompt template file ({entity}, {units}, {hints}).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="Runner: local (process pool) or ray.")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (--engine ray).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Download missing images into --images first.")] = False,
    cache_dir: CacheOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the OCR cache.")] = False,
    confidence: Annotated[bool, typer.Option("--confidence", help="Add a confidence column.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start OUTPUT afresh instead of resuming it (drops its rows).")
    ] = False,
    allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing", help="Run even when most images are missing (their rows get the fallback)."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Predict every row of INPUT_CSV into OUTPUT (one OCR pass per unique image, resumable).

    OUTPUT is resumed only when it was written by the same job (same input rows, settings and
    specread version, recorded in OUTPUT's .job.json); images that cannot be read are listed in
    OUTPUT's .failures.csv, their rows get the fallback answer, and a rerun retries them.
    """
    _setup_logging(verbose)
    from specread.io.dataset import read_rows
    from specread.ocr.presets import PRESETS
    from specread.pipeline import READERS, SCORERS

    _check_choices(
        ("scorer", scorer, SCORERS),
        ("preset", preset, PRESETS),
        ("reader", reader, READERS),
        ("engine", engine, ("local", "ray")),
    )
    if reader != "ocr" and not model:
        raise _fail(f"--reader {reader} needs --model PATH_OR_ID")
    try:
        rows = read_rows(input_csv)  # validate before any work starts
        if download:
            from specread.io.download import download_rows

            images.mkdir(parents=True, exist_ok=True)
            download_rows(rows, images, console=console)
        if not images.is_dir():
            raise _fail(f"images folder not found: {images}")
        config = _reader_config(
            scorer=scorer,
            engine_options=dict(PRESETS[preset]),
            retry_side=retry_side,
            cache_dir=None if no_cache else (cache_dir or "default"),
            reader=reader,
            vlm_options={
                "model": model,
                "threshold": vlm_threshold,
                "batch_size": vlm_batch_size,
                **({"prompt_template": str(prompt_template)} if prompt_template else {}),
            }
            if model
            else {},
        )
        with make_progress(console) as bar:
            task = bar.add_task("reading images", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if engine == "ray":
                from specread.batch.ray_runner import predict_csv_ray

                stats = predict_csv_ray(
                    input_csv,
                    images,
                    output,
                    config,
                    address=address,
                    progress=tick,
                    with_confidence=confidence,
                    overwrite=overwrite,
                    allow_missing=allow_missing,
                )
            else:
                from specread.batch.local import predict_csv

                stats = predict_csv(
                    input_csv,
                    images,
                    output,
                    config,
                    workers,
                    confidence,
                    progress=tick,
                    overwrite=overwrite,
                    allow_missing=allow_missing,
                )
    except SpecreadError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(_os_error_message(exc)) from None
    console.print(
        f"wrote {output}: {stats.rows} rows, {stats.images} images read, "
        f"{stats.skipped_rows} rows resumed, {stats.failed_images} unreadable images"
    )
    if stats.failed_images:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(stats.failures_by_kind.items(), key=lambda kv: -kv[1]))
        console.print(f"unreadable images by reason: {kinds}; listed in {stats.failures_file}")


def _check_choices(*choices: tuple[str, str, Collection[str]]) -> None:
    """Refuse an option value outside its valid names, listing them (a usage error)."""
    for name, value, valid in choices:
        if value not in valid:
            raise _fail(f"unknown {name} {value!r}; choose one of: {', '.join(sorted(valid))}")


def _reader_config(**options: object) -> ReaderConfig:
    """A :class:`ReaderConfig`, with an invalid combination of options reported as a usage error."""
    from specread.pipeline import ReaderConfig

    try:
        return ReaderConfig(**options)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(str(exc)) from None


@app.command()
def evaluate(
    predictions: Annotated[Path, typer.Argument(help="Output CSV (index,prediction).")],
    gold: Annotated[Path, typer.Argument(help="Gold CSV with entity_name,entity_value (and index).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Official F1, precision, recall, per-entity table and F1 re-weighted to the test mix."""
    from specread.io.dataset import read_gold, read_predictions
    from specread.metrics import score_rows

    try:
        preds = read_predictions(predictions)
        values, entities = read_gold(gold)
    except SpecreadError as exc:
        raise _fail(str(exc)) from None
    report = score_rows(preds, values, entities).to_dict()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"F1 {report['f1']:.4f}   test-weighted F1 {report['weighted_f1']:.4f}")
    for col in ("entity", "rows", "f1", "precision", "recall", "accuracy"):
        table.add_column(col, justify="right" if col != "entity" else "left")
    for entity, s in report["per_entity"].items():
        table.add_row(
            entity,
            str(s["rows"]),
            f"{s['f1']:.3f}",
            f"{s['precision']:.3f}",
            f"{s['recall']:.3f}",
            f"{s['accuracy']:.3f}",
        )
    table.add_row(
        "all",
        str(report["rows"]),
        f"{report['f1']:.3f}",
        f"{report['precision']:.3f}",
        f"{report['recall']:.3f}",
        f"{report['accuracy']:.3f}",
        style="bold",
    )
    Console().print(table)


@app.command()
def check(
    output: Annotated[Path, typer.Argument(help="Output CSV to check.")],
    input_csv: Annotated[Path, typer.Option("--input", help="The input CSV it answers.")],
) -> None:
    """The official sanity rules plus per-entity unit validity and index coverage (exit 1 on failure)."""
    from specread.io.check import check_output

    try:
        report = check_output(output, input_csv)
    except SpecreadError as exc:
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:
        raise _fail(f"file not found: {exc.filename}") from None
    for problem in report.problems:
        console.print(f"[red]✗[/] {problem}")
    if not report.ok:
        console.print(f"[bold red]check failed[/] ({report.rows} rows)")
        raise typer.Exit(code=1)
    console.print(f"[green]✓[/] {output}: {report.rows} rows, {report.empty} empty, all valid")


@app.command()
def read(
    image: Annotated[Path, typer.Argument(help="One image file.")],
    entity: Annotated[list[str], typer.Option("--entity", "-e", help="Entity to read (repeatable).")],
    group_id: Annotated[str | None, typer.Option("--group-id", help="Product group (sharpens priors).")] = None,
    scorer: Annotated[str, typer.Option("--scorer")] = "ranker",
    cache_dir: CacheOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Read one image: the value per entity and its evidence (text, box, confidence)."""
    _setup_logging()
    from specread.pipeline import ReaderConfig, build_reader

    try:
        reader = build_reader(ReaderConfig(scorer=scorer, cache_dir=cache_dir or "default"))
        result = reader.read(image, entity, group_id)
    except (SpecreadError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    for name, pred in result.predictions.items():
        ev = pred.evidence
        where = f'  from "{ev.text}" at box {tuple(round(v, 3) for v in ev.box)}' if ev else ""
        print(f"{name}: {pred.text or '(none)'}  confidence {pred.confidence:.2f}  [{pred.source or 'none'}]{where}")


@app.command()
def priors(
    train_csv: Annotated[Path, typer.Argument(help="Training labels: image_link,group_id,entity_name,entity_value.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write priors JSON.")],
    exclude: Annotated[
        list[Path] | None, typer.Option("--exclude", help="CSV(s) whose image_link rows are left out (eval sets).")
    ] = None,
) -> None:
    """Build the value/unit priors table from training labels (the packaged one is built this way)."""
    import csv

    from specread.rank.priors import Priors

    links: set[str] = set()
    try:
        for path in exclude or []:
            with open(path, newline="", encoding="utf-8") as fh:
                links |= {r["image_link"] for r in csv.DictReader(fh)}
        table = Priors.build(train_csv, links)
    except FileNotFoundError as exc:
        raise _fail(f"file not found: {exc.filename}") from None
    except KeyError as exc:
        raise _fail(f"missing required column {exc} (need image_link,group_id,entity_name,entity_value)") from None
    table.save(output)
    console.print(f"wrote {output}: {table.n_rows} label rows counted, {len(links)} image links excluded")


@app.command()
def train(
    labels_csv: Annotated[Path, typer.Argument(help="Labels CSV: image_link,group_id,entity_name,entity_value.")],
    images: Annotated[Path, typer.Option("--images", help="Folder of the labelled images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ranker model.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (training is deterministic for a seed).")] = 0,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="OCR worker processes.")] = 1,
    cache_dir: CacheOpt = None,
) -> None:
    """Train the candidate ranker on labelled images (the packaged model is built this way)."""
    _setup_logging()
    import csv

    from specread.batch.local import warm_cache
    from specread.errors import ImageLoadError
    from specread.io.dataset import image_name
    from specread.pipeline import ReaderConfig, build_reader
    from specread.rank.priors import load_priors
    from specread.rank.train import fit_ranker, load_labelled_rows

    config = ReaderConfig(scorer="rules", cache_dir=cache_dir or "default")
    try:
        with open(labels_csv, newline="", encoding="utf-8") as fh:
            paths = [images / image_name(r.get("image_file") or r["image_link"]) for r in csv.DictReader(fh)]
    except (OSError, KeyError) as exc:
        raise _fail(f"cannot read labels {labels_csv}: {exc}") from None
    reader = build_reader(config)

    def ocr(path: Path):
        try:
            return reader.ocr(path)
        except ImageLoadError as exc:
            logging.getLogger("specread").warning("%s (row skipped)", exc)
            return None

    with make_progress(console) as bar:
        task = bar.add_task("OCR", total=len(set(paths)))
        warm_cache(paths, config, workers, progress=lambda d, t: bar.update(task, completed=d, total=t))
        rows = load_labelled_rows(labels_csv, images, ocr)
    model = fit_ranker(rows, load_priors(), seed=seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    console.print(f"wrote {output}: trained on {len(rows)} labelled rows, seed {seed}")


@app.command()
def example(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create (images/, input.csv, gold.csv).")] = Path("example"),
    n_images: Annotated[int, typer.Option("--n-images", min=1)] = 12,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Generate a small labelled example set of synthetic product labels."""
    from specread.synth import make_dataset

    path = make_dataset(out_dir, n_images=n_images, seed=seed, n_values=2)
    console.print(f"wrote {path} and {out_dir / 'gold.csv'}")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="OCR worker processes.")] = 1,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest image accepted (upload or URL), MiB.")
    ] = 20.0,
    allow_private_urls: Annotated[
        bool,
        typer.Option("--allow-private-urls", help="Let image URLs reach private, loopback and link-local addresses."),
    ] = False,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            "--cache-dir",
            help="Cache OCR pages in this folder (off by default: it grows without bound and lets a client "
            "tell by timing whether an image was read before; for trusted deployments).",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="No OCR cache (the default; kept for compatibility).")
    ] = False,
    max_queue: Annotated[
        int, typer.Option("--max-queue", min=1, help="Requests waiting for OCR before answering 503.")
    ] = 512,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", min=0.001, help="Seconds a client has to send request headers.")
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout", min=0.001, help="Seconds a request body may take in all (15 s at most per pause)."
        ),
    ] = 60.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="Open connections served at once; over it, 503.")
    ] = 100,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            help="Comma-separated proxy addresses/networks whose X-Forwarded-For/-Proto are trusted (default: none).",
        ),
    ] = "",
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    preset: PresetOpt = "accurate",
    retry_side: RetryOpt = 0,
) -> None:
    """Serve POST /v1/read, a web page at / and API docs at /docs (needs the 'serve' extra)."""
    from specread.ocr.presets import PRESETS

    _check_choices(("preset", preset, PRESETS))
    try:
        from specread.service.app import ServiceSettings
        from specread.service.app import serve as run_service
        from specread.service.fetch import FetchPolicy
    except ImportError as exc:
        raise _fail(f"the service needs the 'serve' extra: pip install 'specread[serve]' ({exc})") from None
    max_bytes = int(max_upload_mb * 1024 * 1024)
    reader = _reader_config(
        engine_options=dict(PRESETS[preset]), retry_side=retry_side, cache_dir=None if no_cache else cache_dir
    )
    try:
        settings = ServiceSettings(
            reader=reader,
            workers=workers,
            max_upload_bytes=max_bytes,
            max_pending=max_queue,
            fetch=FetchPolicy(allow_private=allow_private_urls, max_bytes=max_bytes),
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
            forwarded_allow_ips=tuple(ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()),
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    run_service(settings, host=host, port=port, log_level=log_level)


@app.command()
def download(
    input_csv: Annotated[Path, typer.Argument(help="Input CSV whose image_link column to fetch.")],
    images: Annotated[Path, typer.Option("--images", help="Folder to fill (files named by image_link).")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N unique images.")] = None,
    sample: Annotated[int | None, typer.Option("--sample", min=1, help="A seeded random N unique images.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sample.")] = 0,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Simultaneous requests.")] = 16,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Extra attempts after a transient error.")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per request phase.")] = 30.0,
) -> None:
    """Download the unique images of INPUT_CSV (concurrent, retried, resumable; failures listed in the manifest)."""
    _setup_logging()
    from specread.io.dataset import read_rows
    from specread.io.download import download_rows

    try:
        rows = read_rows(input_csv)
        download_rows(
            rows,
            images,
            limit=limit,
            sample=sample,
            seed=seed,
            concurrency=concurrency,
            retries=retries,
            timeout=timeout,
            console=console,
        )
    except SpecreadError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(_os_error_message(exc)) from None


@app.command()
def clean(
    train_csv: Annotated[Path, typer.Argument(help="Labels: image_link,group_id,entity_name,entity_value.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Cleaned CSV to write (same columns).")],
    images: Annotated[
        Path | None, typer.Option("--images", help="Also drop rows whose image is missing or undecodable.")
    ] = None,
    list_policy: Annotated[
        str, typer.Option("--list-policy", help="Lists and ranges become one value: max, min, first, last or drop.")
    ] = "max",
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts and examples as JSON.")] = False,
) -> None:
    """Clean training labels by documented rules and print how many rows each rule changed or dropped."""
    from specread.labels.clean import RULES, clean_csv

    try:
        report = clean_csv(train_csv, output, images, list_policy)
    except (SpecreadError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:
        raise _fail(f"file not found: {exc.filename}") from None
    data = report.to_dict()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"{data['rows_in']} rows in, {data['rows_out']} rows out -> {output}")
    for col in ("rule", "rows", "example"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for rule in RULES:
        ex = data["examples"].get(rule, [])
        table.add_row(rule, str(data["rules"][rule]), f"{ex[0][0]}: {ex[0][1]!r} -> {ex[0][2]!r}" if ex else "")
    table.add_row("kept unchanged", str(data["kept_unchanged"]), "", style="bold")
    Console().print(table)


@app.command()
def eda(
    labels_csv: Annotated[Path, typer.Argument(help="Labels: image_link,group_id,entity_name,entity_value.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML report to write (self-contained).")],
    images: Annotated[Path | None, typer.Option("--images", help="Image folder: adds image sizes and checks.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Report title.")] = None,
) -> None:
    """Write a one-file HTML report on a label CSV (needs the 'eda' extra: matplotlib)."""
    try:
        from specread.labels.eda import write_report
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise _fail(f"eda needs the 'eda' extra: pip install 'specread[eda]' ({exc})") from None
    try:
        path = write_report(labels_csv, output, images, title)
    except (SpecreadError, ValueError, KeyError) as exc:
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:
        raise _fail(f"file not found: {exc.filename}") from None
    console.print(f"wrote {path}")


@app.command()
def finetune(
    model: Annotated[str, typer.Option("--model", help="Base VLM folder or id (or a previous output).")],
    train: Annotated[Path, typer.Option("--train", help="Cleaned labels CSV (specread clean output).")],
    images: Annotated[Path, typer.Option("--images", help="Folder of the training images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (checkpoints, metrics, model).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per optimizer step.")] = 16,
    micro_batch: Annotated[
        int | None, typer.Option("--micro-batch", min=1, help="Examples per forward pass (gradient accumulation).")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (default 3e-5, LoRA 2e-4).")] = None,
    text_only: Annotated[bool, typer.Option("--text-only", help="Train the language part, vision frozen.")] = False,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters on the language part (peft).")] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1)] = 16,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = 32,
    train_projector: Annotated[
        bool, typer.Option("--train-projector", help="Text-only: also train the vision-to-text projector.")
    ] = False,
    schedule: Annotated[str, typer.Option("--schedule", help="cosine or constant after warm-up.")] = "cosine",
    warmup: Annotated[float, typer.Option("--warmup", min=0.0, max=1.0, help="Share of steps warming up.")] = 0.05,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1, help="Steps per checkpoint.")] = 500,
    eval_every: Annotated[int, typer.Option("--eval-every", min=0, help="Steps between validations (0: end).")] = 500,
    val: Annotated[Path | None, typer.Option("--val", help="Validation labels CSV.")] = None,
    val_images: Annotated[Path | None, typer.Option("--val-images", help="Images of --val (default --images).")] = None,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", min=0.0, max=0.9, help="Hold out this share of images (no --val).")
    ] = 0.0,
    val_max: Annotated[int, typer.Option("--val-max", min=1, help="Validation questions per evaluation.")] = 512,
    negatives: Annotated[
        float, typer.Option("--negatives", min=0.0, max=1.0, help="Share of images also asked an absent entity.")
    ] = 0.1,
    prompt_template: Annotated[
        Path | None, typer.Option("--prompt-template", help="Prompt template file ({entity}, {units}, {hints}).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str | None, typer.Option("--device", help="cuda, cpu... (default: cuda when present).")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="auto, bfloat16, float32...")] = None,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow model code from the folder.")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --output.")] = False,
) -> None:
    """Fine-tune a VLM on cleaned labels (needs the 'vlm' extra), resumable, with validation F1."""
    _setup_logging(verbose=True)  # validation scores and resume points are logged at INFO
    if text_only and lora:
        raise _fail("choose one of --text-only and --lora")
    try:
        from specread.vlm.finetune import FinetuneConfig
        from specread.vlm.finetune import finetune as run_finetune
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise _fail(f"finetune needs the 'vlm' extra: pip install 'specread[vlm]' ({exc})") from None
    try:
        cfg = FinetuneConfig(
            model=model,
            train_csv=str(train),
            images_dir=str(images),
            output_dir=str(output),
            steps=steps,
            batch_size=batch_size,
            micro_batch=micro_batch,
            lr=lr,
            mode="lora" if lora else "text-only",
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            train_projector=train_projector,
            schedule=schedule,
            warmup=warmup,
            checkpoint_every=checkpoint_every,
            eval_every=eval_every,
            val_csv=str(val) if val else None,
            val_images=str(val_images) if val_images else None,
            val_fraction=val_fraction,
            val_max=val_max,
            negatives=negatives,
            template=str(prompt_template) if prompt_template else None,
            seed=seed,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            resume=resume,
        )
        with make_progress(console) as bar:
            task = bar.add_task("fine-tuning", total=steps)

            def tick(step: int, total: int, loss: float) -> None:
                bar.update(task, completed=step, total=total, description=f"loss {loss:.4f}")

            result = run_finetune(cfg, progress=tick)
    except (SpecreadError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(_os_error_message(exc)) from None
    last = result.validations[-1]["f1"] if result.validations else None
    console.print(
        f"wrote {result.output_dir}: {result.steps_done} steps, final loss "
        f"{result.losses[-1] if result.losses else float('nan'):.4f}"
        + (f", validation F1 {last:.4f}" if last is not None else "")
        + f", {result.wall_s:.0f} s"
    )


def main() -> None:  # pragma: no cover
    sys.exit(app())
