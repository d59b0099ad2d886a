"""A corpus of hostile inputs for specread's CLI and HTTP service, built in memory.

Every case is a :class:`Case`: a name, the bytes to send or write, its ``kind`` and
what "handled" means for it. Nothing is read from disk or the network; every
builder is a pure function of its arguments (random bytes come from a seeded
generator), so a run is reproducible, and the whole corpus builds in about a
second. The files are small even where the picture they describe is huge: PNGs
whose pixels are all zero are written chunk by chunk with :mod:`zlib` (a
9400x9400 palette PNG is about 11 KB), oversized JPEG/GIF/BMP/TIFF headers are
patched or written by hand, and a 9000x9000 progressive JPEG of 3000 empty scans
(a CPU bomb) is 30 KB. The 69 images take about 7 MiB (the largest, a JPEG with a
4 MiB ICC profile); all 129 cases about 17 MiB, most of it a 5 MiB form field.

Kinds:

* ``image``: a file to read (CLI) or upload (service). ``expect`` is ``"refuse"``
  (must never be decoded: not an image, a format specread does not open, more
  pixels than Pillow's bomb limit), ``"read"`` (a plain label: must be read) or
  ``"either"`` (read it or refuse it, but never crash).
* ``url``: an ``image_url`` that the service must refuse (scheme or address policy)
  before it opens any connection. Only loopback, private and reserved IP
  literals, ``localhost`` and numeric host forms appear, never a public host.
* ``multipart``: an HTTP request body and headers for ``POST /v1/read`` (``expect``
  ``"error"``: a JSON 4xx; ``"any"``: a 200 read or a JSON 4xx), or, with ``mode``
  set, raw request bytes sent over a socket.
* ``slow``: raw request bytes with a ``mode`` saying how they are sent (``stall``:
  all at once then silence; ``trickle``: one byte a second; ``send``: all at once,
  then read the answer; ``idle``: open connections and send nothing) and which
  server timeout (``header`` or ``body``) must end them.

Example:
    >>> cases = build_corpus(quick=True)
    >>> sorted({c.kind for c in cases})
    ['image', 'multipart', 'slow', 'url']
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "HOST",
    "Case",
    "build_corpus",
    "image_cases",
    "label_image",
    "multipart_body",
    "multipart_cases",
    "png_file",
    "raw_request",
    "slow_cases",
    "url_cases",
]

HOST = "127.0.0.1"
"""The only host a raw request names (the service under test listens on loopback)."""

_HANDLED = {
    ("image", "refuse"): "refused, never decoded: the CLI warns and writes empty rows; the service answers a JSON 4xx",
    ("image", "read"): "read: the CLI writes its rows without a warning; the service answers 200 with a JSON result",
    ("image", "either"): (
        "read or refused, never a crash: the CLI writes every row; the service answers 200 JSON or a JSON 4xx"
    ),
    ("url", "refuse"): (
        "refused by the scheme/address policy before any connection: a JSON 4xx "
        "(403 url_not_allowed, 422 bad_url or invalid_request); 502/504 means it tried to connect"
    ),
    ("multipart", "error"): "a JSON 4xx error, never a 5xx or a dropped connection",
    ("multipart", "any"): "200 with a JSON read result or a JSON 4xx error, never a 5xx or a dropped connection",
    ("multipart", "close"): "the server answers or closes the connection within its body timeout + slack",
    ("slow", "close"): "the server closes the connection within its {timeout} timeout + slack",
    ("slow", "reject"): "a 4xx answer or a closed connection within the header timeout + slack; never 2xx or 5xx",
}


@dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        name: unique, file-name safe.
        kind: ``image``, ``url``, ``multipart`` or ``slow``.
        data: the image file, the URL (UTF-8), the request body, or the raw request bytes.
        expect: what a correct answer is (see the module doc).
        handled: the same in words.
        suffix: file name ending of an image case (``.png``...), also its upload name.
        headers: request headers of a multipart case sent as an HTTP request.
        mode: how raw bytes are sent (``stall``, ``trickle``, ``send``, ``idle``); empty: a normal request.
        timeout: which server timeout must end a raw case: ``header`` or ``body``.
        info: what the bytes claim, for tests (``format``, ``size``, ``mode``, ``frames``), and for the
            runner: ``connections`` (idle sockets to open), ``max_seconds`` (an answer after that is a failure).
        heavy: memory-heavy (decoding it naively takes hundreds of MB or more): measured alone too.
        quick: part of the small ``--quick`` subset.
    """

    name: str
    kind: str
    data: bytes
    expect: str
    handled: str = ""
    suffix: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    mode: str = ""
    timeout: str = ""
    info: dict = field(default_factory=dict, compare=False, hash=False)
    heavy: bool = False
    quick: bool = False

    @property
    def filename(self) -> str:
        """The file name an image case is written and uploaded under."""
        return f"{self.name}{self.suffix}"


