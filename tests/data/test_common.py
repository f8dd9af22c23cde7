"""Tests for the loaders' shared toolkit (cxrbench.data.common): the StudyCollector (drops counted by reason,
on_bad_image applied the same way, one warning with a count, the summary it finishes), the hashing reader that
fingerprints an index while it is parsed, and the UTF-8 line finder."""

from __future__ import annotations

import gzip
import hashlib
import io
import warnings

import pytest

from cxrbench.data.common import (
    IMAGE_DROPS,
    HashingReader,
    StudyCollector,
    file_fingerprint,
    first_non_utf8_line,
    read_csv,
)
from cxrbench.data.records import TEXT_POLICIES, ImageRecord, Study
from cxrbench.errors import ConfigError, DataError


def _study(sid: str, findings: str = "", impression: str = "", views=("frontal",)) -> Study:
    images = tuple(ImageRecord(f"{sid}-{k}", f"/data/{sid}-{k}.png", v) for k, v in enumerate(views))
    return Study(sid, images, findings, impression)


def _collector(**kw) -> StudyCollector:
    kw.setdefault("on_bad_image", "skip")
    return StudyCollector("toy", "test", kw.pop("policy", "longest"), **kw)


# --- drops and on_bad_image ---------------------------------------------------------------------------------------


def test_drops_are_counted_by_reason_and_all_appear_in_the_summary():
    c = _collector()
    c.add(_study("a", "Heart normal.", views=("frontal", "lateral")))
    c.add(_study("b", impression="Small effusion.", views=("lateral", None)))
    c.drop("images_not_in_views")
    c.drop("images_not_in_views", 2)
    c.drop("dropped_no_images")
    ds = c.finish("toy.csv", selected=3)
    assert [k for k in ds.summary if k in IMAGE_DROPS] == list(IMAGE_DROPS)  # declared order, zero included
    assert ds.summary["images_not_in_views"] == 3 and ds.summary["dropped_no_images"] == 1
    assert ds.summary["skipped_missing_images"] == 0
    assert ds.summary["views"] == {"frontal": 1, "lateral": 2, "unknown": 1}
    assert (ds.summary["studies"], ds.summary["images"]) == (2, 4)


def test_an_undeclared_drop_reason_is_a_programming_error():
    with pytest.raises(KeyError, match="'dropped_typo' was not declared"):
        _collector().drop("dropped_typo")


def test_missing_image_under_error_names_the_file_and_what_to_do():
    c = _collector(on_bad_image="error")
    with pytest.raises(DataError) as exc:
        c.missing_image("/data/x.png", "study 's1', toy.csv line 7", "check root")
    msg = str(exc.value)
    assert msg.startswith("/data/x.png (study 's1', toy.csv line 7): image file not found; check root, ")
    assert "on_bad_image='skip'" in msg and "'skipped_missing_images'" in msg


def test_missing_images_under_skip_give_one_warning_with_the_count_and_a_few_examples():
    c = _collector()
    c.add(_study("a", "Heart normal."))
    for k in range(8):
        c.missing_image(f"/data/missing{k}.png", f"line {k + 2}", "check root")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = c.finish("toy.csv", selected=9)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert text.startswith("toy: skipped 8 missing image file(s) (on_bad_image='skip'): /data/missing0.png (line 2)")
    assert "/data/missing4.png" in text and "/data/missing5.png" not in text and text.endswith("... (3 more)")
    assert "image file not found" not in text  # the examples name the files; the count says what they are
    assert ds.summary["skipped_missing_images"] == 8 and ds.on_bad_image == "skip"


def test_several_skip_reasons_still_give_one_warning():
    c = _collector(drops={**IMAGE_DROPS, "missing_reports": "missing report(s)"})
    c.add(_study("a", "Heart normal."))
    c.missing_image("/data/x.png", "line 2", "check root")
    c.skip_or_raise("missing_reports", "/data/r1.txt: report not found", "check reports=")
    c.skip_or_raise("missing_reports", "/data/r2.txt: report not found", "check reports=")
    with pytest.warns(UserWarning) as caught:
        ds = c.finish("toy.csv", selected=3)
    assert len(caught) == 1
    assert str(caught[0].message) == ("toy: skipped 1 missing image file(s) (on_bad_image='skip'): /data/x.png "
                                      "(line 2). Also skipped 2 missing report(s): /data/r1.txt: report not found; "
                                      "/data/r2.txt: report not found")
    assert (ds.summary["skipped_missing_images"], ds.summary["missing_reports"]) == (1, 2)


