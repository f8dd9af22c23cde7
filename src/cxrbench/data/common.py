"""The toolkit every dataset loader shares: option checks, path resolution, index-file reading and
fingerprints, summary counts, and the image decoder of file-based datasets.

Loaders import from here and from :mod:`cxrbench.data.records`, never from one another.
"""

from __future__ import annotations

import csv
import hashlib
import os
import stat
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cxrbench.data.images import decode_image
from cxrbench.data.records import TEXT_POLICIES, ImageRecord, Study, apply_policy
from cxrbench.data.records import report_text as _report_text
from cxrbench.errors import ConfigError, DataError

ON_BAD_IMAGE = ("error", "skip")


# --- options ----------------------------------------------------------------------------------------------------


def check_choice(option: str, value: object, choices: Iterable[str]) -> None:
    """ConfigError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{option}={value!r} is not valid; choose one of {', '.join(map(repr, choices))}")


def check_policy(policy: str) -> None:
    check_choice("policy", policy, TEXT_POLICIES)


def parse_views(views: str | Iterable[str] | None) -> frozenset[str] | None:
    """``views=`` option: None / "all" (every image), "frontal", "lateral", or a list of those."""
    if views is None or views == "all":
        return None
    items = [v.strip() for v in views.split(",")] if isinstance(views, str) else list(views)
    out = set()
    for v in items:
        check_choice("views", v, ("frontal", "lateral"))
        out.add(v)
    if not out:
        raise ConfigError("views= is empty; use 'frontal', 'lateral' or 'all'")
    return frozenset(out)


# --- index files ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, str]


def utf8_error(path: Path, exc: UnicodeDecodeError) -> DataError:
    """A DataError naming the first line of ``path`` that is not UTF-8 (text reads decode whole blocks, so the
    exception itself does not know the line)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as line_exc:
                return DataError(f"{path}, line {number}: not UTF-8 text ({line_exc.reason} at byte "
                                 f"{line_exc.start} of the line); save the file as UTF-8")
    return DataError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8")


def read_csv(path: Path, check: Callable[[list[str]], None], keep: Iterable[str] | None = None,
             ) -> tuple[list[str], list[Row]]:
    """Rows of a CSV file with the physical line each starts on (header = line 1); ``check(columns)`` runs on the
    header before any row is read; ``keep`` limits the values stored per row. Blank lines are skipped; a row whose
    field count differs from the header's is an error naming its line."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(1 << 28)  # free-text report columns may be longer than the 128 KiB default
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{path}: empty file; the first line must be the header") from None
            except csv.Error as exc:
                raise DataError(f"{path}, line 1: cannot read the CSV header ({exc})") from exc
            columns = [c.strip() for c in header]
            check(columns)
            kept = None if keep is None else set(keep)
            wanted = [(i, c) for i, c in enumerate(columns) if kept is None or c in kept]
            rows = []
            line = reader.line_num
            while True:
                start = line + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise DataError(f"{path}, line {start}: malformed CSV ({exc})") from exc
                line = reader.line_num
                if not cells or all(not c.strip() for c in cells):
                    continue
                if len(cells) != len(columns):
                    raise DataError(f"{path}, line {start}: {len(cells)} fields, but the header has "
                                    f"{len(columns)} ({', '.join(columns)})")
                rows.append(Row(start, {c: cells[i].strip() for i, c in wanted}))
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from exc
    finally:
        csv.field_size_limit(old_limit)
    return columns, rows


def file_fingerprint(path: str | Path) -> dict:
    """Path, size and SHA-256 of an index file (for provenance: results say exactly which file they used)."""
    p = Path(path)
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(p), "bytes": p.stat().st_size, "sha256": digest.hexdigest()}


# --- paths ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    """Where an index entry's image path leads: ``path`` (absolute, symlinks and ``..`` resolved), whether that
    is an existing file, and whether it lies outside the base folder."""

    path: str
    exists: bool
    outside: bool


@dataclass
class PathResolver:
    """Resolves index paths against ``base`` with one ``lstat`` per file (folders' real paths are cached)."""

    base: Path
    _base_real: str = field(init=False)
    _dirs: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._base_real = os.path.realpath(self.base)

    def locate(self, raw: str | os.PathLike) -> Located:
        full = os.path.normpath(os.path.join(self.base, raw))
        parent, name = os.path.split(full)
        real_parent = self._dirs.get(parent)
        if real_parent is None:
            real_parent = self._dirs[parent] = os.path.realpath(parent)
        real = os.path.join(real_parent, name)
        try:
            st = os.lstat(real)
        except OSError:
            exists = False
        else:
            if stat.S_ISLNK(st.st_mode):
                real = os.path.realpath(real)
                exists = os.path.isfile(real)
            else:
                exists = stat.S_ISREG(st.st_mode)
        outside = not (real == self._base_real or real.startswith(self._base_real.rstrip(os.sep) + os.sep))
        return Located(real, exists, outside)


# --- studies and summaries ------------------------------------------------------------------------------------


def decode_record(record: ImageRecord) -> Image.Image:
    """The image loader of file-based datasets (module level, so a Dataset pickles)."""
    return decode_image(record.source)


def view_counts(studies: Iterable[Study]) -> dict[str, int]:
    out = {"frontal": 0, "lateral": 0, "unknown": 0}
    for s in studies:
        for im in s.images:
            out[im.view or "unknown"] += 1
    return out


def text_available(studies: Iterable[Study]) -> dict[str, int]:
    """How many of ``studies`` have non-empty text under each policy (to compare policies at a glance)."""
    studies = list(studies)
    return {p: sum(1 for s in studies if _report_text(s, p)) for p in TEXT_POLICIES}


def warn_skipped(dataset: str, missing: list[str], stacklevel: int = 3) -> None:
    """One warning for the images left out with on_bad_image='skip' (the summary counts them)."""
    if missing:
        shown = "; ".join(missing[:5]) + (f"; ... ({len(missing) - 5} more)" if len(missing) > 5 else "")
        warnings.warn(f"{dataset}: skipped {len(missing)} missing image file(s) (on_bad_image='skip'): {shown}",
                      stacklevel=stacklevel)


def finish_studies(dataset: str, source: object, built: list[Study], policy: str, missing: list[str],
                   split: str | None, selected: int, dropped_no_images: int) -> tuple[list[Study], int]:
    """The last step the file-backed loaders share: warn once about skipped images, apply the text policy, and
    refuse an empty result with every count that explains it. Returns (kept studies, dropped for empty text)."""
    warn_skipped(dataset, missing, stacklevel=4)
    kept, dropped = apply_policy(built, policy)
    if not kept:
        raise DataError(f"{source}: no {dataset} study left (split {split!r}, policy {policy!r}: {selected} studies "
                        f"selected, {dropped} with empty text, {dropped_no_images} without images)")
    return kept, dropped
