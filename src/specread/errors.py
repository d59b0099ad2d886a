"""One home for specread's exceptions.

Each derives from :class:`SpecreadError` and the builtin it behaves like, so a
caller can catch either. Messages are built in ``__str__`` from stored fields.
"""

from __future__ import annotations

__all__ = [
    "AnswerFormatError",
    "ApiError",
    "BadUrlError",
    "DeviceUnavailableError",
    "FetchError",
    "FetchFailedError",
    "FetchTimeoutError",
    "FetchTooLargeError",
    "FileTooLargeError",
    "ImageLoadError",
    "ImageTooLargeError",
    "InputFormatError",
    "InputNotFoundError",
    "JobMismatchError",
    "MissingColumnsError",
    "MissingImagesError",
    "ModelMismatchError",
    "NotFittedError",
    "NotRegularFileError",
    "PageFormatError",
    "PathNotAllowedError",
    "ReviewValueError",
    "SpecreadError",
    "UnknownEntityError",
    "UnknownRowError",
    "UnknownUnitError",
    "UnreadableFileError",
    "UrlNotAllowedError",
    "unreadable_image",
]


class SpecreadError(Exception):
    """Base class of every error specread raises on purpose."""


class UnknownEntityError(SpecreadError, ValueError):
    def __init__(self, entity: str, valid: list[str] | tuple[str, ...]) -> None:
        super().__init__(entity, tuple(valid))  # every field in args: the error pickles across processes
        self.entity = entity
        self.valid = tuple(valid)

    def __str__(self) -> str:
        return f"unknown entity {self.entity!r}; valid entities: {', '.join(self.valid)}"


class UnknownUnitError(SpecreadError, KeyError):
    def __init__(self, unit: str) -> None:
        super().__init__(unit)
        self.unit = unit

    def __str__(self) -> str:
        return f"unknown unit {self.unit!r}"


class DeviceUnavailableError(SpecreadError, RuntimeError):
    """An OCR device was asked for (``--device cuda``) that this installation cannot use."""

    def __init__(self, device: str, providers: tuple[str, ...]) -> None:
        super().__init__(device, providers)  # every field in args: the error pickles across processes
        self.device = device
        self.providers = providers

    def __str__(self) -> str:
        offered = ", ".join(self.providers) or "nothing"
        return (
            f"OCR device {self.device!r} is not available: onnxruntime offers {offered}; "
            "install the GPU extra (pip install 'specread[gpu]', onnxruntime-gpu with a CUDA driver) "
            "or use --device auto or cpu"
        )


class InputFormatError(SpecreadError, ValueError):
    """A CSV or other input that cannot be used (missing columns, bad header...)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class InputNotFoundError(InputFormatError, FileNotFoundError):
    """An input file that does not exist (``filename`` is set, as on the builtin)."""

    def __init__(self, path: str, reason: str = "file not found") -> None:
        super().__init__(path, reason)
        self.filename = path

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.reason))


class MissingColumnsError(InputFormatError, KeyError):
    """A CSV without a column it needs (a ``KeyError``, as reading the column from a row would raise)."""


class AnswerFormatError(SpecreadError, ValueError):
    """A non-empty answer that is not ``<number> <unit>`` (a list, a range, a number without unit...)."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text, reason)
        self.text = text
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.text!r} is not '<number> <unit>': {self.reason}"


class ImageLoadError(SpecreadError, OSError):
    """An image that is missing, empty, truncated or not an image at all."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot read image {self.path}: {self.reason}"


class UnreadableFileError(SpecreadError, OSError):
    """A file refused before or while it is read: not a regular file, over its size cap, or a read that stalled.

    Raised by :func:`specread.io.files.read_regular`; an image's reader turns it into an
    :class:`ImageLoadError` with the same ``reason``, the OCR cache into a miss.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot read {self.path}: {self.reason}"


class NotRegularFileError(UnreadableFileError):
    """A path that names a FIFO, a device, a socket or a folder: never opened for reading."""


