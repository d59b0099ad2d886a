"""Fetch the images an input CSV links to: concurrent, bounded, retried, resumable, validated.

The official test set links ~91k unique images; a plain loop takes hours and
one dropped connection loses the run. Here a fixed pool of asyncio workers
shares one ``httpx.AsyncClient`` (bounded connections and memory, whatever the
number of links), transient failures (timeouts, dropped connections, 429 and
5xx answers) are retried with exponential backoff and jitter (tenacity), and
every image is decoded with :func:`specread.io.images.decode_image` (the very
check the reader applies) before it is written to a temp file and renamed into
place, so the folder never holds a half-written or non-image file.

Every outcome is appended to ``download-manifest.jsonl`` in the images folder
(the last line for a file wins). A rerun skips files whose manifest line says
``ok`` with the same size, validates files that came from elsewhere, and tries
failures again. A failure leaves no file, never a placeholder image: the
runner then predicts that image's rows empty, and the manifest tells why.

Example:
    >>> from specread.io.dataset import read_rows
    >>> from specread.io.download import download_rows
    >>> stats = download_rows(read_rows("test.csv"), "images", limit=100)  # doctest: +SKIP
    >>> stats.failed, stats.manifest  # doctest: +SKIP
    (0, PosixPath('images/download-manifest.jsonl'))
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from specread.errors import ImageLoadError
from specread.io.dataset import Row, image_name
from specread.io.files import atomic_write
from specread.io.images import CHECK_SIDE, decode_image, read_image_bytes
from specread.progress import make_progress

__all__ = [
    "MANIFEST_NAME",
    "DownloadRecord",
    "DownloadStats",
    "download_links",
    "download_rows",
    "read_manifest",
    "select_links",
]

MANIFEST_NAME = "download-manifest.jsonl"
USER_AGENT = "specread-downloader (+https://github.com/specread)"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Answers worth asking again: the server is busy or briefly broken, not saying no."""


@dataclass(frozen=True)
class DownloadRecord:
    """One manifest line: what happened to one image link."""

    link: str
    file: str
    status: str  # "ok" or "failed"
    reason: str = ""
    bytes: int = 0
    attempts: int = 0
    at: float = 0.0


@dataclass
class DownloadStats:
    """Counts of one download run; ``failures`` maps file name to reason."""

    links: int = 0
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    manifest: Path | None = None
    failures: dict[str, str] = field(default_factory=dict)


class _Retryable(Exception):
    """A transient failure: tenacity tries again after a backoff."""


class _Permanent(Exception):
    """A failure that retrying cannot fix (404, not an image, too large)."""


def read_manifest(images_dir: str | Path) -> dict[str, DownloadRecord]:
    """``file name -> latest record`` from a folder's manifest (empty when there is none).

    A torn last line (a killed run) is ignored.
    """
    path = Path(images_dir) / MANIFEST_NAME
    records: dict[str, DownloadRecord] = {}
    if not path.exists():
        return records
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = DownloadRecord(**json.loads(line))
            except (ValueError, TypeError):
                continue
            records[rec.file] = rec
    return records


def select_links(
    rows: Iterable[Row], limit: int | None = None, sample: int | None = None, seed: int = 0
) -> list[tuple[str, str]]:
    """Unique ``(link, file name)`` pairs in first-appearance order, optionally cut down.

    Links that map to a file name already taken (same name on another host) are
    dropped: the runner finds images by file name, so only one can be used.

    Args:
        rows: input rows.
        limit: keep the first ``limit`` images (a quick look).
        sample: keep a seeded random ``sample`` of images (a representative look).
        seed: seed of ``sample``.
    """
    pairs: dict[str, str] = {}
    for r in rows:
        name = image_name(r.image_link)
        if r.image_link and name and name not in pairs:
            pairs[name] = r.image_link
    out = [(link, name) for name, link in pairs.items()]
    if sample is not None and sample < len(out):
        picked = set(random.Random(seed).sample(range(len(out)), sample))
        out = [p for i, p in enumerate(out) if i in picked]
    if limit is not None:
        out = out[:limit]
    return out


def download_rows(
    rows: Sequence[Row],
    images_dir: str | Path,
    *,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    concurrency: int = 16,
    retries: int = 4,
    timeout: float = 30.0,
    console: Console | None = None,
) -> DownloadStats:
    """Download the unique images of ``rows`` into ``images_dir`` (see :func:`download_links`)."""
    links = select_links(rows, limit=limit, sample=sample, seed=seed)
    return download_links(links, images_dir, concurrency=concurrency, retries=retries, timeout=timeout, console=console)


