"""The report and compare are generic over corruption families: a severity family (levels 0..5) gets severity
labels, its own example grid and its statistics over severities, beside an occlusion mode.

The run here is assembled from a real tiny run of pixel occlusion, so the expected labels and differences are known
exactly: its scored levels are relabelled as motion_blur severities 0, 3, 5 (the statistics recomputed over those
levels) and the example images are made with the motion_blur corruption itself. (tests/test_sweep_families.py runs
the severity families through the sweep for real.)
"""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser

import pytest
import torch

from cxrbench import stats
from cxrbench.config import SweepConfig
from cxrbench.corruptions import get, image_keys
from cxrbench.examples import corrupt_examples
from cxrbench.models import load_model
from cxrbench.report import write_run
from cxrbench.report.compare import compare_run
from cxrbench.report.html import write_report
from cxrbench.results import records
from cxrbench.runner import run_sweep

SEVERITIES = {0.0: 0, 0.3: 3, 0.6: 5}


@pytest.fixture(scope="module")
def random_encoder():
    return load_model("random")


def test_report_and_compare_label_and_integrate_severity_levels(tiny_dataset, random_encoder, tmp_path):
    cfg = SweepConfig(models=["random"], levels=tuple(SEVERITIES), bootstrap=30, device="cpu", use_cache=False)
    result = run_sweep(cfg, progress=False, dataset=tiny_dataset, encoders={"random": random_encoder})
    blur = get("motion_blur")
    blurred = []
    for lr in [lr for lr in result.levels if lr.corruption == "pixels"]:
        for model in ("random", "random_b"):  # two "models" with identical scores: their difference is 0
            blurred.append(replace(lr, model=model, corruption="motion_blur", corruption_params=blur.params(),
                                   level=SEVERITIES[lr.level], metrics={d: dict(m) for d, m in lr.metrics.items()}))
    resamples = stats.StudyResamples(6, 30, seed=0)
    for model in ("random", "random_b"):
        mine = {lr.level: lr.metrics for lr in blurred if lr.model == model}
        fields = stats.level_fields({lv: {d: m["ranks"] for d, m in ms.items()} for lv, ms in mine.items()},
                                    result.query_studies, cfg.ks, resamples)
        for lv, ms in mine.items():
            for d in ms:
                ms[d].update(fields[lv][d])
    result.levels += blurred
    result.models["random_b"] = result.models["random"]
    pixels = result.examples["entries"][0]["pixels"]
    arrays = corrupt_examples(blur, torch.from_numpy(pixels), image_keys(result.examples["image_ids"], 0),
                              [0, 3, 5])
    result.examples["entries"] += [{"geometry": result.examples["entries"][0]["geometry"], "corruption":
                                    "motion_blur", "params": blur.params(), "level": lv, "pixels": a}
                                   for lv, a in arrays.items()]
    assert (arrays[5] != arrays[0]).any() and (arrays[0] == pixels).all()
    out = tmp_path / "run"
    write_run(result, out, "families")
    rows = compare_run(out, models=["random_b", "random"], ks=(5,))["rows"]
    blur_rows = [r for r in rows if r["corruption"] == "motion_blur"]
    assert {r["level_label"] for r in blur_rows if r["level"] is not None} == {"clean", "severity 3", "severity 5"}
    assert all(r["diff"] == 0 and r["diff_ci"] == [0, 0] for r in blur_rows if r["diff"] is not None)
    recs = [r for r in records(result) if r["corruption"] == "motion_blur"]
    assert {tuple(r["auc_range"]) for r in recs} == {(0, 5)}
    page = write_report(out, ks=(5, 10)).read_text()

    class Sections(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found: dict[str, list[str]] = {}
            self.current = None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "section":
                self.current = attrs["data-corruption"]
            elif self.current and tag in ("figure", "table"):
                self.found.setdefault(self.current, []).append(attrs.get("class"))

    parser = Sections()
    parser.feed(page)
    assert set(parser.found) == {"pixels", "motion_blur"}
    assert {"examples", "curves", "recall", "retention", "compare"} <= set(parser.found["motion_blur"])
    assert {"examples", "curves", "recall", "retention"} <= set(parser.found["pixels"])
    assert "compare" not in parser.found["pixels"]  # only `random` ran pixels here: nothing to pair
    assert "severity 3" in page and "motion_blur: severity" not in page  # axis labels are inside the PNGs
    assert "family motion_blur; levels: severity 0..5" in page
