"""The toolkit the dataset loaders share: option checks, index files (CSV reading with line numbers, hashing
while parsing, the first non-UTF-8 line), path resolution inside a dataset folder, the image decoder of
file-based datasets, and :class:`StudyCollector`, which gathers a loader's studies and drops, applies
``on_bad_image`` and finishes the Dataset's summary.

A loader's ``load()`` makes a collector (which checks ``policy`` and ``on_bad_image``), reads its index, loops
over the studies calling ``add`` / ``drop`` / ``missing_image``, and returns ``collector.finish(...)``.
Loaders import from here and from :mod:`cxrbench.data.records`, never from one another.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cxrbench.data.images import DraftSize, decode_image
from cxrbench.data.records import TEXT_POLICIES, Dataset, ImageRecord, Study, apply_policy, count_summary
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


class HashingReader(io.RawIOBase):
    """A binary file that hashes its bytes as they are read, so that an index file parsed to its end needs no
    second read for its fingerprint: :meth:`fingerprint` reads whatever is left, then gives what
    :func:`file_fingerprint` gives."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._sha = hashlib.sha256()
        self._bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n:
            self._sha.update(memoryview(buffer)[:n])
            self._bytes += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()

    def buffered(self) -> io.BufferedReader:
        """This file behind a read buffer (to hand to a text or gzip reader)."""
        return io.BufferedReader(self, buffer_size=1 << 20)

    def fingerprint(self) -> dict:
        """Path, size and SHA-256 of the whole file (the part not read yet is read now, reopening the file if a
        reader on top has closed it)."""
        with open(self.path, "rb") if self._file.closed else contextlib.nullcontext(self._file) as rest:
            rest.seek(self._bytes)
            while chunk := rest.read(1 << 20):
                self._sha.update(chunk)
                self._bytes += len(chunk)
        return {"path": str(self.path), "bytes": self._bytes, "sha256": self._sha.hexdigest()}


def file_fingerprint(path: str | Path) -> dict:
    """Path, size and SHA-256 of an index file (for provenance: results say exactly which file they used)."""
    with HashingReader(path) as reader:
        return reader.fingerprint()


def first_non_utf8_line(lines: Iterable[bytes]) -> tuple[int, UnicodeDecodeError] | None:
    """The number (from 1) of the first line that is not UTF-8, with its decoding error; None if all are. Text
    readers decode whole blocks, so their exception does not know the line; this finds it."""
    for number, raw in enumerate(lines, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return number, exc
    return None


def utf8_error(path: Path, exc: UnicodeDecodeError) -> DataError:
    """A DataError naming the first line of ``path`` that is not UTF-8 (``exc``: the text reader's error)."""
    with open(path, "rb") as fh:
        found = first_non_utf8_line(fh)
    if found is None:
        return DataError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8")
    number, line_exc = found
    return DataError(f"{path}, line {number}: not UTF-8 text ({line_exc.reason} at byte {line_exc.start} of the "
                     "line); save the file as UTF-8")


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, str]


@dataclass(frozen=True)
class Table:
    """An index file read by :func:`read_csv`: its columns, its non-blank rows, and its fingerprint."""

    columns: list[str]
    rows: list[Row]
    fingerprint: dict


def read_csv(path: Path, check: Callable[[list[str]], None], keep: Iterable[str] | None = None) -> Table:
    """Rows of a CSV file with the physical line each starts on (header = line 1); ``check(columns)`` runs on the
    header before any row is read; ``keep`` limits the values stored per row. Blank lines are skipped; a row whose
    field count differs from the header's is an error naming its line. The file is hashed as it is read."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(1 << 28)  # free-text report columns may be longer than the 128 KiB default
    try:
        with HashingReader(path) as hashing, io.TextIOWrapper(hashing.buffered(), encoding="utf-8-sig",
                                                              newline="") as fh:
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
            fingerprint = hashing.fingerprint()
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from exc
    finally:
        csv.field_size_limit(old_limit)
    return Table(columns, rows, fingerprint)


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
    real_base: str = field(init=False)
    _dirs: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.real_base = os.path.realpath(self.base)

    def locate(self, raw: str | os.PathLike) -> Located:
        if "\x00" in os.fspath(raw):  # cannot name a file: reported as a missing image, the NUL shown as \x00
            shown = os.path.normpath(os.path.join(self.base, raw)).replace("\x00", "\\x00")
            return Located(shown, False, False)
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
        outside = not (real == self.real_base or real.startswith(self.real_base.rstrip(os.sep) + os.sep))
        return Located(real, exists, outside)


# --- studies and summaries ------------------------------------------------------------------------------------


def decode_record(record: ImageRecord, draft: DraftSize | None = None) -> Image.Image:
    """The image loader of file-based datasets (module level, so a Dataset pickles); ``draft``: see
    :func:`cxrbench.data.images.decode_image` (``--decode fast``)."""
    return decode_image(record.source, draft=draft)


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


def progress_bar(items: Iterable, desc: str, unit: str, enabled: bool) -> Iterable:
    """``items`` with a tqdm progress bar while ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=not enabled)


# --- the collector ----------------------------------------------------------------------------------------------

#: The drops of a loader that checks image files: summary key -> what it counts, in words (for messages).
IMAGE_DROPS = {
    "dropped_no_images": "studies left without images",
    "skipped_missing_images": "missing image file(s)",
    "images_not_in_views": "images not in the chosen views",
}
EXAMPLES = 5  # how many skipped inputs the on_bad_image='skip' warning names


