"""Image loading with every failure turned into :class:`ImageLoadError`.

Product images arrive as JPEG/PNG/WebP/GIF of any size, sometimes truncated
or zero bytes. Decoding is strict (no silent truncated loads), EXIF rotation
is applied so boxes match what a person sees, and Pillow's decompression-bomb
limit is honoured. Every image file is read by :func:`read_image_bytes`: only
regular files, under a size cap and a deadline, so a FIFO, a device or a huge
file named ``.jpg`` is that image's failure and never a hung or swollen run.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from specread.errors import FileTooLargeError, ImageLoadError, ImageTooLargeError, UnreadableFileError
from specread.io.files import read_regular
from specread.settings import IMAGE_LIMITS

Image.init()
IMAGE_FORMATS: tuple[str, ...] = tuple(
    f for f in ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF") if f in Image.OPEN
)
"""The one list of image formats specread opens (CLI, service, VLM): product photos only.

Vector and script formats (EPS runs Ghostscript) and exotic ones are refused; AVIF is
listed only when this Pillow build can decode it, so what the service accepts is
always what the decoder reads.
"""

MAX_JPEG_SCANS = 100
"""Most scans a JPEG may have. A progressive photo has about 10; each scan is a pass over every
8x8 block of the picture, so 3,000 empty scans (30 KB) cost half a minute of decoding."""

CHECK_SIDE = 1024
"""The side to decode at when a file is only checked to be a readable picture (downloads, label
cleaning): a reduced decode still reads every byte, and costs a fraction of a full one."""

__all__ = [
    "CHECK_SIDE",
    "IMAGE_FORMATS",
    "MAX_JPEG_SCANS",
    "decode_image",
    "image_digest",
    "load_image",
    "read_image_bytes",
]


def image_digest(data: bytes) -> str:
    """Content key of an image: identical bytes share one OCR pass."""
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, name: str = "<bytes>", max_side: int | None = None) -> np.ndarray:
    """Decode image bytes into an RGB ``uint8`` array of shape (H, W, 3).

    Args:
        data: the encoded image.
        name: shown in errors (a path or URL).
        max_side: the longest side the caller will use (the OCR engine's ``max_side``).
            A picture at least twice that size is reduced while it is decoded, so no
            full-size RGBA/RGB copy is ever built: JPEG through DCT scaling (``draft``),
            other formats band by band. The result keeps its longest side at or above
            ``max_side``, so the caller's own resize still decides the final pixels.

    Memory stays bounded by the picture's native decoded size (one byte per pixel for
    a palette PNG) plus a band, never several full-size copies.

    Raises:
        ImageLoadError: empty, truncated, oversized (bomb) or not an image.
    """
    if not data:
        raise ImageLoadError(name, "file is empty")
    if data[:2] == b"\xff\xd8":  # Start-of-scan markers: entropy-coded data escapes 0xFF, so each is a scan
        scans = data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise ImageLoadError(name, f"too many JPEG scans ({scans}; at most {MAX_JPEG_SCANS}: a decoding bomb)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse them all.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
                if max_side and img.format == "JPEG" and max(img.size) >= 2 * max_side:
                    scale = max_side / max(img.size)
                    img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
                img.load()
                arr = _to_rgb(img, _reduce_factor(img.size, max_side))
                arr = _apply_orientation(arr, img.getexif().get(ExifTags.Base.Orientation, 1))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(name, f"image too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(name, "not an image") from exc
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error, EOFError) as exc:
        # Pillow's plugins raise any of these on malformed headers and chunks.
        raise ImageLoadError(name, f"corrupt or truncated image ({exc})") from exc
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ImageLoadError(name, f"unusable image shape {arr.shape}")
    return arr


_BAND_ROWS = 256
"""Output rows converted at a time when reducing a large picture (bounds the temporary RGBA copies)."""


def _reduce_factor(size: tuple[int, int], max_side: int | None) -> int:
    """The integer box-reduction that keeps the longest side at or above ``max_side`` (1: none)."""
    if not max_side:
        return 1
    return max(1, max(size) // max_side)


def _to_rgb(img: Image.Image, factor: int) -> np.ndarray:
    """Flatten any mode onto white RGB, reducing by ``factor`` band by band when it is above 1."""
    if factor == 1:
        return _flatten(img)
    width, height = img.size
    out = np.empty(((height + factor - 1) // factor, (width + factor - 1) // factor, 3), np.uint8)
    step = _BAND_ROWS * factor
    for top in range(0, height, step):
        band = Image.fromarray(_flatten(img.crop((0, top, width, min(height, top + step)))))
        out[top // factor : top // factor + (band.height + factor - 1) // factor] = np.asarray(band.reduce(factor))
    return out


def _flatten(img: Image.Image) -> np.ndarray:
    """One picture (or band) of any Pillow mode as RGB ``uint8``: transparency onto white, deep modes scaled."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        deep = np.asarray(img, dtype=np.float32)
        top = float(deep.max()) if deep.size else 0.0
        if top > 255:  # 16-bit samples (PNG keeps them in I;16 or I)
            deep = deep / 257.0
        elif img.mode == "F" and 0 < top <= 1:  # float samples in 0..1
            deep = deep * 255.0
        gray = np.clip(deep, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"))


_ORIENTATIONS = {2: "fliplr", 3: "rot180", 4: "flipud", 5: "transpose", 6: "rot270", 7: "transverse", 8: "rot90"}


def _apply_orientation(arr: np.ndarray, orientation: object) -> np.ndarray:
    """EXIF orientation applied to the decoded (already reduced) pixels, as a person sees the photo."""
    op = _ORIENTATIONS.get(orientation) if isinstance(orientation, int) else None
    if op is None:
        return arr
    if op == "fliplr":
        out = arr[:, ::-1]
    elif op == "flipud":
        out = arr[::-1]
    elif op == "rot180":
        out = arr[::-1, ::-1]
    elif op == "transpose":
        out = arr.transpose(1, 0, 2)
    elif op == "transverse":
        out = arr[::-1, ::-1].transpose(1, 0, 2)
    elif op == "rot90":  # 90 degrees counter-clockwise
        out = np.rot90(arr, 1)
    else:  # rot270: 90 degrees clockwise
        out = np.rot90(arr, -1)
    return np.ascontiguousarray(out)


def read_image_bytes(path: str | Path, max_bytes: int | None = None, timeout: float | None = None) -> bytes:
    """Read an image file's bytes, turning every refusal and OS failure into :class:`ImageLoadError`.

    The one way specread reads an image file (see :func:`specread.io.files.read_regular`): a link
    is followed, but what it names must be a regular file (not a FIFO, device, socket or folder)
    of at most ``max_bytes``, read within ``timeout`` seconds.

    Args:
        path: the image file.
        max_bytes: size cap (default: ``[images] max_mb`` of the settings).
        timeout: read deadline in seconds, 0 for none (default: ``[images] read_timeout``).

    Raises:
        ImageTooLargeError: over the size cap.
        ImageLoadError: missing, not a regular file, unreadable, or the read stalled.
    """
    p = Path(path)
    cap = IMAGE_LIMITS.max_bytes if max_bytes is None else max_bytes
    deadline = IMAGE_LIMITS.read_timeout if timeout is None else timeout
    try:
        return read_regular(p, cap, deadline)
    except FileNotFoundError as exc:
        raise ImageLoadError(str(p), "file not found") from exc
    except FileTooLargeError as exc:
        raise ImageTooLargeError(str(p), exc.reason) from exc
    except UnreadableFileError as exc:
        raise ImageLoadError(str(p), exc.reason) from exc
    except OSError as exc:
        raise ImageLoadError(str(p), exc.strerror or str(exc)) from exc


def load_image(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, str]:
    """Read and decode an image file; returns ``(rgb_array, content_digest)`` (see :func:`decode_image`)."""
    data = read_image_bytes(path)
    return decode_image(data, str(path), max_side), image_digest(data)
