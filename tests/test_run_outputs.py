"""What a run writes for later statistics and the report: the study fields of the records, each query's studies
in ranks.pt, example images, the CSV columns and `cxrbench run --no-report` (tiny in-memory dataset, the
untrained `random` model)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from cxrbench import cli, stats
from cxrbench.config import SweepConfig
from cxrbench.corruptions import Occlusion, image_keys
from cxrbench.metrics import bootstrap_recall, retention
from cxrbench.models import load_model
from cxrbench.report import write_run
from cxrbench.report.run_files import load_ranks, read_examples
from cxrbench.report.tables import CSV_FIELDS
from cxrbench.results import records
from cxrbench.runner import run_sweep

LEVELS = (0.0, 0.3, 0.6)
B = 40
#: the columns of results.csv before the study statistics were added (their order must not change)
OLD_CSV_FIELDS = (
    "run_id", "dataset", "split", "policy", "model", "checkpoint_sha256", "corruption", "level", "seed", "direction",
    "k", "value", "ci95_low", "ci95_high", "chance", "mean_rank", "median_rank", "n_queries", "n_gallery", "precision",
    "device", "code_version", "wall_time_s",
)


@pytest.fixture(scope="module")
def random_encoder():
    return load_model("random")


@pytest.fixture
def run(tiny_dataset, random_encoder, tmp_path):
    cfg = SweepConfig(models=["random"], corruptions=["pixels", "block"], fill="mean", levels=LEVELS, bootstrap=B,
                      seed=5, device="cpu", use_cache=False)
    captured: dict[float, list[torch.Tensor]] = {}
    original = random_encoder.intensity
    calls = []

    def spy(pixels):  # the corrupted batches the sweep hands to the intensity stage, in call order
        calls.append(pixels.detach().clone())
        return original(pixels)

    random_encoder.intensity = spy
    try:
        result = run_sweep(cfg, progress=False, dataset=tiny_dataset, encoders={"random": random_encoder})
    finally:
        del random_encoder.intensity
    # one batch holds every image (7 < the batch size): calls are corruption by corruption, level by level, except
    # the clean level (the same images under every corruption), embedded once, with the first corruption
    first = cfg.corruptions[0]
    order = [(c, lv) for c in cfg.corruptions for lv in LEVELS if c == first or lv != 0]
    assert len(calls) == len(order)
    for (corruption, lv), batch in zip(order, calls):
        captured.setdefault(corruption, {})[lv] = batch
    for corruption in cfg.corruptions[1:]:
        captured[corruption][0.0] = captured[first][0.0]
    out = tmp_path / "run"
    write_run(result, out, "t")
    return result, out, captured


def test_ranks_file_holds_each_querys_studies_and_loads_weights_only(run):
    result, out, _ = run
    raw = torch.load(out / "ranks.pt", weights_only=True)
    assert set(k for k in raw if k.startswith("query_studies|")) == {"query_studies|image_to_text",
                                                                      "query_studies|text_to_image"}
    loaded = load_ranks(out / "ranks.pt")
    i2t, t2i = loaded.query_studies["image_to_text"], loaded.query_studies["text_to_image"]
    # tiny_dataset: 6 studies, s1 has two images, s0 and s2 share a text
    assert i2t.study.tolist() == [0, 1, 1, 2, 3, 4, 5] and i2t.n_studies == 6
    assert [(q, s, w) for q, s, w in zip(t2i.query.tolist(), t2i.study.tolist(), t2i.weight.tolist())] == \
        [(0, 0, .5), (0, 2, .5), (1, 1, 1.0), (2, 3, 1.0), (3, 4, 1.0), (4, 5, 1.0)]
    for (model, corruption, level, direction), ranks in loaded.ranks.items():
        assert ranks == result.get(model, corruption, level).metrics[direction]["ranks"]


def test_retention_and_auc_follow_from_the_recorded_values(run):
    result, _, _ = run
    recs = records(result, "t")
    idx = {(r["corruption"], r["level"], r["direction"], r["k"]): r for r in recs}
    for (corruption, _level, direction, k), r in idx.items():
        clean = idx[(corruption, 0.0, direction, k)]["value"]
        curve = [idx[(corruption, lv, direction, k)]["value"] for lv in LEVELS]
        area = sum((LEVELS[i + 1] - LEVELS[i]) * (curve[i] + curve[i + 1]) / 2 for i in range(2)) / LEVELS[-1]
        assert r["auc"] == pytest.approx(area, abs=1e-12) and r["auc_range"] == [0.0, 0.6]
        if clean > 0:
            assert r["retention"] == pytest.approx(retention(r["value"], clean), abs=1e-12)
            assert r["auc_retention"] == pytest.approx(area / clean, abs=1e-12)
        else:
            assert r["retention"] is None and r["auc_retention"] is None
        assert r["n_studies"] == 6
        lo, hi = r["ci95_study"]
        assert lo <= r["value"] <= hi or np.isclose(r["value"], lo) or np.isclose(r["value"], hi)


def test_ci95_keeps_its_query_level_meaning_and_ci95_study_resamples_studies(run):
    result, out, _ = run
    loaded = load_ranks(out / "ranks.pt")
    counts = stats.StudyResamples(6, B, seed=5).counts()
    image_study = [0, 1, 1, 2, 3, 4, 5]
    for r in records(result, "t"):
        ranks = loaded.ranks[("random", r["corruption"], r["level"], r["direction"])]
        assert r["ci95"] == pytest.approx(list(bootstrap_recall(ranks, [r["k"]], n_boot=B, seed=5)[r["k"]]))
        if r["direction"] != "image_to_text":
            continue
        # brute force: each resample's Recall@k is the mean over the images of the studies it draws
        hit = ranks.hit_probability(r["k"]).tolist()
        means = []
        for c in counts:
            drawn = [hit[i] for i, s in enumerate(image_study) for _ in range(c[s])]
            means.append(sum(drawn) / len(drawn))
        assert r["ci95_study"] == pytest.approx(list(np.quantile(means, [0.025, 0.975])), abs=1e-12)


def test_examples_are_the_images_the_sweep_embeds(run, tiny_dataset):
    result, out, captured = run
    ex = read_examples(out / "examples.npz")
    assert ex["image_ids"] == ["s1_im0", "s1_im1"]  # the first study with two images
    assert list(ex["geometries"].values()) == [["random"]]
    seen = set()
    for e in ex["entries"]:
        sweep = captured[e["corruption"]][e["level"]][1:3]  # images 1 and 2 of the batch
        assert e["pixels"].dtype == np.uint8 and e["pixels"].shape == tuple(sweep.shape)
        assert np.array_equal(e["pixels"], sweep.round().clamp(0, 255).to(torch.uint8).numpy())
        seen.add((e["corruption"], e["level"]))
    assert seen == {(c, lv) for c in ("pixels", "block") for lv in LEVELS}
    # and independently of the sweep: the corruption applied to the decoded, resized images
    enc = load_model("random")
    pixels = torch.stack([enc.geometry(tiny_dataset.load_image(tiny_dataset.images[i])) for i in (1, 2)])
    keys = image_keys(["s1_im0", "s1_im1"], 5)
    occ = Occlusion(mode="block", fill="mean")
    want = occ.apply(pixels, keys, 0.6).round().clamp(0, 255).to(torch.uint8).numpy()
    got = next(e["pixels"] for e in ex["entries"] if (e["corruption"], e["level"]) == ("block", 0.6))
    assert np.array_equal(got, want) and not np.array_equal(got, pixels.numpy())


def test_csv_keeps_the_old_columns_first_and_adds_the_study_columns(run):
    _, out, _ = run
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert tuple(header[: len(OLD_CSV_FIELDS)]) == OLD_CSV_FIELDS and tuple(header) == CSV_FIELDS
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    for row, r in zip(rows, recs):
        assert float(row["ci95_study_low"]) == pytest.approx(r["ci95_study"][0])
        assert float(row["ci95_low"]) == pytest.approx(r["ci95"][0])
        if r["retention_ci95"]:
            assert float(row["retention_ci95_high"]) == pytest.approx(r["retention_ci95"][1])


def test_cli_run_writes_the_report_unless_told_not_to(tmp_path):
    common = ["run", "--dataset", "iu-phantom", "--max-studies", "4", "--models", "random", "--levels", "0,0.5",
              "--bootstrap", "10", "--device", "cpu", "--no-cache", "--no-progress", "--run-name", "x"]
    assert cli.main([*common, "--out", str(tmp_path / "a")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "b"), "--no-report"]) == 0
    assert (tmp_path / "a" / "report.html").is_file() and not (tmp_path / "b" / "report.html").exists()
    # the option changes nothing else
    assert (tmp_path / "a" / "table.md").read_text() == (tmp_path / "b" / "table.md").read_text()
    a, b = ([{k: v for k, v in json.loads(x).items() if k not in ("wall_time_s", "from_cache")}
             for x in (tmp_path / d / "records.jsonl").read_text().splitlines()] for d in "ab")
    assert a == b
