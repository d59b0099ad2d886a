"""The HTTP service: ``serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from specread.cli.options import (
    DEFAULT_PRESET,
    DEFAULT_READER,
    DeviceOpt,
    MinConfidenceOpt,
    MinPrecisionOpt,
    ModelOpt,
    PresetOpt,
    ReaderOptions,
    RetrySideOpt,
    WorkersOpt,
)
from specread.settings import FetchPolicy, ServiceSettings

__all__ = ["serve"]

DEFAULT_SERVICE = ServiceSettings()
MIB = 1024 * 1024

MaxConnectionsOpt = Annotated[
    int,
    typer.Option(
        "--max-connections", min=1, help="Requests served at once, all clients (idle connections do not count)."
    ),
]
MaxClientConnectionsOpt = Annotated[
    int,
    typer.Option(
        "--max-client-connections",
        min=1,
        help="Connections one client address may carry requests on; a request on another gets 503.",
    ),
]
MaxClientRequestsOpt = Annotated[
    int, typer.Option("--max-client-requests", min=1, help="Requests in flight from one client address; over it, 503.")
]


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: WorkersOpt = DEFAULT_SERVICE.workers,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest image accepted (upload or URL), MiB.")
    ] = DEFAULT_SERVICE.max_upload_bytes / MIB,
    allow_private_urls: Annotated[
        bool,
        typer.Option("--allow-private-urls", help="Let image URLs reach private, loopback and link-local addresses."),
    ] = FetchPolicy.allow_private,
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
    ] = DEFAULT_SERVICE.max_pending,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", min=0.001, help="Seconds a client has to send request headers.")
    ] = DEFAULT_SERVICE.header_timeout,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout", min=0.001, help="Seconds a request body may take in all (15 s at most per pause)."
        ),
    ] = DEFAULT_SERVICE.body_timeout,
    max_connections: MaxConnectionsOpt = DEFAULT_SERVICE.max_connections,
    max_client_connections: MaxClientConnectionsOpt = DEFAULT_SERVICE.max_client_connections,
    max_client_requests: MaxClientRequestsOpt = DEFAULT_SERVICE.max_client_requests,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            help="Comma-separated proxy addresses/networks whose X-Forwarded-For/-Proto are trusted (default: none).",
        ),
    ] = ",".join(DEFAULT_SERVICE.forwarded_allow_ips),
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    preset: PresetOpt = DEFAULT_PRESET,
    device: DeviceOpt = DEFAULT_READER.ocr.device,
    retry_side: RetrySideOpt = DEFAULT_READER.retry_side,
    model: ModelOpt = DEFAULT_READER.model,
    min_precision: MinPrecisionOpt = DEFAULT_READER.min_precision,
    min_confidence: MinConfidenceOpt = DEFAULT_READER.min_confidence,
) -> None:
    """Serve POST /v1/read, a web page at / and API docs at /docs (needs the 'serve' extra)."""
    reader = ReaderOptions(
        preset=preset,
        device=device,
        retry_side=retry_side,
        model=model,
        min_precision=min_precision,
        min_confidence=min_confidence,
        cache_dir=cache_dir,
        no_cache=no_cache,
        default_cache=DEFAULT_SERVICE.reader.cache_dir,
    ).config()
    from specread.service.app import serve as run_service

    max_bytes = int(max_upload_mb * MIB)
    settings = ServiceSettings(
        reader=reader,
        workers=workers,
        max_upload_bytes=max_bytes,
        max_pending=max_queue,
        fetch=FetchPolicy(allow_private=allow_private_urls, max_bytes=max_bytes),
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        max_client_connections=max_client_connections,
        max_client_requests=max_client_requests,
        forwarded_allow_ips=tuple(ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()),
    )
    run_service(settings, host=host, port=port, log_level=log_level)