class FileTooLargeError(UnreadableFileError):
    """A file over its size cap (found by its size before reading, or growing past it while read)."""


class PageFormatError(SpecreadError, ValueError):
    """Data that is not a valid OCR page (a cache entry of the wrong structure, absurd values, too deep or too big)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"not a valid OCR page: {self.reason}"


class ImageTooLargeError(ImageLoadError):
    """An image file over the size cap (:class:`FileTooLargeError` of an image)."""


class JobMismatchError(SpecreadError, ValueError):
    """An output file left by another job (other input, settings or version): resuming it would mix answers."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path} {self.reason}; pass --overwrite to start it afresh, or choose another --output"


class MissingImagesError(SpecreadError, FileNotFoundError):
    """Most of a run's images are not in the images folder: the user has not downloaded them yet."""

    def __init__(self, folder: str, missing: int, total: int, example: str) -> None:
        super().__init__(folder, missing, total, example)
        self.folder = folder
        self.missing = missing
        self.total = total
        self.example = example

    def __str__(self) -> str:
        return (
            f"{self.missing} of the {self.total} images to read are not in {self.folder} (e.g. {self.example}); "
            "download them first (add --download, or run: specread download INPUT.csv --images FOLDER), "
            "or pass --allow-missing to answer their rows without them"
        )


class ModelMismatchError(SpecreadError, ValueError):
    """A model folder this run cannot use: missing, garbled, or trained on other OCR settings or features."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"model {self.path} {self.reason}"


class NotFittedError(SpecreadError, AttributeError):
    def __str__(self) -> str:
        return "this ranker is not fitted yet: call fit() or load a trained model first"


class UnknownRowError(SpecreadError, KeyError):
    """A row index that the review queue does not hold (a ``KeyError``, as a lookup by index raises)."""

    def __init__(self, index: str) -> None:
        super().__init__(index)
        self.index = index

    def __str__(self) -> str:
        return f"no row with index {self.index!r} in the review queue"


class PathNotAllowedError(SpecreadError, PermissionError):
    """A file name that would reach outside the folder it must stay in (``..``, an absolute path, a link out)."""

    def __init__(self, name: str, folder: str) -> None:
        super().__init__(name, folder)
        self.name = name
        self.folder = folder

    def __str__(self) -> str:
        return f"{self.name!r} is not a file inside {self.folder}"


class ReviewValueError(SpecreadError, ValueError):
    """A reviewer's typed answer that cannot be this row's label: no number, no unit, or a unit the entity refuses."""

    def __init__(self, text: str, entity: str, reason: str) -> None:
        super().__init__(text, entity, reason)
        self.text = text
        self.entity = entity
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.text!r} cannot answer {self.entity}: {self.reason}"


# -- the HTTP service --------------------------------------------------------------------------------------------------
class ApiError(SpecreadError):
    """An error the service answers as ``{"error": {"code", "message"}}`` with HTTP ``status`` (and ``headers``)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class FetchError(SpecreadError):
    """A URL that could not be turned into image bytes; ``status`` is the HTTP status to answer with."""

    status = 502
    code = "fetch_failed"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot fetch {self.url}: {self.reason}"


class UrlNotAllowedError(FetchError):
    """The host resolves to an address outside the fetch policy."""

    status = 403
    code = "url_not_allowed"


class BadUrlError(FetchError):
    """Not an http(s) URL with a host (also when a redirect points to one)."""

    status = 422
    code = "bad_url"


class FetchTooLargeError(FetchError):
    status = 413
    code = "remote_too_large"


class FetchTimeoutError(FetchError):
    status = 504
    code = "fetch_timeout"


class FetchFailedError(FetchError):
    """Connection refused, DNS failure, HTTP error status, broken response..."""


def unreadable_image(exc: BaseException) -> str | None:
    """The image ``exc`` says could not be read (an :class:`ImageLoadError`'s path), else None.

    When a batch of images fails on one of them, that one fails at once and only the others are
    read again: a read that stalled to its deadline must not stall the batch twice.
    """
    return exc.path if isinstance(exc, ImageLoadError) else None