class StudyCollector:
    """What a loader gathers while it loops over its index: the studies it keeps, and every drop counted by
    reason, with ``on_bad_image`` applied the same way for every dataset; :meth:`finish` applies the report-text
    policy and returns the :class:`Dataset` with its summary.

    ``drops`` maps each summary key the loader counts to what it counts, in words (used in the messages); each
    key appears in the summary, zero or not, in that order. ``filters`` (option name -> value, None when unset)
    are named in the error for an empty result. The constructor checks ``policy`` and ``on_bad_image``, so a
    loader that makes its collector first refuses a bad option before reading anything.
    """

    def __init__(self, dataset: str, split: str, policy: str, on_bad_image: str = "error",
                 drops: dict[str, str] | None = None, filters: dict[str, object] | None = None):
        check_policy(policy)
        check_choice("on_bad_image", on_bad_image, ON_BAD_IMAGE)
        self.dataset = dataset
        self.split = split
        self.policy = policy
        self.on_bad_image = on_bad_image
        self.filters = {k: v for k, v in (filters or {}).items() if v is not None}
        self._words = dict(IMAGE_DROPS if drops is None else drops)
        self.drops: dict[str, int] = dict.fromkeys(self._words, 0)
        self.studies: list[Study] = []
        self._skipped: dict[str, list[str]] = {}  # reason -> the first EXAMPLES inputs skipped for it

    def add(self, study: Study) -> None:
        self.studies.append(study)

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` items left out for ``reason`` (a key of ``drops``)."""
        if reason not in self.drops:
            raise KeyError(f"{self.dataset}: drop reason {reason!r} was not declared; declared: {list(self.drops)}")
        self.drops[reason] += n

    def skip_or_raise(self, reason: str, message: str, fix: str, example: str | None = None) -> None:
        """A bad input the loader can do without (a missing image file, an unreadable report). Under
        ``on_bad_image="error"``: a DataError ``"<message>; <fix>, or pass on_bad_image='skip' ..."``. Under
        ``"skip"``: counted under ``reason``; :meth:`finish` names the count and the first few ``example``
        (default: ``message``) in one warning."""
        if self.on_bad_image == "error":
            raise DataError(f"{message}; {fix}, or pass on_bad_image='skip' to leave it out (counted in the "
                            f"summary as {reason!r})")
        self.drop(reason)
        shown = self._skipped.setdefault(reason, [])
        if len(shown) < EXAMPLES:
            shown.append(example or message)

    def missing_image(self, file: str | os.PathLike, context: str, fix: str) -> None:
        """The image ``file`` does not exist; ``context`` says where the index lists it (study, file, line),
        ``fix`` what to check. Counted as ``skipped_missing_images`` under ``on_bad_image="skip"``."""
        self.skip_or_raise("skipped_missing_images", f"{file} ({context}): image file not found", fix,
                           example=f"{file} ({context})")

    def warn_skipped(self, stacklevel: int = 2) -> None:
        """One warning naming how many inputs ``on_bad_image="skip"`` left out, by reason, with examples."""
        parts = []
        for reason, shown in self._skipped.items():
            n = self.drops[reason]
            more = f"; ... ({n - len(shown)} more)" if n > len(shown) else ""
            parts.append((f"{n} {self._words[reason]}", "; ".join(shown) + more))
        if parts:
            first, *rest = parts
            text = f"{self.dataset}: skipped {first[0]} (on_bad_image='skip'): {first[1]}"
            text += "".join(f". Also skipped {what}: {shown}" for what, shown in rest)
            warnings.warn(text, stacklevel=stacklevel + 1)

    def finish(self, source: object, selected: int, *, facts: dict | None = None, details: dict | None = None,
               provenance: dict | None = None, image_loader: Callable | None = decode_record) -> Dataset:
        """Warn once about what ``on_bad_image="skip"`` left out, apply the report-text policy, refuse an empty
        result (naming ``source``, the ``selected`` studies and every nonzero drop), and return the Dataset.

        Summary, in this order: the study/image counts, ``split``, ``facts`` (about the index: rows read,
        studies in the split...), ``dropped_empty_text``, the drops, ``views`` (kept images per view), ``details``
        (anything else the loader reports), ``text_available`` (studies with text under each policy, before the
        policy) and ``unique_texts``.
        """
        self.warn_skipped(stacklevel=3)
        kept, dropped = apply_policy(self.studies, self.policy)
        if not kept:
            filters = "".join(f", {k} {v!r}" for k, v in self.filters.items())
            counts = "".join(f", {n} {self._words[k]}" for k, n in self.drops.items() if n)
            raise DataError(f"{source}: no {self.dataset} study left (split {self.split!r}, policy {self.policy!r}"
                            f"{filters}: {selected} studies selected, {dropped} with empty text{counts})")
        summary = {
            **count_summary(kept),
            "split": self.split,
            **(facts or {}),
            "dropped_empty_text": dropped,
            **self.drops,
            "views": view_counts(kept),
            **(details or {}),
            "text_available": text_available(self.studies),
            "unique_texts": len({_report_text(s, self.policy) for s in kept}),
        }
        return Dataset(name=self.dataset, split=self.split, policy=self.policy, studies=kept, summary=summary,
                       image_loader=image_loader, provenance=provenance or {}, on_bad_image=self.on_bad_image)
