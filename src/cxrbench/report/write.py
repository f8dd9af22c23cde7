"""Write a sweep's results folder: records.jsonl, results.csv, table.md, recall_<corruption>.png, run.json,
ranks.pt, examples.npz. Files are written atomically; nothing half-written is left behind.

A corruption name with parentheses names its plot without them: ``lungs(masks)`` -> ``recall_lungs-masks.png``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from cxrbench.io import write_text_atomic
from cxrbench.report.plots import plot_recall
from cxrbench.report.run_files import write_examples, write_ranks
from cxrbench.report.tables import markdown_tables, write_csv
from cxrbench.results import SweepResult, records


def plot_name(corruption: str) -> str:
    """A corruption name as part of a file name: ``lungs(masks)`` -> ``lungs-masks``."""
    return corruption.replace("(", "-").replace(")", "")


def write_records(recs: Sequence[dict], path: str | Path) -> None:
    """JSON Lines, one record per line, keys sorted (``records.jsonl``)."""
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))


def write_run(result: SweepResult, out_dir: str | Path, run_id: str) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recs = records(result, run_id)
    paths = {}
    paths["records"] = out / "records.jsonl"
    write_records(recs, paths["records"])
    paths["csv"] = out / "results.csv"
    write_csv(recs, paths["csv"])
    paths["table"] = out / "table.md"
    header = (f"# cxrbench run `{run_id}`\n\nDataset {result.dataset['name']}/{result.dataset['split']} "
              f"({result.dataset.get('studies')} studies, {result.dataset.get('images')} images, "
              f"{result.dataset.get('unique_texts')} unique report texts, text policy `{result.dataset['policy']}`); "
              f"device {result.device}; precision {result.config.precision}. Values are Recall@k in %.\n\n")
    skipped = "".join(f"- skipped `{m}`: {why}\n" for m, why in result.skipped.items())
    write_text_atomic(paths["table"], header + (skipped + "\n" if skipped else "") + markdown_tables(recs) + "\n")
    if recs:
        for corr in dict.fromkeys(r["corruption"] for r in recs):
            paths[f"plot_{corr}"] = out / f"recall_{plot_name(corr)}.png"
            plot_recall(recs, paths[f"plot_{corr}"], corruption=corr)
    paths["run"] = out / "run.json"
    run = {
        "run_id": run_id,
        "config": asdict(result.config),
        "dataset": result.dataset,
        "models": result.models,
        "skipped": result.skipped,
        "device": result.device,
        "environment": result.environment,
        "timings_s": result.timings.as_dict(digits=3),
    }
    write_text_atomic(paths["run"], json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    paths["ranks"] = out / "ranks.pt"
    write_ranks(result, paths["ranks"])
    if result.examples and result.examples["entries"]:
        paths["examples"] = out / "examples.npz"
        write_examples(result.examples, paths["examples"])
    return paths
