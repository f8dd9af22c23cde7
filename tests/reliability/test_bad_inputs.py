"""Every bad input ends in one clear line, before any long compute, and leaves no output (issue 10, "Clear errors,
before compute"): a table of cases across command-line options, configuration files, thresholds files, records,
manifests, images and checkpoints. Each case asserts the exit code (2 usage and configuration, 1 data, model and
output), exactly one ``error:`` line that names the problem, no traceback, and no results folder (nor a staging
folder or lock) left behind. All run in this process through ``cxrbench.cli.main``.
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.models.reference import read_metadata, weights_path

from reliability_harness import QUICK, leftovers, run_cli, write_manifest


@dataclass
class World:
    """Where a case runs: its folder, the quick dataset's manifest, the results folder it must not leave."""

    tmp: Path
    manifest: Path
    out: Path
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # after `run <base>`, or the whole command when `base` is False; {name} = world values
    rc: int
    match: str  # a regular expression the one error line must match
    setup: Callable[[World], None] | None = None
    base: bool = True


def run_base(world: World) -> list[str]:
    return ["run", "--dataset", "manifest", "--root", str(world.manifest), *QUICK, "--out", str(world.out)]


# -- setups --------------------------------------------------------------------------------------------------------
def put(name: str, text: str | bytes) -> Callable[[World], None]:
    """A file ``{name}`` with this content."""
    def setup(world: World) -> None:
        path = world.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        world.values[name.replace(".", "_").replace("/", "_")] = str(path)
    return setup


def thresholds_file(body: str) -> Callable[[World], None]:
    return put("th.yaml", body)


def manifest_with(rows: list[str], header: str = "study_id,image_path,findings",
                  name: str = "manifest.csv") -> Callable[[World], None]:
    def setup(world: World) -> None:
        folder = world.tmp / "ds"
        write_manifest(folder, n=4)
        (folder / name).write_text(header + "\n" + "".join(r + "\n" for r in rows))
        world.values["bad_manifest"] = str(folder / name)
    return setup


def manifest_bytes(raw: bytes, name: str = "manifest.csv") -> Callable[[World], None]:
    def setup(world: World) -> None:
        folder = world.tmp / "ds"
        write_manifest(folder, n=4)
        (folder / name).write_bytes(raw)
        world.values["bad_manifest"] = str(folder / name)
    return setup


def bad_image(make: Callable[[Path], None]) -> Callable[[World], None]:
    """A 4-study manifest whose third image is replaced by ``make(path)``."""
    def setup(world: World) -> None:
        folder = world.tmp / "ds"
        write_manifest(folder, n=4)
        make(folder / "im2.png")
        world.values["bad_manifest"] = str(folder / "manifest.csv")
    return setup