def test_no_warning_when_nothing_was_skipped():
    c = _collector()
    c.add(_study("a", "Heart normal."))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c.finish("toy.csv", selected=1)


def test_options_are_checked_when_the_collector_is_made():
    with pytest.raises(ConfigError, match="on_bad_image='warn' is not valid"):
        StudyCollector("toy", "test", "longest", "warn")
    with pytest.raises(ConfigError, match="policy='summary' is not valid"):
        StudyCollector("toy", "test", "summary")


# --- finishing: policy, empty result, summary ------------------------------------------------------------------


def test_finish_applies_the_policy_and_builds_the_summary_in_order():
    c = _collector(policy="impression")
    c.add(_study("a", "Heart normal.", "Normal."))
    c.add(_study("b", "Lungs clear."))  # no impression: dropped by the policy
    c.add(_study("c", "Effusion.", "Normal."))  # same impression text as a
    ds = c.finish("toy.csv", 4, facts={"rows": 9}, details={"extra": 1}, provenance={"root": "/data"})
    assert [s.study_id for s in ds.studies] == ["a", "c"] and ds.texts == ["Normal.", "Normal."]
    assert list(ds.summary) == ["studies", "images", "images_per_study", "split", "rows", "dropped_empty_text",
                                *IMAGE_DROPS, "views", "extra", "text_available", "unique_texts"]
    assert ds.summary["dropped_empty_text"] == 1 and ds.summary["unique_texts"] == 1
    # text_available counts the studies before the policy, under every policy
    assert ds.summary["text_available"] == {"findings": 3, "impression": 2, "findings+impression": 3, "longest": 3}
    assert set(ds.summary["text_available"]) == set(TEXT_POLICIES)
    assert (ds.name, ds.split, ds.policy, ds.provenance) == ("toy", "test", "impression", {"root": "/data"})


def test_an_empty_result_names_the_source_the_filters_and_every_nonzero_count():
    c = _collector(policy="findings", filters={"views": ["lateral"], "unset": None})
    c.add(_study("a", impression="Normal."))
    c.drop("images_not_in_views", 4)
    c.drop("dropped_no_images", 2)
    with pytest.raises(DataError) as exc:
        c.finish("toy.csv", selected=3)
    assert str(exc.value) == ("toy.csv: no toy study left (split 'test', policy 'findings', views ['lateral']: "
                              "3 studies selected, 1 with empty text, 2 studies left without images, "
                              "4 images not in the chosen views)")


# --- index files: fingerprint while parsing, UTF-8 lines ---------------------------------------------------------


def test_hashing_reader_fingerprint_equals_the_file_hash_however_much_was_read(tmp_path):
    path = tmp_path / "index.csv"
    data = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(300_000))  # several read buffers
    path.write_bytes(data)
    expected = {"path": str(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert file_fingerprint(path) == expected
    for amount in (0, 10, len(data) // 2, len(data)):
        with HashingReader(path) as reader:
            assert reader.buffered().read(amount) == data[:amount]
            assert reader.fingerprint() == expected


def test_hashing_reader_under_gzip_hashes_the_compressed_file(tmp_path):
    path = tmp_path / "index.csv.gz"
    path.write_bytes(gzip.compress(b"x,y\n1,2\n" * 1000))
    with HashingReader(path) as reader, gzip.open(reader.buffered(), "rt") as text:
        assert sum(1 for _ in text) == 2000
        fingerprint = reader.fingerprint()
    assert fingerprint["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_csv_returns_the_fingerprint_of_what_it_parsed(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("study_id,image_path\ns1,a.png\n\ns2,b.png\n")
    table = read_csv(path, lambda columns: None)
    assert table.columns == ["study_id", "image_path"]
    assert [(r.line, r.values["study_id"]) for r in table.rows] == [(2, "s1"), (4, "s2")]
    assert table.fingerprint == file_fingerprint(path)


def test_first_non_utf8_line():
    assert first_non_utf8_line(io.BytesIO(b"ok\nfine\n")) is None
    number, exc = first_non_utf8_line(io.BytesIO(b"ok\nCaf\xe9\nfine\n"))
    assert number == 2 and exc.start == 3