def _case(name: str, kind: str, data: bytes, expect: str, **kw: object) -> Case:
    """A :class:`Case` with ``handled`` filled in from ``kind`` and ``expect``."""
    text = _HANDLED[(kind, expect)].format(timeout=kw.get("timeout") or "header")
    if kind == "image":
        kw.setdefault("suffix", ".png")
    return Case(name, kind, data, expect, handled=str(kw.pop("handled", text)), **kw)  # type: ignore[arg-type]


# -- building blocks --------------------------------------------------------------------------------------------------
def label_image(text: str = "Net Wt 500 g  12 V  60 W", size: tuple[int, int] = (360, 96)) -> Image.Image:
    """A small RGB product label: dark text on white, something the OCR can read."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(8, min(28, size[1] // 3)))
    draw.text((max(1, size[0] // 40), max(1, size[1] // 3)), text, fill="black", font=font)
    return img


def _save(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _chunk(tag: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, tag, payload, CRC."""
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)


def _blank_idat(row_bytes: int, height: int, rows_per_block: int = 512) -> bytes:
    """zlib stream of ``height`` all-zero PNG rows (filter byte + zeros), compressed block by block."""
    comp = zlib.compressobj(9)
    block = b"\0" * ((row_bytes + 1) * rows_per_block)
    parts = [comp.compress(block) for _ in range(height // rows_per_block)]
    parts.append(comp.compress(b"\0" * ((row_bytes + 1) * (height % rows_per_block))))
    parts.append(comp.flush())
    return b"".join(parts)


def png_file(
    width: int,
    height: int,
    bit_depth: int = 1,
    color_type: int = 3,
    idat: bytes | None = None,
    palette: bytes = b"\xff\xff\xff\x00\x00\x00",
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    """A PNG written chunk by chunk; by default every pixel is 0 (palette white), deflated by zlib.

    Args:
        width, height: the IHDR size (nothing checks that ``idat`` matches it).
        bit_depth, color_type: IHDR fields (3: palette, 0: gray, 2: RGB).
        idat: the IDAT payload; default: all-zero rows, compressed (about 1/1000 of the raw size).
        palette: PLTE payload, written for palette images only.
        extra: more ``(tag, payload)`` chunks written before IDAT.
    """
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row_bytes = (width * channels * bit_depth + 7) // 8
    if idat is None:
        idat = _blank_idat(row_bytes, height)
    out = [
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)),
    ]
    if color_type == 3:
        out.append(_chunk(b"PLTE", palette))
    out += [_chunk(tag, payload) for tag, payload in extra]
    out += [_chunk(b"IDAT", idat), _chunk(b"IEND", b"")]
    return b"".join(out)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A 16x16 baseline JPEG whose SOF0 header is patched to claim ``width`` x ``height`` (a few hundred bytes)."""
    data = bytearray(_save(label_image("5 kg", (16, 16)), "JPEG", quality=50))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_scan_bomb(width: int, height: int, scans: int) -> bytes:
    """A grey progressive JPEG of ``scans`` empty DC scans: 10 bytes each, yet each walks every 8x8 block.

    libjpeg fills a scan that ends early with zeros and goes on, so decoding costs
    ``scans`` x (``width`` x ``height`` / 64) block visits (about 6 ms per scan at
    8000x8000 on one core) from a file of a few tens of KB.
    """
    dqt = _jpeg_segment(0xDB, b"\x00" + bytes([1] * 64))
    sof = _jpeg_segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    dht = _jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # one DC code: category 0
    sos = _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x00\x00")  # component 1, DC first scan
    return b"\xff\xd8" + dqt + sof + dht + sos * scans + b"\xff\xd9"


def _gif_frame(x: int, y: int, delay: int = 1) -> bytes:
    """A graphic control extension and a 1x1 frame at (x, y): LZW codes clear, 0, end (min code size 2)."""
    gce = b"\x21\xf9\x04\x04" + struct.pack("<H", delay) + b"\x00\x00"
    return gce + b"\x2c" + struct.pack("<HHHH", x, y, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"


def _gif(width: int, height: int, frames: Iterable[bytes], extra: bytes = b"") -> bytes:
    """A GIF89a with a two-colour global table, a looping extension, ``extra`` blocks and ``frames``."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\xff\xff\xff\x00\x00\x00"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    return head + loop + extra + b"".join(frames) + b"\x3b"


def _gif_comment(text: bytes) -> bytes:
    """A GIF comment extension holding ``text`` (split into 255-byte sub-blocks)."""
    blocks = b"".join(bytes([len(text[i : i + 255])]) + text[i : i + 255] for i in range(0, len(text), 255))
    return b"\x21\xfe" + blocks + b"\x00"


def _tiff(entries: list[tuple[int, int, int]], data: bytes) -> bytes:
    """A little-endian TIFF with one IFD of ``(tag, type, value)`` entries (SHORT=3, LONG=4) and ``data`` after it."""
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = [b"II*\x00", struct.pack("<I", 8), struct.pack("<H", len(entries))]
    for tag, typ, value in sorted(entries):
        value = data_offset if value == -1 else value
        packed = struct.pack("<HI", value, 0)[:4] if typ == 3 else struct.pack("<I", value)
        out.append(struct.pack("<HHI", tag, typ, 1) + packed)
    out.append(struct.pack("<I", 0))
    return b"".join(out) + data


def _exif(entries: list[tuple[int, int, int, int]], next_ifd: int = 0) -> bytes:
    """Raw EXIF (``Exif\\0\\0`` + TIFF header + IFD0) of ``(tag, type, count, value)`` entries."""
    body = [b"II*\x00", struct.pack("<I", 8), struct.pack("<H", len(entries))]
    body += [struct.pack("<HHII", tag, typ, count, value) for tag, typ, count, value in entries]
    body.append(struct.pack("<I", next_ifd))
    return b"Exif\x00\x00" + b"".join(body)


def _frames(n: int, size: tuple[int, int], mode: str = "RGB") -> list[Image.Image]:
    """``n`` distinct small frames (a label with a counter), so encoders do not merge them."""
    return [label_image(f"{i} kg", size).convert(mode) for i in range(n)]


# -- image cases ------------------------------------------------------------------------------------------------------
def _geometry_cases() -> list[Case]:
    label = label_image()
    strip = Image.new("L", (3, 4000), 255)
    ImageDraw.Draw(strip).line([(1, 0), (1, 3999)], fill=0)
    red = Image.new("RGB", (1, 1), "red")
    rows: list[tuple[str, bytes, str, str, tuple[int, int], dict]] = [
        ("control_label", _save(label, "PNG"), "read", "PNG", label.size, {"quick": True}),
        ("strip_1x500", _save(Image.new("L", (1, 500), 0), "PNG"), "either", "PNG", (1, 500), {}),
        ("strip_500x1", _save(Image.new("L", (500, 1), 0), "PNG"), "either", "PNG", (500, 1), {"quick": True}),
        ("strip_3x4000", _save(strip, "PNG"), "either", "PNG", (3, 4000), {}),
        ("pixel_1x1_png", _save(red, "PNG"), "either", "PNG", (1, 1), {}),
        ("pixel_1x1_jpeg", _save(red, "JPEG"), "either", "JPEG", (1, 1), {}),
        ("pixel_1x1_gif", _save(Image.new("P", (1, 1), 0), "GIF"), "either", "GIF", (1, 1), {}),
        ("aspect_2x100000", png_file(2, 100_000, 8, 0), "either", "PNG", (2, 100_000), {}),
        ("aspect_100000x2", png_file(100_000, 2, 8, 0), "either", "PNG", (100_000, 2), {"quick": True}),
        (
            "palette_9400x9400",
            png_file(9400, 9400),
            "either",
            "PNG",
            (9400, 9400),
            {
                "heavy": True,
                "quick": True,
                "handled": "read or refused without a multi-GB decode (88.4 Mpx: under Pillow's 89.5-Mpx limit)",
            },
        ),
        ("bomb_10000x10000", png_file(10_000, 10_000), "refuse", "PNG", (10_000, 10_000), {"heavy": True}),
        ("bomb_20000x20000", png_file(20_000, 20_000), "refuse", "PNG", (20_000, 20_000), {"heavy": True}),
        (
            "bomb_header_100000x100000",
            png_file(100_000, 100_000, idat=zlib.compress(b"\0" * 64)),
            "refuse",
            "PNG",
            (100_000, 100_000),
            {"quick": True},
        ),
        ("jpeg_dims_65000x65000", _jpeg_with_size(65_000, 65_000), "refuse", "JPEG", (65_000, 65_000), {"quick": True}),
        ("jpeg_dims_9000x9000", _jpeg_with_size(9000, 9000), "either", "JPEG", (9000, 9000), {"heavy": True}),
        (
            "jpeg_scan_bomb_9000x9000",
            jpeg_scan_bomb(9000, 9000, 3000),
            "either",
            "JPEG",
            (9000, 9000),
            {
                "heavy": True,
                "handled": "read or refused within 10 s: 3000 empty progressive scans over 1.27M blocks (CPU bomb)",
                "max_seconds": 10.0,
            },
        ),
        ("gif_screen_65535", _gif(65_535, 65_535, [_gif_frame(0, 0)]), "refuse", "GIF", (65_535, 65_535), {}),
        ("bmp_dims_60000", _bmp_with_size(60_000, 60_000), "refuse", "BMP", (60_000, 60_000), {}),
        ("tiff_dims_100000", _tiff_with_size(100_000, 100_000), "refuse", "TIFF", (100_000, 100_000), {}),
    ]
    out = []
    for name, data, expect, fmt, size, kw in rows:
        info = {"format": fmt, "size": size, **({"max_seconds": kw.pop("max_seconds")} if "max_seconds" in kw else {})}
        out.append(_case(name, "image", data, expect, suffix=_SUFFIX[fmt], info=info, **kw))
    return out


_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


def _bmp_with_size(width: int, height: int) -> bytes:
    """A 24-bit BMP header claiming ``width`` x ``height`` followed by 64 bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = b"\xff" * 64
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


def _tiff_with_size(width: int, height: int) -> bytes:
    """An uncompressed 1-bit TIFF claiming ``width`` x ``height`` with one strip of 16 bytes."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 1), (259, 3, 1), (262, 3, 1)]
    entries += [(273, 4, -1), (277, 3, 1), (278, 4, height), (279, 4, 16)]
    return _tiff(entries, b"\0" * 16)


def _broken_cases() -> list[Case]:
    label = label_image()
    png = _save(label, "PNG")
    jpeg = _save(label, "JPEG", quality=90)
    bad_crc = bytearray(png)
    bad_crc[29:33] = b"\x00\x00\x00\x00"  # the IHDR CRC
    rng = random.Random(1234)
    cases = [
        _case("zero_bytes", "image", b"", "refuse", suffix=".jpg", quick=True),
        _case("random_bytes_4k", "image", rng.randbytes(4096), "refuse", suffix=".jpg"),
        _case("truncated_png", "image", png[: len(png) // 2], "refuse", suffix=".png", quick=True),
        _case("truncated_jpeg", "image", jpeg[: len(jpeg) // 2], "refuse", suffix=".jpg"),
        _case(
            "truncated_gif", "image", (g := _save(label.convert("P"), "GIF"))[: len(g) // 2], "either", suffix=".gif"
        ),
        _case("truncated_webp", "image", (w := _save(label, "WEBP"))[: len(w) // 2], "either", suffix=".webp"),
        _case("truncated_tiff", "image", (t := _save(label, "TIFF"))[: len(t) // 2], "either", suffix=".tif"),
        _case("png_header_only", "image", png[:33], "refuse", suffix=".png"),
        _case("png_bad_crc", "image", bytes(bad_crc), "refuse", suffix=".png"),
        _case(
            "html_named_jpg", "image", b"<html><body><script>alert(1)</script></body></html>", "refuse", suffix=".jpg"
        ),
    ]
    return cases


def _polyglot_cases() -> list[Case]:
    label = label_image()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("payload.html", "<html><script>alert(document.domain)</script></html>")
        zf.writestr("label.png", _save(label, "PNG"))
    zip_bytes = zbuf.getvalue()
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"
    gif_html = _gif(64, 16, [_gif_frame(0, 0)], extra=_gif_comment(html))[:-1] + b"\x3b" + html
    png_html = png_file(32, 8, 8, 0, extra=[(b"tEXt", b"Comment\x00" + html)]) + html
    return [
        _case("jpeg_zip_polyglot", "image", _save(label, "JPEG") + zip_bytes, "either", suffix=".jpg", quick=True),
        _case("gif_html_polyglot", "image", gif_html, "either", suffix=".gif"),
        _case("png_html_polyglot", "image", png_html, "either", suffix=".png"),
        _case("zip_named_jpg", "image", zip_bytes, "refuse", suffix=".jpg"),
        _case("zip_named_zip", "image", zip_bytes, "refuse", suffix=".zip"),
    ]


_SVG = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="360" height="96">
  <rect width="100%" height="100%" fill="white"/>
  <text x="10" y="50" font-size="28">Net Wt 500 g &secret;</text>
  <image href="http://169.254.169.254/latest/meta-data/" width="1" height="1"/>
</svg>
"""

_EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 360 96
%%EndComments
/Helvetica findfont 28 scalefont setfont
10 40 moveto (Net Wt 500 g) show
showpage
%%EOF
"""


def _format_cases() -> list[Case]:
    """Formats specread must refuse (vector, script, document, exotic) and ones it may open (AVIF)."""
    label = label_image()
    pdf = _save(label, "PDF")
    cases = [
        _case("svg", "image", _SVG, "refuse", suffix=".svg", quick=True),
        _case("svg_named_png", "image", _SVG, "refuse", suffix=".png"),
        _case("eps", "image", _EPS, "refuse", suffix=".eps", quick=True),
        _case("eps_named_jpg", "image", _EPS, "refuse", suffix=".jpg"),
        _case("pdf", "image", pdf, "refuse", suffix=".pdf"),
        _case("pdf_named_jpg", "image", pdf, "refuse", suffix=".jpg"),
        _case("jpeg2000_named_jpg", "image", _save(label, "JPEG2000"), "refuse", suffix=".jpg"),
        _case("ico_named_png", "image", _save(label, "ICO", sizes=[(64, 64)]), "refuse", suffix=".png"),
        _case("ppm_named_jpg", "image", _save(label, "PPM"), "refuse", suffix=".jpg"),
    ]
    Image.init()
    if "AVIF" in Image.SAVE:  # Pillow built with libavif
        cases.append(_case("avif", "image", _save(label, "AVIF"), "either", suffix=".avif", info={"format": "AVIF"}))
    return cases


def _animation_cases() -> list[Case]:
    frames = [_gif_frame(i % 64, (i // 64) % 64) for i in range(5000)]
    cases = [
        _case(
            "gif_5000_frames",
            "image",
            _gif(64, 64, frames),
            "either",
            suffix=".gif",
            info={"format": "GIF", "frames": 5000, "size": (64, 64)},
            quick=True,
        )
    ]
    multi = [  # (name, frames, format, suffix, encoder options)
        ("tiff_50_pages", 50, "TIFF", ".tif", {}),
        ("webp_animated_20", 20, "WEBP", ".webp", {"duration": 50, "loop": 0}),
        ("apng_100_frames", 100, "PNG", ".png", {"duration": 20}),
    ]
    for name, n, fmt, suffix, options in multi:
        first, *rest = _frames(n, (120, 32))
        data = _save(first, fmt, save_all=True, append_images=rest, **options)
        cases.append(_case(name, "image", data, "either", suffix=suffix, info={"format": fmt, "frames": n}))
    return cases


def _metadata_cases() -> list[Case]:
    label = label_image()
    icc = (b"specread-hostile-icc" * 209716)[: 4 * 1024 * 1024]
    many = [(0x0112, 3, 1, 6)] + [(0x1000 + i, 4, 1_000_000, 0xFFFFFFF0) for i in range(5000)]
    loop = [(0x0112, 3, 1, 8), (0x8769, 4, 1, 8)]  # ExifIFD pointer back to IFD0
    exif_png = _exif([(i, 4, 1, i) for i in range(1, 65536)])[6:]
    text_bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    return [
        _case("jpeg_icc_4mb", "image", _save(label, "JPEG", icc_profile=icc), "either", suffix=".jpg"),
        _case("jpeg_exif_5000_tags", "image", _save(label, "JPEG", exif=_exif(many)), "either", suffix=".jpg"),
        _case("jpeg_exif_loop", "image", _save(label, "JPEG", exif=_exif(loop, next_ifd=8)), "either", suffix=".jpg"),
        _case("png_exif_65535_tags", "image", png_file(64, 16, 8, 0, extra=[(b"eXIf", exif_png)]), "either"),
        _case(
            "png_iccp_bomb", "image", png_file(64, 16, 8, 0, extra=[(b"iCCP", b"icc\x00\x00" + text_bomb)]), "either"
        ),
        _case(
            "png_ztxt_bomb",
            "image",
            png_file(64, 16, 8, 0, extra=[(b"zTXt", b"Comment\x00\x00" + text_bomb)]),
            "either",
        ),
    ]


def _mode_cases() -> list[Case]:
    label = label_image()
    gray = np.asarray(label.convert("L"))
    deep = (gray.astype(np.uint32) * 257).astype(np.uint16)
    rgb48 = np.repeat(deep[:, :, None], 3, axis=2).astype(">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in rgb48)
    transparent = label.convert("P")
    transparent.info["transparency"] = 0
    cases = [
        ("png_16bit_gray", Image.fromarray(deep), "PNG", ".png", {}),
        ("png_la", label.convert("LA"), "PNG", ".png", {}),
        ("png_1bit", label.convert("1"), "PNG", ".png", {}),
        ("png_rgba", label.convert("RGBA"), "PNG", ".png", {}),
        ("png_palette_transparent", transparent, "PNG", ".png", {"transparency": 0}),
        ("jpeg_cmyk", label.convert("CMYK"), "JPEG", ".jpg", {}),
        ("jpeg_gray_progressive", label.convert("L"), "JPEG", ".jpg", {"progressive": True}),
        ("tiff_cmyk", label.convert("CMYK"), "TIFF", ".tif", {}),
        ("tiff_mode_I", label.convert("I"), "TIFF", ".tif", {}),
        ("tiff_mode_F", label.convert("F"), "TIFF", ".tif", {}),
        ("tiff_I16", Image.fromarray(deep), "TIFF", ".tif", {}),
        ("tiff_lab", label.convert("LAB"), "TIFF", ".tif", {}),
        ("bmp_1bit", label.convert("1"), "BMP", ".bmp", {}),
        ("webp_rgba", label.convert("RGBA"), "WEBP", ".webp", {}),
    ]
    out = [
        _case(name, "image", _save(img, fmt, **opts), "either", suffix=suffix, info={"format": fmt, "mode": img.mode})
        for name, img, fmt, suffix, opts in cases
    ]
    out.append(
        _case(
            "png_16bit_rgb",
            "image",
            png_file(label.width, label.height, 16, 2, idat=zlib.compress(rows)),
            "either",
            suffix=".png",
            info={"format": "PNG", "size": label.size},
        )
    )
    return out


def image_cases() -> list[Case]:
    """Every image case: geometry, bombs, broken files, polyglots, formats, animations, metadata, modes."""
    cases: list[Case] = []
    for build in (_geometry_cases, _broken_cases, _polyglot_cases, _format_cases, _animation_cases, _metadata_cases):
        cases += build()
    return cases + _mode_cases()


# -- URL cases --------------------------------------------------------------------------------------------------------
_SSRF_URLS = [
    ("loopback_v4", "http://127.0.0.1/", True),
    ("loopback_v6", "http://[::1]/", True),
    ("private_10", "http://10.0.0.1/", False),
    ("metadata_169_254", "http://169.254.169.254/latest/meta-data/", True),
    ("nat64_loopback", "http://[64:ff9b::7f00:1]/", False),
    ("sixtofour_loopback", "http://[2002:7f00:1::1]/", False),
    ("v4_compatible_loopback", "http://[::7f00:1]/", False),
    ("site_local_fec0", "http://[fec0::1]/", False),
    ("v4_mapped_loopback", "http://[::ffff:127.0.0.1]/", True),
    ("v4_mapped_hex", "http://[::ffff:7f00:1]/", False),
    ("hex_host", "http://0x7f000001/", True),
    ("decimal_host", "http://2130706433/", False),
    ("octal_host", "http://0177.0.0.1/", False),
    ("short_host", "http://127.1/", False),
    ("zero_host", "http://0/", False),
    ("unspecified_v6", "http://[::]/", False),
    ("localhost", "http://localhost/", False),
    ("localhost_upper", "HTTP://LOCALHOST:6379/", False),
    ("userinfo", "http://user:pass@127.0.0.1:22/", False),
    ("cgnat_100_64", "http://100.64.0.1/", False),
    ("file_scheme", "file:///etc/passwd", True),
    ("gopher_scheme", "gopher://127.0.0.1:6379/_INFO%0d%0a", True),
    ("ftp_scheme", "ftp://127.0.0.1/label.jpg", False),
    ("data_scheme", "data:image/png;base64,iVBORw0KGgo=", False),
    ("no_host", "http:///label.jpg", False),
    ("overlong_1900", "http://127.0.0.1/" + "a" * 1900, False),
    ("overlong_4096", "http://127.0.0.1/" + "a" * 4096, True),
    ("overlong_1mb", "http://127.0.0.1/" + "a" * (1024 * 1024), False),
]


def url_cases() -> list[Case]:
    """SSRF address forms, non-http schemes and overlong URLs, each of which the service must refuse."""
    return [_case(f"url_{name}", "url", url.encode(), "refuse", quick=quick) for name, url, quick in _SSRF_URLS]


# -- multipart cases --------------------------------------------------------------------------------------------------
Part = tuple[str, bytes, str | None, str | None]
"""(field name, value, file name or None, content type or None)."""


def multipart_body(parts: Iterable[Part], boundary: str = "hostileBoundary7MA4YWxk", close: bool = True) -> bytes:
    """A ``multipart/form-data`` body of ``parts``; ``close=False`` leaves out the closing boundary."""
    out = []
    for name, value, filename, ctype in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        out.append(head.encode("utf-8", "surrogateescape") + b"\r\n" + value + b"\r\n")
    if close:
        out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _form(boundary: str = "hostileBoundary7MA4YWxk") -> tuple[tuple[str, str], ...]:
    return (("content-type", f"multipart/form-data; boundary={boundary}"),)


def raw_request(method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """HTTP/1.1 request bytes exactly as given (no header added but ``Host``)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def multipart_cases() -> list[Case]:
    """Abusive ``POST /v1/read`` bodies: boundaries, part and field counts, sizes, names, content types."""
    png = _save(label_image(), "PNG")
    image: Part = ("image", png, "label.png", "image/png")
    weight: Part = ("entities", b"item_weight", None, None)
    form = _form()
    body = multipart_body([weight, image])

    def case(name: str, data: bytes, expect: str, headers: tuple[tuple[str, str], ...] = form, **kw: object) -> Case:
        return _case(f"mp_{name}", "multipart", data, expect, headers=headers, **kw)

    header_flood = "".join(f"X-H{i}: {i}\r\n" for i in range(10_000))
    flooded = body.replace(b"Content-Type: image/png\r\n", f"Content-Type: image/png\r\n{header_flood}".encode())
    return [
        case("control", body, "any", quick=True),
        case("no_boundary", body, "error", (("content-type", "multipart/form-data"),), quick=True),
        case("boundary_never_closed", multipart_body([weight, image], close=False), "any"),
        case("empty_body", b"", "error"),
        case("garbage_body", random.Random(7).randbytes(8192), "error"),
        case(
            "parts_5000",
            multipart_body([weight, *[("junk", b"x", f"{i}.png", "image/png") for i in range(5000)]]),
            "any",
        ),
        case("fields_5000", multipart_body([image, *[("junk", b"x", None, None)] * 5000]), "any"),
        case("entities_5000", multipart_body([image, *[weight] * 5000]), "any", quick=True),
        case(
            "huge_text_field",
            multipart_body([weight, image, ("group_id", b"7" * (5 * 1024 * 1024), None, None)]),
            "error",
        ),
        case("huge_filename", multipart_body([weight, ("image", png, "a" * 65536 + ".png", "image/png")]), "any"),
        case("two_images", multipart_body([weight, image, image]), "any", quick=True),
        case("part_content_type_html", multipart_body([weight, ("image", png, "label.png", "text/html")]), "any"),
        case(
            "request_content_type_json",
            json.dumps({"entities": ["item_weight"]}).encode(),
            "error",
            (("content-type", "application/json"),),
        ),
        case(
            "urlencoded_with_url",
            b"entities=item_weight&image_url=http%3A%2F%2F127.0.0.1%2F",
            "error",
            (("content-type", "application/x-www-form-urlencoded"),),
        ),
        case(
            "image_and_url", multipart_body([weight, image, ("image_url", b"http://127.0.0.1/", None, None)]), "error"
        ),
        case("no_entities", multipart_body([image]), "error"),
        case("unknown_entity", multipart_body([("entities", b"colour", None, None), image]), "error"),
        case("empty_file", multipart_body([weight, ("image", b"", "label.png", "image/png")]), "error"),
        case("name_with_crlf", multipart_body([("entities\r\nX-Evil: 1", b"item_weight", None, None), image]), "any"),
        case("non_utf8_field", multipart_body([("entities", b"item_\xff\xfeweight", None, None), image]), "error"),
        case("part_header_flood", flooded, "any"),
        case("preamble_2mb", b"x" * (2 * 1024 * 1024) + b"\r\n" + body, "any"),
        case(
            "content_length_larger_then_stall",
            raw_request("POST", "/v1/read", [*form, ("Content-Length", str(len(body) + 100_000))], body),
            "close",
            mode="stall",
            timeout="body",
            quick=True,
        ),
    ]


# -- slow clients -----------------------------------------------------------------------------------------------------
def slow_cases() -> list[Case]:
    """Slow and stalled clients, oversized and ambiguous headers, sent over raw sockets."""
    form = _form()
    head = raw_request("POST", "/v1/read", [*form, ("Content-Length", "10000")])
    partial_head = head[: head.index(b"\r\n\r\n") + 2]  # the last header line, never the blank line
    body = multipart_body([("entities", b"item_weight", None, None)])
    return [
        _case("slow_headers_never_finish", "slow", partial_head, "close", mode="stall", timeout="header", quick=True),
        _case("slow_header_byte_per_second", "slow", head, "close", mode="trickle", timeout="header"),
        _case("slow_body_stall", "slow", head + body[:100], "close", mode="stall", timeout="body"),
        _case("slow_body_byte_per_second", "slow", head + body, "close", mode="trickle", timeout="body"),
        _case(
            "slow_header_1mb",
            "slow",
            raw_request("GET", "/healthz", [("X-Big", "a" * (1024 * 1024))]),
            "reject",
            mode="send",
            timeout="header",
        ),
        _case(
            "slow_header_count_10000",
            "slow",
            raw_request("GET", "/healthz", [(f"X-H{i}", "1") for i in range(10_000)]),
            "reject",
            mode="send",
            timeout="header",
        ),
        _case(
            "slow_duplicate_content_length",
            "slow",
            raw_request("POST", "/v1/read", [*form, ("Content-Length", "5"), ("Content-Length", "50")], b"abcde"),
            "reject",
            mode="send",
            timeout="header",
            quick=True,
        ),
        _case(
            "slow_content_length_and_chunked",
            "slow",
            raw_request(
                "POST", "/v1/read", [*form, ("Content-Length", "4"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"
            ),
            "reject",
            mode="send",
            timeout="header",
        ),
        _case(
            "slow_idle_connections_60",
            "slow",
            b"",
            "close",
            mode="idle",
            timeout="header",
            info={"connections": 60},
        ),
    ]


# -- the corpus -------------------------------------------------------------------------------------------------------
_BUILDERS: tuple[Callable[[], list[Case]], ...] = (image_cases, url_cases, multipart_cases, slow_cases)


def build_corpus(quick: bool = False) -> list[Case]:
    """Every case (or the ``--quick`` subset), images first; names are unique."""
    cases = [c for build in _BUILDERS for c in build() if c.quick or not quick]
    names = [c.name for c in cases]
    if len(names) != len(set(names)):
        raise AssertionError(f"duplicate case names: {sorted({n for n in names if names.count(n) > 1})}")
    return cases