def truncated_png(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def huge_1bit(side: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        Image.new("1", (side, side)).save(path, format="PNG")
    return make


def sliver(path: Path) -> None:
    Image.fromarray(np.full((1, 40000), 128, dtype=np.uint8), mode="L").save(path)


def reference_checkpoint(change: Callable[[dict], dict] | None = None, raw: bytes | None = None,
                         suffix: str = ".safetensors") -> Callable[[World], None]:
    def setup(world: World) -> None:
        from safetensors.torch import load_file, save_file

        path = world.tmp / f"ref{suffix}"
        if raw is not None:
            path.write_bytes(raw)
        else:
            src = weights_path("reference")
            save_file(change(load_file(str(src))), str(path), metadata=read_metadata(src))
        world.values["ckpt"] = str(path)
    return setup


def half_of_reference(world: World) -> None:
    raw = weights_path("reference").read_bytes()
    (world.tmp / "ref.safetensors").write_bytes(raw[: len(raw) // 2])
    world.values["ckpt"] = str(world.tmp / "ref.safetensors")


def with_key(state: dict, key: str, fn) -> dict:
    return {**state, key: fn(state[key])}


class Payload:
    """A pickle that would create a file if it were ever unpickled with code execution."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def malicious_pickle(world: World) -> None:
    marker = world.tmp / "pwned"
    path = world.tmp / "ref.pt"
    with open(path, "wb") as fh:
        pickle.dump({"image.proj.weight": Payload(str(marker))}, fh)
    world.values["ckpt"] = str(path)
    world.values["marker"] = str(marker)


def truncated_pt(world: World) -> None:
    path = world.tmp / "ref.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    world.values["ckpt"] = str(path)


def existing_results(world: World) -> None:
    world.out.mkdir(parents=True)
    (world.out / "records.jsonl").write_text("{}\n")


def out_is_file(world: World) -> None:
    world.out.parent.mkdir(parents=True, exist_ok=True)
    world.out.write_text("a file\n")


def records_folder(lines: list[str] | bytes) -> Callable[[World], None]:
    def setup(world: World) -> None:
        folder = world.tmp / "prior"
        folder.mkdir()
        data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode()
        (folder / "records.jsonl").write_bytes(data)
        world.values["prior"] = str(folder)
    return setup


GOOD_RECORD = json.dumps({"dataset": "manifest", "split": "all", "model": "random", "corruption": "pixels",
                          "level": 0.0, "direction": "image_to_text", "k": 5, "value": 0.4})
VALID_TH = ("thresholds:\n  manifest/all:\n    random:\n      pixels:\n        '0':\n"
            "          image_to_text: {5: 0.1}\n")


def th(leaf: str, level: str = "'0'", direction: str = "image_to_text") -> str:
    return (f"thresholds:\n  iu-phantom/test:\n    reference:\n      pixels:\n        {level}:\n"
            f"          {direction}: {leaf}\n")


CHECK = ("--check-thresholds", "--thresholds", "{th_yaml}")
REF = ("--models", "reference", "--checkpoint", "reference={ckpt}")

CASES: list[Case] = [
    # -- command-line options --------------------------------------------------------------------------------------
    Case("bootstrap-negative", ("--bootstrap=-1",), 2, r"bootstrap resamples must be an integer >= 0"),
    Case("bootstrap-not-a-number", ("--bootstrap", "x"), 2, r"--bootstrap: invalid int value: 'x'"),
    Case("batch-size-zero", ("--batch-size", "0"), 2, r"batch size must be an integer >= 1"),
    Case("max-studies-zero", ("--max-studies", "0"), 2, r"max studies must be an integer >= 1"),
    Case("max-studies-fraction", ("--max-studies", "1.5"), 2, r"--max-studies: invalid int value"),
    Case("seed-not-a-number", ("--seed", "x"), 2, r"--seed: invalid int value"),
    Case("models-empty", ("--models", ""), 2, r"--models '' names no model"),
    Case("models-only-commas", ("--models", ",,"), 2, r"names no model"),
    Case("models-unknown", ("--models", "nope"), 2, r"unknown model 'nope'"),
    Case("corruption-empty", ("--corruption", ""), 2, r"--corruption '' names no corruption"),
    Case("corruption-unknown", ("--corruption", "fog"), 2, r"unknown corruption 'fog'"),
    Case("level-one", ("--levels", "0,1"), 2, r"occlusion level '1' is outside \[0, 1\)"),
    Case("level-negative", ("--levels=-0.1",), 2, r"level '-0.1' is outside"),
    Case("level-word", ("--levels", "0,half"), 2, r"level 'half' is not a number"),
    Case("level-empty", ("--levels", ""), 2, r"no occlusion levels"),
    Case("level-nan", ("--levels", "nan"), 2, r"level 'nan' is outside"),
    Case("device-tpu", ("--device", "tpu"), 2, r"unknown device 'tpu'"),
    Case("device-meta", ("--device", "meta"), 2, r"device 'meta' cannot be used"),
    Case("device-cuda-99", ("--device", "cuda:99"), 2, r"'cuda:99'"),
    Case("device-nonsense", ("--device", "gpu please"), 2, r"unknown device 'gpu please'"),
    Case("precision-unknown", ("--precision", "fp8"), 2, r"--precision: invalid choice: 'fp8'"),
    Case("fill-unknown", ("--fill", "purple"), 2, r"--fill: invalid choice: 'purple'"),
    Case("on-bad-image-unknown", ("--on-bad-image", "maybe"), 2, r"--on-bad-image: invalid choice"),
    Case("checkpoint-for-unselected-model", ("--checkpoint", "reference=/w.safetensors"), 2,
         r"--checkpoint names reference, which is not among the selected models \(random\)"),
    Case("checkpoint-without-model", ("--checkpoint", "/bare/path.pt"), 2, r"--checkpoint expects MODEL=PATH"),
    Case("checkpoint-unknown-model", ("--checkpoint", "nope=/x.pt"), 2, r"unknown model 'nope'"),
    Case("run-name-parent", ("--run-name", "../escape"), 2, r"--run-name '\.\./escape' must be a plain folder name"),
    Case("run-name-path", ("--run-name", "a/b"), 2, r"--run-name 'a/b' must be a plain folder name"),
    Case("run-name-dot", ("--run-name", "."), 2, r"--run-name '\.' must be a plain folder name"),
    Case("patch-size-zero", ("--corruption", "patches", "--patch-size", "0"), 2,
         r"patch_size must be a positive integer, got 0"),
    Case("patch-size-mislabels-levels", ("--corruption", "patches", "--patch-size", "1000", "--levels", "0,0.25,0.5"),
         2, r"patch size 1000.*level 0\.25 blocks 0\.0%, 0\.5 blocks 100\.0%.*patch sizes that keep every level"),
    Case("data-option-without-value", ("--data-option", "novalue"), 2, r"--data-option expects KEY=VALUE"),
    Case("data-option-unknown", ("--data-option", "bogus=1"), 2, r"dataset 'manifest': unknown option\(s\) 'bogus'"),
    Case("dataset-unknown", ("--dataset", "nope"), 2, r"unknown dataset 'nope'"),
    Case("policy-unknown", ("--policy", "abstract"), 2, r"policy='abstract' is not valid"),
    Case("unknown-flag", ("--frobnicate",), 2, r"unrecognized arguments: --frobnicate"),
    Case("root-with-nul", ("--root", "data\x00set"), 2, r"--root 'data\\x00set' contains a NUL byte"),
    Case("no-command", (), 2, r"the following arguments are required: command", base=False),
    Case("unknown-command", ("serve",), 2, r"invalid choice: 'serve'", base=False),
    # -- the results folder ----------------------------------------------------------------------------------------
    Case("out-holds-results", (), 2, r"already holds 1 file\(s\) of an earlier run; pass --overwrite",
         setup=existing_results),
    Case("out-is-a-file", (), 2, r"exists and is not a folder", setup=out_is_file),
    Case("out-under-a-file", ("--out", "{blocker}/run"), 2, r"cannot create .*blocker", setup=put("blocker", "x")),
    Case("out-with-nul", ("--out", "res\x00ults"), 2, r"contains a NUL byte"),
    # -- models configuration --------------------------------------------------------------------------------------
    Case("models-config-missing", ("--models-config", "/nonexistent/models.yaml"), 2, r"/nonexistent/models\.yaml"),
    Case("models-config-not-yaml", ("--models-config", "{models_yaml}"), 2, r"models\.yaml is not valid YAML",
         setup=put("models.yaml", "random: [unclosed\n")),
    Case("models-config-list", ("--models-config", "{models_yaml}"), 2, r"must map model names to settings",
         setup=put("models.yaml", "- random\n")),
    Case("models-config-unknown-family", ("--models-config", "{models_yaml}", "--models", "mine"), 2,
         r"model 'mine' has family 'tensorflow'", setup=put("models.yaml", "mine: {family: tensorflow}\n")),
    Case("models-config-unknown-setting", ("--models-config", "{models_yaml}", "--models", "reference"), 2,
         r"model 'reference' takes the settings", setup=put("models.yaml", "reference: {weights: /x}\n")),
    # -- thresholds files (checked before the sweep) ---------------------------------------------------------------
    Case("thresholds-missing", ("--check-thresholds", "--thresholds", "/nonexistent/th.yaml"), 2,
         r"thresholds file /nonexistent/th\.yaml does not exist"),
    Case("thresholds-folder", ("--check-thresholds", "--thresholds", "{d}"), 2, r"is not a file",
         setup=lambda w: (w.tmp.joinpath("d").mkdir(), w.values.update(d=str(w.tmp / "d")))),
    Case("thresholds-without-key", CHECK, 2, r"th\.yaml, line 1: no 'thresholds' key, so this file gates nothing",
         setup=thresholds_file("version: 1\nlevels: {}\n")),
    Case("thresholds-negative", CHECK, 2, r"th\.yaml, line 6: threshold .*image_to_text\.5 = -0\.1 is outside \[0, 1\]",
         setup=thresholds_file(th("{5: -0.1}"))),
    Case("thresholds-above-one", CHECK, 2, r"line 6: threshold .*\.5 = 1\.5 is outside \[0, 1\]",
         setup=thresholds_file(th("{5: 1.5}"))),
    Case("thresholds-string", CHECK, 2, r"line 6: threshold .*\.5 is the value 'high', not a number",
         setup=thresholds_file(th("{5: high}"))),
    Case("thresholds-boolean", CHECK, 2, r"line 6: threshold .*\.5 is the value 'true', not a number",
         setup=thresholds_file(th("{5: true}"))),
    Case("thresholds-unknown-direction", CHECK, 2, r"line 6: .*unknown direction 'image_to_image'",
         setup=thresholds_file(th("{5: 0.1}", direction="image_to_image"))),
    Case("thresholds-k-zero", CHECK, 2, r"line 6: .*k 0 is not a whole number >= 1",
         setup=thresholds_file(th("{0: 0.1}"))),
    Case("thresholds-level-word", CHECK, 2, r"line 5: .*level 'clean' is not a number",
         setup=thresholds_file(th("{5: 0.1}", level="clean"))),
    Case("thresholds-not-yaml", CHECK, 2, r"th\.yaml, line \d+: not valid YAML",
         setup=thresholds_file("thresholds:\n  a: [1, 2\n")),
    Case("thresholds-duplicate-key", CHECK, 2, r"key 'reference' appears twice \(first on line 3\)",
         setup=thresholds_file("thresholds:\n  iu-phantom/test:\n    reference: {}\n    reference: {}\n")),
    Case("thresholds-empty-file", CHECK, 2, r"th\.yaml: the file is empty", setup=thresholds_file("")),
    Case("thresholds-as-list", CHECK, 2, r"line 1: thresholds must be a mapping, found a list",
         setup=thresholds_file("thresholds: [0.1, 0.2]\n")),
    # -- cxrbench thresholds check / update ------------------------------------------------------------------------
    Case("records-broken-line", ("thresholds", "check", "--from", "{prior}", "--file", "{th_yaml}"), 1,
         r"records\.jsonl, line 2: not a JSON record", base=False,
         setup=lambda w: (records_folder([GOOD_RECORD, '{"model": "random", "val'])(w), thresholds_file(VALID_TH)(w))),
    Case("records-incomplete", ("thresholds", "check", "--from", "{prior}", "--file", "{th_yaml}"), 1,
         r"records\.jsonl, line 1: record lacks .*value", base=False,
         setup=lambda w: (records_folder(['{"dataset": "manifest", "split": "all", "model": "random"}'])(w),
                          thresholds_file(VALID_TH)(w))),
    Case("records-not-utf8", ("thresholds", "check", "--from", "{prior}", "--file", "{th_yaml}"), 1,
         r"records\.jsonl: cannot read the records", base=False,
         setup=lambda w: (records_folder(b"\xff\xfe\x00broken\n")(w), thresholds_file(VALID_TH)(w))),
    Case("records-folder-missing", ("thresholds", "check", "--from", "/nonexistent/run"), 2,
         r"/nonexistent/run: no records\.jsonl here", base=False),
    Case("thresholds-check-file-missing", ("thresholds", "check", "--from", "{prior}", "--file", "/no/th.yaml"), 2,
         r"thresholds file /no/th\.yaml does not exist", base=False, setup=records_folder([GOOD_RECORD])),
    Case("thresholds-update-margin", ("thresholds", "update", "--from", "{prior}", "--file", "{tmp}/new.yaml",
                                      "--margin", "1.5"), 2, r"margin 1\.5 must lie in \[0, 1\)", base=False,
         setup=records_folder([GOOD_RECORD])),
    # -- manifests -------------------------------------------------------------------------------------------------
    Case("manifest-missing", ("--root", "/nonexistent/manifest.csv"), 1, r"manifest\.csv: manifest not found"),
    Case("manifest-wrong-suffix", ("--root", "{list_txt}"), 2, r"a manifest must end in \.csv or \.jsonl",
         setup=put("list.txt", "study_id,image_path\n")),
    Case("manifest-empty-file", ("--root", "{bad_manifest}"), 1, r"manifest\.csv: empty file",
         setup=manifest_bytes(b"")),
    Case("manifest-no-image-column", ("--root", "{bad_manifest}"), 1, r"missing column\(s\) 'image_path'",
         setup=manifest_with(["s0,x"], header="study_id,findings")),
    Case("manifest-unknown-column", ("--root", "{bad_manifest}"), 1, r"unknown column\(s\) 'patient'",
         setup=manifest_with(["s0,im0.png,x,p1"], header="study_id,image_path,findings,patient")),
    Case("manifest-field-count", ("--root", "{bad_manifest}"), 1, r"manifest\.csv, line 3: 4 fields",
         setup=manifest_with(["s0,im0.png,a", "s1,im1.png,b,extra"])),
    Case("manifest-no-rows", ("--root", "{bad_manifest}"), 1, r"manifest\.csv: no rows", setup=manifest_with([])),
    Case("manifest-outside-folder", ("--root", "{bad_manifest}"), 1, r"line 2: image path '\.\./x\.png' leads outside",
         setup=manifest_with(["s0,../x.png,a"])),
    Case("manifest-absolute-path", ("--root", "{bad_manifest}"), 1, r"line 2: absolute image path '/etc/hostname'",
         setup=manifest_with(["s0,/etc/hostname,a"])),
    Case("manifest-missing-image", ("--root", "{bad_manifest}"), 1, r"im9\.png \(image of study 's1'.*line 3\): image "
         r"file not found", setup=manifest_with(["s0,im0.png,a", "s1,im9.png,b"])),
    Case("manifest-nul-in-path", ("--root", "{bad_manifest}"), 1, r"im0\\x00\.png .*line 1\): image file not found",
         setup=manifest_bytes(json.dumps({"study_id": "s0", "image_path": "im0\u0000.png", "findings": "a"}).encode()
                              + b"\n", name="manifest.jsonl")),
    Case("manifest-not-utf8", ("--root", "{bad_manifest}"), 1, r"manifest\.csv, line 3: not UTF-8",
         setup=manifest_bytes(b"study_id,image_path,findings\ns0,im0.png,a\ns1,im1.png,caf\xe9\n")),
    Case("manifest-duplicate-row", ("--root", "{bad_manifest}"), 1, r"lines 2 and 3 both list image 'im0\.png'",
         setup=manifest_with(["s0,im0.png,a", "s0,im0.png,a"])),
    Case("manifest-conflicting-texts", ("--root", "{bad_manifest}"), 1, r"lines 2 and 3 give study 's0' different",
         setup=manifest_with(["s0,im0.png,a", "s0,im1.png,b"])),
    Case("manifest-jsonl-broken-line", ("--root", "{bad_manifest}"), 1, r"manifest\.jsonl, line 2: not valid JSON",
         setup=manifest_bytes(b'{"study_id": "s0", "image_path": "im0.png", "findings": "a"}\n{"study_id": \n',
                              name="manifest.jsonl")),
    Case("manifest-split-absent", ("--root", "{bad_manifest}", "--split", "test"), 2,
         r"split='test' asks for a split, but the manifest has no 'split' column",
         setup=manifest_with(["s0,im0.png,a"])),
    # -- images ----------------------------------------------------------------------------------------------------
    Case("image-truncated", ("--root", "{bad_manifest}"), 1, r"im2\.png: cannot decode image",
         setup=bad_image(truncated_png)),
    Case("image-not-an-image", ("--root", "{bad_manifest}"), 1, r"im2\.png: cannot decode image",
         setup=bad_image(lambda p: p.write_text("<html>not an image</html>\n"))),
    Case("image-empty", ("--root", "{bad_manifest}"), 1, r"im2\.png: cannot decode image",
         setup=bad_image(lambda p: p.write_bytes(b""))),
    Case("image-40000x1", ("--root", "{bad_manifest}"), 1, r"im2\.png: image of 40000x1 has an aspect ratio above 10",
         setup=bad_image(sliver)),
    Case("image-over-pixel-limit", ("--root", "{bad_manifest}"), 1,
         r"im2\.png: image of 11000x11000 = 121,000,000 pixels is larger than the 100,000,000-pixel limit",
         setup=bad_image(huge_1bit(11000))),
    Case("image-decompression-bomb", ("--root", "{bad_manifest}"), 1, r"im2\.png: .*decompression bomb",
         setup=bad_image(huge_1bit(14000))),
    Case("image-is-a-folder", ("--root", "{bad_manifest}"), 1, r"im2\.png .*image file not found",
         setup=bad_image(lambda p: (p.unlink(), p.mkdir()))),
    # -- checkpoints -----------------------------------------------------------------------------------------------
    Case("checkpoint-missing", ("--models", "reference", "--checkpoint", "reference=/nonexistent/w.safetensors"), 1,
         r"reference: weights file /nonexistent/w\.safetensors not found"),
    Case("checkpoint-empty", REF, 1, r"ref\.safetensors is not a readable safetensors file",
         setup=reference_checkpoint(raw=b"")),
    Case("checkpoint-garbage", REF, 1, r"ref\.safetensors is not a readable safetensors file",
         setup=reference_checkpoint(raw=b"<html>404 not found</html>\n" * 10)),
    Case("checkpoint-truncated", REF, 1, r"ref\.safetensors is not a readable safetensors file",
         setup=half_of_reference),
    Case("checkpoint-other-keys", REF, 1, r"does not match the model it should load.*No key matches at all",
         setup=reference_checkpoint(lambda s: {"visual.proj": torch.zeros(2, 2)})),
    Case("checkpoint-missing-key", REF, 1, r"1 missing key\(s\): image\.proj\.bias",
         setup=reference_checkpoint(lambda s: {k: v for k, v in s.items() if k != "image.proj.bias"})),
    Case("checkpoint-wrong-shape", REF, 1, r"wrong shape.*image\.proj\.weight",
         setup=reference_checkpoint(lambda s: with_key(s, "image.proj.weight", lambda t: t[:, :10].contiguous()))),
    Case("checkpoint-int8", REF, 1, r"wrong dtype: image\.proj\.weight \(int8, model float32\)",
         setup=reference_checkpoint(lambda s: with_key(s, "image.proj.weight", lambda t: t.to(torch.int8)))),
    Case("checkpoint-bool", REF, 1, r"wrong dtype: image\.proj\.bias \(bool, model float32\)",
         setup=reference_checkpoint(lambda s: with_key(s, "image.proj.bias", lambda t: t.to(torch.bool)))),
    Case("checkpoint-nan", REF, 1, r"model reference, pixels level 0: 24 of 24|model reference, pixels level 0: \d+ of "
         r"\d+ image embeddings are NaN or infinite",
         setup=reference_checkpoint(lambda s: with_key(s, "image.proj.weight", lambda t: torch.full_like(t, float("nan"))))),
    Case("checkpoint-malicious-pickle", REF, 1, r"ref\.pt holds Python objects that are not tensors",
         setup=malicious_pickle),
    Case("checkpoint-truncated-pt", REF, 1, r"could not read checkpoint .*ref\.pt", setup=truncated_pt),
    Case("medclip-bad-checkpoint-and-no-tokenizer",
         ("--models", "medclip", "--checkpoint", "medclip={bin}", "--data-option", "views=all"), 1,
         r"medclip: 2 problems: \(1\) .*pytorch_model\.bin.*\(2\) .*tokenizer",
         setup=put("bad/pytorch_model.bin", b"not a checkpoint")),
    Case("biovil-bad-checkpoint-and-no-text-encoder",
         ("--models", "biovil", "--checkpoint", "biovil={img_pt}"), 1,
         r"biovil: 2 problems: \(1\) .*img\.pt.*\(2\) .*CXR-BERT text encoder", setup=put("img.pt", b"garbage")),
]

#: environment for the medclip / biovil cases: their tokenizer / text encoder not available
ENV = {"CXRBENCH_MEDCLIP_TOKENIZER": "cxrbench-test/not-cached", "CXRBENCH_BIOVIL_TEXT_ENCODER": "hf-hub:cxrbench-test/none"}


def test_the_table_has_at_least_sixty_cases_with_unique_ids():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_ends_in_one_clear_line_and_leaves_nothing(case, manifest, cache_dir, tmp_path, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    world = World(tmp_path, manifest, tmp_path / "results" / "run", {"tmp": str(tmp_path)})
    if case.setup is not None:
        case.setup(world)
    world.values.setdefault("bin", str(tmp_path / "bad" / "pytorch_model.bin"))
    before = sorted(p.name for p in world.out.iterdir()) if world.out.is_dir() else None
    args = [a.format(**world.values) for a in case.argv]
    run = run_cli((run_base(world) if case.base else []) + args)
    assert run.rc == case.rc, run.err
    line = run.one_error()
    assert line.startswith("cxrbench") and re.search(case.match, line), line
    after = sorted(p.name for p in world.out.iterdir()) if world.out.is_dir() else None
    assert after == before, "a failed run changed the results folder"
    if before is None:
        assert not world.out.exists() or world.out.is_file()
    assert leftovers(world.out) == [], "staging folder or lock left behind"
    if "marker" in world.values:
        assert not Path(world.values["marker"]).exists(), "the checkpoint's pickle ran code"


SKIPPABLE = {c.id: c for c in CASES if c.id.startswith("image-")}


@pytest.mark.parametrize("case_id", sorted(SKIPPABLE))
def test_bad_images_are_skipped_and_counted_with_on_bad_image_skip(case_id, manifest, cache_dir, tmp_path):
    case = SKIPPABLE[case_id]
    world = World(tmp_path, manifest, tmp_path / "results" / "run", {"tmp": str(tmp_path)})
    case.setup(world)
    run = run_cli(run_base(world) + [a.format(**world.values) for a in case.argv] + ["--on-bad-image", "skip"])
    assert run.rc == 0, run.err
    assert "Traceback" not in run.err and not run.errors
    summary = json.loads((world.out / "run.json").read_text())["dataset"]
    skipped = summary.get("skipped_undecodable_images", 0) + summary.get("skipped_missing_images", 0)
    assert skipped == 1 and summary["images"] == 3, summary


def test_repeated_models_corruptions_and_levels_run_once_with_a_note(manifest, cache_dir, tmp_path):
    out = tmp_path / "run"
    run = run_cli(["run", "--dataset", "manifest", "--root", manifest, *QUICK, "--models", "random,random",
                   "--corruption", "pixels,pixels", "--levels", "0,0.5,0.50", "--out", out])
    assert run.rc == 0, run.err
    notes = [line for line in run.err.splitlines() if line.startswith("cxrbench: note:")]
    assert len(notes) == 3 and all("more than once; each is run once" in n for n in notes), run.err
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 1 * 1 * 2 * 2 * 7


def test_exif_orientation_is_applied(tmp_path):
    from cxrbench.data.images import decode_image

    arr = np.zeros((20, 40), dtype=np.uint8)
    arr[:, :10] = 255  # a bright band on the left of the stored pixels
    im = Image.fromarray(arr, mode="L")
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    shown = np.asarray(decode_image(tmp_path / "rotated.jpg"))
    assert shown.shape == (40, 20)  # upright: taller than wide
    assert shown[:10].mean() > 200 and shown[-10:].mean() < 50  # the band is now on top


def test_debug_shows_the_traceback_and_still_one_error_line(manifest, cache_dir, tmp_path):
    run = run_cli(["--debug", "run", "--dataset", "manifest", "--root", manifest, *QUICK, "--bootstrap=-1",
                   "--out", tmp_path / "run"])
    assert run.rc == 2 and "Traceback" in run.err and len(run.errors) == 1


def test_gate_that_checks_nothing_fails_unless_allowed(manifest, cache_dir, tmp_path):
    thresholds = tmp_path / "th.yaml"
    thresholds.write_text(th("{5: 0.1}"))  # thresholds for iu-phantom only
    base = ["run", "--dataset", "manifest", "--root", manifest, *QUICK, "--check-thresholds", "--thresholds",
            thresholds]
    empty = run_cli([*base, "--out", tmp_path / "a"])
    assert empty.rc == 1 and "the gate checked nothing" in empty.err and "0/0" not in empty.out
    allowed = run_cli([*base, "--out", tmp_path / "b", "--allow-empty"])
    assert allowed.rc == 0 and "0/0 passed" in allowed.out
    gated = tmp_path / "gated.yaml"
    gated.write_text(VALID_TH.replace("manifest/all", "manifest/all[:12]").replace("0.1", "1.0"))
    below = run_cli([*base[:-1], gated, "--out", tmp_path / "c"])
    assert below.rc == 1 and "BELOW THRESHOLD random pixels 0 image_to_text R@5" in below.err
    check = run_cli(["thresholds", "check", "--from", tmp_path / "a", "--file", thresholds])
    assert check.rc == 1 and "the gate checked nothing" in check.err


def test_the_pytest_plugin_refuses_a_missing_thresholds_file(repo_root):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "benchmarks/test_recall_thresholds.py", "--thresholds", "/nonexistent/th.yaml",
                           "--collect-only"], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "thresholds file /nonexistent/th.yaml does not exist" in proc.stdout + proc.stderr
