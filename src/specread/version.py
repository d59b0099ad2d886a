"""specread's version, from the installed package's metadata (what job records and the service report)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("specread")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
