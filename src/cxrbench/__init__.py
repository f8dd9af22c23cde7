"""cxrbench: robustness benchmark for contrastive chest X-ray image-report retrieval."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxrbench")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