def download_links(
    links: Sequence[tuple[str, str]],
    images_dir: str | Path,
    *,
    concurrency: int = 16,
    retries: int = 4,
    timeout: float = 30.0,
    backoff: float = 0.5,
    max_bytes: int = 50_000_000,
    console: Console | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DownloadStats:
    """Download ``(link, file name)`` pairs into ``images_dir``; never raises for one bad link.

    Args:
        links: unique ``(url, file name)`` pairs (see :func:`select_links`).
        images_dir: target folder (created); holds the manifest too.
        concurrency: simultaneous requests (also the connection pool size).
        retries: extra attempts after a transient failure.
        timeout: seconds per request phase (connect, read...).
        backoff: first backoff in seconds; doubles per attempt, plus up to as much jitter.
        max_bytes: larger bodies are refused (a link to a huge file must not fill memory).
        console: where the progress bar goes (none when it is not a terminal).
        transport: an httpx transport (a proxy or mock transport), else httpx's default.

    Returns:
        Counts, the manifest path and the reason of each failure.

    Raises:
        OSError: the folder or its manifest cannot be written (disk full, no permission).
    """
    folder = Path(images_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stats = DownloadStats(links=len(links), manifest=folder / MANIFEST_NAME)
    start = time.perf_counter()
    with make_progress(console) as bar:
        task = bar.add_task("downloading images", total=len(links))
        asyncio.run(
            _download_all(
                links,
                folder,
                stats,
                concurrency=max(1, concurrency),
                retries=max(0, retries),
                timeout=timeout,
                backoff=backoff,
                max_bytes=max_bytes,
                transport=transport,
                advance=lambda: bar.advance(task),
            )
        )
    stats.seconds = round(time.perf_counter() - start, 3)
    if console is not None:
        console.print(
            f"images: {stats.downloaded} downloaded, {stats.skipped} already present, {stats.failed} failed"
            + (f" (reasons in {stats.manifest})" if stats.failed else "")
        )
    return stats


async def _download_all(
    links: Sequence[tuple[str, str]],
    folder: Path,
    stats: DownloadStats,
    *,
    concurrency: int,
    retries: int,
    timeout: float,
    backoff: float,
    max_bytes: int,
    transport: httpx.AsyncBaseTransport | None,
    advance: Callable[[], None],
) -> None:
    known = read_manifest(folder)
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for pair in links:
        queue.put_nowait(pair)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with open(folder / MANIFEST_NAME, "a", encoding="utf-8") as manifest:

        def record(rec: DownloadRecord, fresh: bool) -> None:
            if rec.status == "ok":
                stats.bytes += rec.bytes
                if fresh:
                    stats.downloaded += 1
                else:
                    stats.skipped += 1
            else:
                stats.failed += 1
                stats.failures[rec.file] = rec.reason
            if fresh or known.get(rec.file) != rec:
                manifest.write(json.dumps(asdict(rec)) + "\n")
                manifest.flush()
            advance()

        async with httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=limits,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        ) as client:

            async def worker() -> None:
                while True:
                    try:
                        link, name = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    present = await _present(folder / name, known.get(name), link)
                    if present is not None:
                        record(present, fresh=False)
                        continue
                    rec = await _fetch(client, link, name, folder, retries, backoff, max_bytes)
                    record(rec, fresh=True)

            await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(links))))))


async def _present(path: Path, known: DownloadRecord | None, link: str) -> DownloadRecord | None:
    """A record for a file already in place and valid, else None (download it)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if known is not None and known.status == "ok" and known.bytes == size:
        return known  # written by us after validation: no need to decode again
    try:
        data = await asyncio.to_thread(read_image_bytes, path)
        await asyncio.to_thread(decode_image, data, path.name, CHECK_SIDE)
    except (ImageLoadError, OSError):
        return None  # broken leftover: download it again (replaced atomically)
    return DownloadRecord(link, path.name, "ok", "present, validated", size, 0, round(time.time(), 3))


async def _fetch(
    client: httpx.AsyncClient, link: str, name: str, folder: Path, retries: int, backoff: float, max_bytes: int
) -> DownloadRecord:
    attempts = 0
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential(multiplier=backoff, max=60.0) + wait_random(0, backoff),
            retry=retry_if_exception_type(_Retryable),
            reraise=False,
        ):
            with attempt:
                attempts = attempt.retry_state.attempt_number
                data = await _get(client, link, max_bytes)
    except RetryError as exc:
        reason = str(exc.last_attempt.exception())
        reason = f"{reason} (after {attempts} attempts)"
        return DownloadRecord(link, name, "failed", reason, 0, attempts, round(time.time(), 3))
    except _Permanent as exc:
        return DownloadRecord(link, name, "failed", str(exc), 0, attempts, round(time.time(), 3))
    try:
        await asyncio.to_thread(decode_image, data, name, CHECK_SIDE)
    except ImageLoadError as exc:
        return DownloadRecord(link, name, "failed", exc.reason, len(data), attempts, round(time.time(), 3))
    await asyncio.to_thread(_write_atomic, folder / name, data)
    return DownloadRecord(link, name, "ok", "", len(data), attempts, round(time.time(), 3))


async def _get(client: httpx.AsyncClient, link: str, max_bytes: int) -> bytes:
    """One GET, its failure sorted into retryable or permanent."""
    try:
        async with client.stream("GET", link) as resp:
            if resp.status_code in RETRY_STATUS:
                raise _Retryable(f"HTTP {resp.status_code}")
            if resp.status_code >= 400:
                raise _Permanent(f"HTTP {resp.status_code}")
            declared = int(resp.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise _Permanent(f"too large ({declared} bytes)")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _Permanent(f"too large (over {max_bytes} bytes)")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException as exc:
        raise _Retryable(f"timeout ({type(exc).__name__})") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise _Permanent(f"invalid URL ({exc})") from exc
    except httpx.TransportError as exc:  # refused, reset, closed mid-body (truncated)
        raise _Retryable(f"{type(exc).__name__}: {exc}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)
