"""Image loading with every failure turned into :class:`ImageLoadError`.

Product images arrive as JPEG/PNG/WebP/GIF of any size, sometimes truncated
or zero bytes. Decoding is strict (no silent truncated loads), EXIF rotation
is applied so boxes match what a person sees, and Pillow's decompression-bomb
limit is honoured.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from specread.errors import ImageLoadError

RASTER_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
"""Formats decoded: product photos only. Vector and script formats (EPS runs Ghostscript) are refused."""

__all__ = ["RASTER_FORMATS", "decode_image", "image_digest", "load_image", "read_image_bytes"]


def image_digest(data: bytes) -> str:
    """Content key of an image: identical bytes share one OCR pass."""
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode image bytes into an RGB ``uint8`` array of shape (H, W, 3).

    Raises:
        ImageLoadError: empty, truncated, oversized (bomb) or not an image.
    """
    if not data:
        raise ImageLoadError(name, "file is empty")
    try:
        with Image.open(io.BytesIO(data), formats=RASTER_FORMATS) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            arr = np.asarray(img.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"image too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(name, "not an image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(name, f"corrupt or truncated image ({exc})") from exc
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ImageLoadError(name, f"unusable image shape {arr.shape}")
    return arr


def read_image_bytes(path: str | Path) -> bytes:
    """Read an image file's bytes, turning every OS failure into :class:`ImageLoadError`."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError as exc:
        raise ImageLoadError(str(p), "file not found") from exc
    except OSError as exc:
        raise ImageLoadError(str(p), exc.strerror or str(exc)) from exc


def load_image(path: str | Path) -> tuple[np.ndarray, str]:
    """Read and decode an image file; returns ``(rgb_array, content_digest)``."""
    data = read_image_bytes(path)
    return decode_image(data, str(path)), image_digest(data)
