"""Rewrite README.md's "Results on the embedded default" block (between ``<!-- results:begin -->`` and
``<!-- results:end -->``) from the committed run folder, so that no number in it is typed by hand.

Usage, after ``cxrbench run --no-cache --out docs/results/default --run-name default --overwrite``:

    python scripts/readme_results.py docs/results/default [README.md]

The tables are the run's ``table.md``; the wall time comes from ``run.json``; the numbers of the "Reading it"
paragraph (R@10, image_to_text, clean and at 49% occlusion) from ``records.jsonl``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def r10(records: list[dict], model: str, level: float) -> dict:
    found = [r for r in records if r["model"] == model and r["corruption"] == "pixels" and r["k"] == 10
             and r["direction"] == "image_to_text" and abs(r["level"] - level) < 1e-9]
    assert len(found) == 1, (model, level, len(found))
    return found[0]


def block(run_dir: Path) -> str:
    run = json.loads((run_dir / "run.json").read_text())
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]
    table = (run_dir / "table.md").read_text().strip().splitlines()
    assert table[0].startswith("# "), "table.md starts with its title line"
    body = "\n".join(table[1:]).strip()
    rel = run_dir.as_posix()
    wall = run["timings_s"]["total_s"]
    ref0, ref49 = r10(records, "reference", 0.0), r10(records, "reference", 0.49)
    occ0, occ49 = r10(records, "reference_occaug", 0.0), r10(records, "reference_occaug", 0.49)

    def p(x: float) -> str:
        return f"{100 * x:.1f}%"

    reading = (
        f"Reading it: the `reference` model finds the right report in its top 10 for {p(ref0['value'])} of the "
        f"images on clean images, about {ref0['value'] / ref0['chance']:.0f} times the chance rate of "
        f"{p(ref0['chance'])}. Its recall falls to chance as soon as 9% of the pixels are blocked, because it never "
        "saw occluded pixels in training. `reference_occaug` was trained with occlusion augmentation. It gives up "
        f"some clean recall ({p(occ0['value'])}) but keeps {occ49['value'] / occ0['value']:.0%} of it at 49% "
        f"occlusion ({p(occ49['value'])}), where `reference` keeps {ref49['value'] / ref0['value']:.0%} "
        f"({p(ref49['value'])}). That is the robustness gain the paper's first open question asks about, measured "
        "here. The `random` row is the chance floor.")
    produced = (
        f"Produced by the main job above with `--no-cache`, written with `--out {rel} --run-name {run_dir.name}` "
        f"(the files in `{rel}/`; total wall time {wall:.0f} s on 2 CPU cores, phantoms already rendered). Values "
        "are Recall@k in %; 95% bootstrap intervals over queries and over studies are in `results.csv`.")
    return "\n".join([BEGIN, *wrap(produced), "", body, "", f"![Recall@k against pixel occlusion]({rel}/recall_pixels.png)",
                      "", *wrap(reading), END])


def wrap(text: str, width: int = 117) -> list[str]:
    """Greedy word wrap (the README's paragraphs are wrapped near 117 characters)."""
    lines, line = [], ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    return [*lines, line]


def main(run_dir: str, readme: str = "README.md") -> None:
    path = Path(readme)
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    assert len(pattern.findall(text)) == 1, f"{readme}: expected one results block"
    new_block = block(Path(run_dir))
    path.write_text(pattern.sub(lambda _: new_block, text))


if __name__ == "__main__":
    main(*sys.argv[1:])
