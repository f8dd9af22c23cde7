"""The ``cxrbench`` command line (thin: parses options, calls the library, prints where results went).

Exit codes: 0 success; 1 a data, model or output problem (an undecodable image, a bad checkpoint, NaN embeddings,
a full disk) or a threshold gate that failed; 2 a usage or configuration error (a bad option, a thresholds file
that is wrong, a results folder that would be overwritten); 130 interrupted (Ctrl-C). Every error is one line
``cxrbench: error: ...`` on stderr and warnings are one line each; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import textwrap
import traceback
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from cxrbench import options
from cxrbench.errors import ConfigError, CxrBenchError, OutputError


def _data_options(args: argparse.Namespace) -> dict:
    return options.parse_data_options(args.data_option, args.root, args.on_bad_image)


def _is_writer() -> bool:
    """Under torchrun only rank 0 writes results."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def cmd_run(args: argparse.Namespace) -> int:
    from cxrbench import thresholds
    from cxrbench.io import OutputFolder
    from cxrbench.report import write_run
    from cxrbench.results import records
    from cxrbench.runner import run_sweep

    cfg = options.sweep_config(vars(args).get)
    run_id = options.check_run_name(args.run_name or datetime.now().strftime(f"%Y%m%d-%H%M%S-{cfg.dataset}"))
    out = Path(args.out) if args.out else Path("results") / run_id
    gate = thresholds.load(args.thresholds) if args.check_thresholds else None  # a bad file fails before compute
    folder = OutputFolder(out, overwrite=args.overwrite) if _is_writer() else None
    try:
        result = run_sweep(cfg, progress=not args.no_progress)
        if result.rank != 0 or folder is None:  # under torchrun, rank 0 gathers, scores and writes
            return 0
        try:
            written = write_run(result, folder.staging, run_id)
            if not args.no_report:  # inside the staging folder: the page lands with the results or not at all
                from cxrbench.report.html import write_report

                written["report"] = write_report(folder.staging)
            folder.commit()
        except OSError as exc:
            raise OutputError(f"cannot write the results to {out}: {exc.strerror or exc}"
                              f"{f' ({exc.filename})' if exc.filename else ''}; nothing was written there. "
                              "Free some space or choose another --out") from exc
    finally:
        if folder is not None:
            folder.abandon()
    paths = {name: out / p.name for name, p in written.items()}
    print(Path(paths["table"]).read_text())
    for name, why in result.skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"results: {out}/ ({', '.join(p.name for p in paths.values())}); total {result.timings.total_s:.1f} s")
    if gate is not None:
        recs = records(result, run_id)
        failures, checked = thresholds.check(recs, gate)
        for f in failures:
            print(f"BELOW THRESHOLD {f['model']} {f['corruption']} {f['level']:g} {f['direction']} R@{f['k']}: "
                  f"{f['value']:.4f} < {f['threshold']:.4f}", file=sys.stderr)
        _note_other_sets(recs, gate, checked)
        empty = thresholds.gate_summary(checked, recs, args.allow_empty, th=gate)
        if empty:
            print(f"cxrbench: thresholds: {empty}", file=sys.stderr)
            return 1
        print(f"thresholds: {checked - len(failures)}/{checked} passed")
        return 1 if failures else 0
    return 0


def cmd_thresholds(args: argparse.Namespace) -> int:
    from cxrbench import thresholds

    if args.action == "update":
        return _update_thresholds(args)
    stored = thresholds.load(args.file)
    recs = thresholds.read_records(args.source)
    failures, checked = thresholds.check(recs, stored)
    for f in failures:
        print(f"BELOW {f['model']} {f['corruption']} {f['level']:g} {f['direction']} R@{f['k']}: "
              f"{f['value']:.4f} < {f['threshold']:.4f}")
    _note_other_sets(recs, stored, checked)
    empty = thresholds.gate_summary(checked, recs, args.allow_empty, th=stored)
    if empty:
        print(f"cxrbench: thresholds: {empty}", file=sys.stderr)
        return 1
    print(f"{checked - len(failures)}/{checked} records at or above their thresholds")
    return 1 if failures else 0


def _note_other_sets(recs: list[dict], stored: dict, checked: int) -> None:
    """A note per dataset/split whose thresholds were stored for another evaluation set (when the gate still
    checked something; otherwise the gate's failure names them)."""
    from cxrbench import thresholds

    if checked:
        for line in thresholds.other_evaluation_sets(recs, stored):
            print(f"cxrbench: note: not gated: {line}", file=sys.stderr)


def _update_thresholds(args: argparse.Namespace) -> int:
    from cxrbench import thresholds

    th = thresholds.load(args.file, missing_ok=True)
    recs = thresholds.read_records(args.source)
    models = options.csv(args.models) if args.models else None
    plan = thresholds.plan_update(th, recs, tolerance=args.tolerance, margin=args.margin, models=models,
                                  ratchet=args.ratchet, allow_lower=args.allow_lower)
    if plan.refused and not args.ratchet:
        shown = "; ".join(str(c) for c in plan.refused[:3])
        raise ConfigError(f"this update would lower {len(plan.refused)} stored threshold(s) of {args.file} (e.g. "
                          f"{shown}); nothing written. Lowering hides a regression: pass --allow-lower to lower "
                          "them deliberately (each is listed), or --ratchet to keep them and raise only where the "
                          "run is significantly better")
    command = " ".join(["cxrbench thresholds update --from", str(args.source),
                        f"--margin {args.margin:g}" if args.margin is not None else f"--tolerance {args.tolerance:g}",
                        *(["--ratchet"] if args.ratchet else []), *(["--allow-lower"] if args.allow_lower else []),
                        *([f"--models {args.models}"] if args.models else [])])
    thresholds.save(plan.thresholds, args.file, source=str(args.source), margin=args.margin, plan=plan,
                    command=command)
    print(f"wrote {args.file}: {plan.method}; none at or below chance")
    print(f"  from {plan.records} records of {args.source}: {plan.derived} gave a threshold, {plan.left_out_text()}")
    print(f"  {plan.counts_text()}")
    for c in plan.lowered:
        print(f"  lowered (--allow-lower): {c}")
    if args.ratchet:
        for c in plan.raised:
            print(f"  raised (significantly better): {c}")
    if plan.refused:
        print(f"  not lowered: {len(plan.refused)} stored threshold(s) above what this run gives (pass --allow-lower "
              "to lower them), e.g. " + "; ".join(str(c) for c in plan.refused[:3]))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from cxrbench.report.compare import compare_run, format_table, write_compare

    report = compare_run(args.run, models=options.csv(args.models) if args.models else None,
                         ks=_ks(args.k), alpha=args.alpha, bootstrap=args.bootstrap)
    print(format_table(report))
    print(f"wrote {write_compare(report, args.run)}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from cxrbench.report.diff import diff_runs, format_markdown, gate, summary_line, write_diff

    report = diff_runs(args.base, args.new, alpha=args.alpha, tolerance=args.tolerance, bootstrap=args.bootstrap,
                       force=args.force)
    failed, empty = gate(report, args.fail_on)
    table = format_markdown(report)
    if table:
        print(table, end="")
    path = write_diff(report, args.out or Path(args.new) / "diff.json")
    print(f"cxrbench: diff: {summary_line(report, args.fail_on)}; wrote {path}", file=sys.stderr)
    if empty:
        print(f"cxrbench: diff: {empty}", file=sys.stderr)
    return 1 if failed or empty else 0


def cmd_report(args: argparse.Namespace) -> int:
    from cxrbench.report.html import write_report

    path = write_report(args.run, models=options.csv(args.models) if args.models else None, ks=_ks(args.k),
                        alpha=args.alpha)
    print(f"wrote {path}")
    return 0


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in options.csv(text))
    except ValueError:
        raise ConfigError(f"--k expects comma-separated whole numbers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k expects numbers >= 1, got {text!r}")
    return ks


def cmd_cache(args: argparse.Namespace) -> int:
    from cxrbench import cache

    root = cache.cache_root()
    if args.action == "info":
        print(f"cache: {root}" + ("" if root.is_dir() else " (does not exist yet)"))
        now = datetime.now().timestamp()
        for k in cache.info(root):
            age = "" if k.newest is None else (f", last used {_age(now - k.newest)} ago, oldest "
                                               f"{_age(now - k.oldest)} ago")
            print(f"  {k.kind:11s} {k.files:7d} files {_size(k.bytes):>10s}{age}  ({cache.KINDS[k.kind]})")
        print("clear it with `cxrbench cache clear [--older-than 30d] [--kind KIND]`; move it with CXRBENCH_CACHE")
        return 0
    older = cache.parse_age(args.older_than) if args.older_than else None
    files, size = cache.clear(root, kinds=options.csv(args.kind) if args.kind else None, older_than_s=older)
    print(f"removed {files} file(s), {_size(size)} from {root}")
    return 0


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.1f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def cmd_train(args: argparse.Namespace) -> int:
    from cxrbench.train_reference import train

    rec = train(args.variant, out=args.out, progress=not args.no_progress, epochs=args.epochs, seed=args.seed)
    print(json.dumps({k: rec[k] for k in ("variant", "path", "val_recall", "total_s")}, indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from cxrbench.bench import compare, format_report
    from cxrbench.corruptions import parse_levels
    from cxrbench.io import write_text_atomic
    from cxrbench.models import canonical_name

    if args.paper_size:
        return _bench_paper_size(args)
    options.load_model_sources(vars(args).get)
    model = canonical_name(args.model)
    settings = options.parse_checkpoints(args.checkpoint)
    if set(settings) - {model}:
        raise ConfigError(f"bench runs one model ({model}); --checkpoint names {', '.join(sorted(settings))}: "
                          f"give --checkpoint {model}=PATH")
    report = compare(model=model, dataset=args.dataset, levels=parse_levels(args.levels),
                     max_studies=args.max_studies, device=args.device, batch_size=args.batch_size,
                     checkpoint=settings.get(model, {}).get("checkpoint"), progress=not args.no_progress,
                     dataset_options=_data_options(args), models_config=args.models_config,
                     tile=args.tile, naive=not args.skip_naive, channels_last=args.channels_last,
                     precision=args.precision)
    print(format_report(report))
    if args.out:
        write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0 if report["speedup"] is None or report["max_recall_abs_diff"] <= 1e-6 else 1


def _bench_paper_size(args: argparse.Namespace) -> int:
    """``cxrbench bench --paper-size``: the four paper models at MIMIC size in one run (cxrbench.bench_paper)."""
    from cxrbench.bench_paper import default_fidelity, format_report, paper_size
    from cxrbench.corruptions import parse_levels
    from cxrbench.io import write_text_atomic
    from cxrbench.paper_size import MIMIC_SIZE, parse_size

    def log(msg: str) -> None:
        if not args.no_progress:
            print(f"[bench {datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    def save(report: dict) -> None:
        if args.out:
            write_text_atomic(args.out, json.dumps(report, indent=2, default=str) + "\n")

    models = options.csv(args.models) if args.models else None
    report = paper_size(images=args.images, image_size=parse_size(args.image_size) if args.image_size else MIMIC_SIZE,
                        **({"models": models} if models else {}), levels=parse_levels(args.levels),
                        device=args.device, precision=args.precision, data_dir=args.data_dir,
                        checkpoint_dir=args.checkpoint_dir, checkpoint_size=args.checkpoint_size,
                        naive=not args.skip_naive, naive_images=args.naive_images, fast=not args.no_fast,
                        per_key_decode=not args.no_per_key, tower=args.tower_check,
                        batch_size=args.paper_batch_size, workers=args.workers, log=log, on_update=save)
    if args.default_fidelity:
        log("fast-decode fidelity on the default set (iu-phantom test split as JPEG, reference models)")
        report["default_fidelity"] = default_fidelity(device=args.device, levels=parse_levels(args.levels),
                                                      data_dir=args.data_dir, workers=args.workers, log=log)
        save(report)
    print(format_report(report))
    if "default_fidelity" in report:
        for m, f in report["default_fidelity"]["fidelity"].items():
            print(f"  default set, {m}: cosine {f['cosine_mean']:.5f} / {f['cosine_min']:.5f}, max |dRecall@k| "
                  f"{f['recall_max_abs_diff']:.4f}")
    if args.out:
        print(f"wrote {args.out}")
    worst = max(report.get("naive_vs_optimised", {}).values(), default=0.0)
    return 0 if worst <= 1e-6 else 1


def cmd_models(args: argparse.Namespace) -> int:
    from cxrbench.models import available, get_spec

    options.load_model_sources(vars(args).get)
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 110))
    for name in available(args.models_config):
        spec = get_spec(name, args.models_config)
        print(name)
        for label, text in (("", spec.description), ("how to get: ", spec.how_to_get),
                            ("from: ", "" if spec.origin == "cxrbench" else spec.origin)):
            if text:
                print(textwrap.fill(text, width, initial_indent="    " + label, subsequent_indent=" " * 8,
                                    break_long_words=False, break_on_hyphens=False))
    return 0


def cmd_corruptions(args: argparse.Namespace) -> int:
    from cxrbench.corruptions import describe, describe_text

    if args.json:
        print(json.dumps(describe(), indent=2, default=list))
    else:
        print(describe_text())
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from cxrbench.data import available, describe_dataset

    if args.action == "list":
        for name in available():
            print(name)
        return 0
    kwargs = _data_options(args)
    if args.protocol:
        from cxrbench.options import protocol_dataset_options

        merged = protocol_dataset_options(args.protocol, args.dataset, args.split, args.policy, kwargs)
        described = describe_dataset(merged["dataset"], split=merged["split"], policy=merged.get("policy"),
                                     **merged["dataset_options"])
        described["protocol"] = merged["protocol"]
    else:
        described = describe_dataset(args.dataset or "iu-phantom", split=args.split, policy=args.policy, **kwargs)
    print(json.dumps(described, indent=2, default=str))
    return 0


def cmd_phantom_grid(args: argparse.Namespace) -> int:
    from cxrbench.report.phantom_grid import write_grid

    write_grid(args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    options.add_sweep_options(p.add_argument, only=options.DATA_OPTIONS)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``cxrbench run: error: ...; see cxrbench run --help``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, also print the traceback")
    p = _Parser(prog="cxrbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                parents=[common])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a sweep: models x corruption x levels on a dataset", parents=[common])
    options.add_sweep_options(r.add_argument)  # the same table as the pytest plugin's (cxrbench.options)
    r.add_argument("--out", default=None, help="results folder (default results/<run-name>); written whole when "
                                               "the run completes, never mixed with an earlier run's files")
    r.add_argument("--overwrite", action="store_true",
                   help="replace an existing non-empty results folder (whole) instead of refusing")
    r.add_argument("--run-name", default=None, help="a plain folder name (default: date-time-dataset)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--check-thresholds", action="store_true",
                   help="exit 1 if a value is below the thresholds file, or if no threshold applies")
    r.add_argument("--thresholds", default="thresholds.yaml")
    r.add_argument("--allow-empty", action="store_true",
                   help="with --check-thresholds: pass when no stored threshold applies (otherwise a failure)")
    r.add_argument("--no-report", action="store_true", help="do not write report.html (results are the same)")
    r.set_defaults(fn=cmd_run)

    c = sub.add_parser("compare", parents=[common], help="paired differences between models of a run (study bootstrap): recall, "
                                       "retention and AUC; writes compare.json into the run folder")
    c.add_argument("run", help="results folder of `cxrbench run`")
    c.add_argument("--models", default=None, help="a,b: a minus b (more names: every pair; default: all pairs)")
    c.add_argument("--k", default="10", help="comma-separated k (default 10)")
    c.add_argument("--alpha", type=float, default=0.05, help="1 - interval coverage (default 0.05: 95%%)")
    c.add_argument("--bootstrap", type=int, default=None,
                   help="study resamples (default: the run's --bootstrap, so intervals match its records)")
    c.set_defaults(fn=cmd_compare)

    df = sub.add_parser("diff", parents=[common],
                        help="what moved between two results folders (NEW - BASE, paired study bootstrap); "
                             "writes diff.json; the regression gate of a nightly run")
    df.add_argument("base", help="results folder of the earlier run (the baseline)")
    df.add_argument("new", help="results folder of the later run")
    df.add_argument("--alpha", type=float, default=0.05, help="1 - interval coverage (default 0.05: 95%%)")
    df.add_argument("--tolerance", type=float, default=0.0,
                    help="a change must clear this much (recall units, 0.01 = 1 point) with its whole interval to "
                         "be flagged (default 0)")
    df.add_argument("--bootstrap", type=int, default=None,
                    help="study resamples (default: BASE's --bootstrap, else 1000)")
    df.add_argument("--fail-on", choices=["regression", "never"], default="never",
                    help="regression: exit 1 when a metric regressed (or when nothing could be tested)")
    df.add_argument("--force", action="store_true",
                    help="compare although the dataset fingerprint, seed or protocol differ")
    df.add_argument("--out", default=None, help="where to write diff.json (default NEW/diff.json)")
    df.set_defaults(fn=cmd_diff)

    rp = sub.add_parser("report", parents=[common], help="write report.html (one self-contained page) for a results folder")
    rp.add_argument("run", help="results folder of `cxrbench run`")
    rp.add_argument("--models", default=None, help="models to compare pairwise (default: all)")
    rp.add_argument("--k", default="5,10,50", help="k shown in tables and comparisons (default 5,10,50)")
    rp.add_argument("--alpha", type=float, default=0.05, help="1 - interval coverage of the comparisons")
    rp.set_defaults(fn=cmd_report)

    t = sub.add_parser("thresholds", help="update or check thresholds.yaml from a results folder",
                       parents=[common])
    t.add_argument("action", choices=["update", "check"])
    t.add_argument("--from", dest="source", required=True, help="results folder (with records.jsonl)")
    t.add_argument("--tolerance", type=float, default=0.01,
                   help="update: threshold = lower end of the record's 95%% study-bootstrap interval - tolerance "
                        "(absolute; default 0.01); none at or below chance")
    t.add_argument("--margin", type=float, default=None,
                   help="update: the older rule instead, threshold = value - margin (absolute; no interval needed)")
    t.add_argument("--ratchet", action="store_true",
                   help="update: raise a stored threshold only where the run is significantly better (its study "
                        "lower bound above threshold + tolerance); keep the others")
    t.add_argument("--allow-lower", action="store_true",
                   help="update: allow lowering (or removing) stored thresholds; each one is listed")
    t.add_argument("--file", default="thresholds.yaml")
    t.add_argument("--models", default=None, help="only these models (comma-separated)")
    t.add_argument("--allow-empty", action="store_true", help="check: pass when no stored threshold applies")
    t.set_defaults(fn=cmd_thresholds)

    c = sub.add_parser("cache", help="show or clear the on-disk cache (embeddings, geometry, rendered phantoms)",
                       parents=[common])
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument("--older-than", default=None, metavar="AGE",
                   help="clear: only entries not written or used for AGE (30d, 12h, 45m, 2w)")
    c.add_argument("--kind", default=None, help="clear: only these kinds (embeddings, geometry, texts, iu-phantom)")
    c.set_defaults(fn=cmd_cache)

    tr = sub.add_parser("train-reference", help="train the reference model weights on iu-phantom/train", parents=[common])
    tr.add_argument("--variant", default="reference", choices=["reference", "reference_occaug"])
    tr.add_argument("--epochs", type=int, default=None)
    tr.add_argument("--seed", type=int, default=None)
    tr.add_argument("--out", default=None, help="weights file (default: the packaged weights)")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(fn=cmd_train)

    b = sub.add_parser("bench", help="time the optimised sweep against a naive per-level loop (same data, model)", parents=[common])
    b.add_argument("--model", default="reference")
    b.add_argument("--checkpoint", action="append", metavar="MODEL=PATH", help="checkpoint for the model (as in run)")
    b.add_argument("--dataset", default="iu-phantom")
    b.add_argument("--levels", default="paper")
    b.add_argument("--max-studies", type=int, default=None)
    b.add_argument("--device", default="auto")
    b.add_argument("--batch-size", type=int, default=64)
    _add_data_args(b)
    options.add_sweep_options(b.add_argument, only=options.MODEL_OPTIONS)
    b.add_argument("--tile", type=int, default=1, help="repeat the dataset N times (a larger gallery)")
    b.add_argument("--skip-naive", action="store_true", help="only the optimised sweep (memory measurements)")
    b.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="contiguous (NCHW) image tower in the optimised sweep")
    b.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"], default="auto",
                   help="the speed run's precision: naive and optimised run in fp32 (the exactness check); any "
                        "other precision adds the optimised sweep at it (auto: bf16/fp16 where the device runs it "
                        "natively, else nothing is added)")
    ps = b.add_argument_group("paper size (--paper-size: clip, cxr_repair, medclip, cxr_clip at MIMIC size)")
    ps.add_argument("--paper-size", action="store_true",
                   help="compare decode-per-geometry, the naive loop, the optimised sweep and --decode fast on "
                        "MIMIC-size synthetic JPEGs with full-size random checkpoints of the four paper models")
    ps.add_argument("--images", type=int, default=None, help="images (default: 36 on a CPU, 1770 on CUDA)")
    ps.add_argument("--image-size", default=None, help="JPEG size WxH or the height (default 2544x3056)")
    ps.add_argument("--models", default=None, help="comma-separated paper models (default all four)")
    ps.add_argument("--data-dir", default=None, help="where the JPEGs are built and reused (default: temp folder)")
    ps.add_argument("--checkpoint-dir", default=None, help="where the random checkpoints are written and reused")
    ps.add_argument("--checkpoint-size", choices=["full", "tiny"], default="full",
                   help="full-size architectures (default) or tiny ones (smoke runs)")
    ps.add_argument("--naive-images", type=int, default=None,
                   help="run the naive loop on about this many first images only (default: all)")
    ps.add_argument("--no-fast", action="store_true", help="skip the --decode fast runs (and the fidelity)")
    ps.add_argument("--no-per-key", action="store_true", help="skip the decode-per-geometry (before) pass")
    ps.add_argument("--tower-check", action="store_true",
                   help="time each image tower plain, through the sweep path, and in channels-last format")
    ps.add_argument("--default-fidelity", action="store_true",
                   help="also measure the fast-decode fidelity on the default set (iu-phantom test split as JPEG, "
                        "reference models)")
    ps.add_argument("--paper-batch-size", type=int, default=None, help="image batch (default: each model's own)")
    ps.add_argument("--workers", type=int, default=None, help="decode threads (default: all CPUs)")
    b.add_argument("--out", default=None, help="write the report as JSON here")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(fn=cmd_bench)

    m = sub.add_parser("models", help="list the models: description, how to get the weights, where it came from",
                       parents=[common])
    options.add_sweep_options(m.add_argument, only=("models_config", "model_module"))
    m.set_defaults(fn=cmd_models)

    co = sub.add_parser("corruptions", help="list the corruptions: occlusion modes and severity families with their "
                                             "parameter at each severity", parents=[common])
    co.add_argument("--json", action="store_true", help="every family with its formula, source and exactness")
    co.set_defaults(fn=cmd_corruptions)

    d = sub.add_parser("datasets", help="list datasets or describe one", parents=[common])
    d.add_argument("action", choices=["list", "describe"])
    d.add_argument("dataset", nargs="?", default=None, help="dataset name (default iu-phantom, or the protocol's)")
    _add_data_args(d)
    d.add_argument("--protocol", default=None, help="describe the evaluation set of a named protocol (e.g. paper)")
    d.add_argument("--split", default=None)
    d.add_argument("--policy", default=None)
    d.set_defaults(fn=cmd_datasets)

    g = sub.add_parser("phantom-grid", help="render a picture grid of phantoms with their reports", parents=[common])
    g.add_argument("--out", default="docs/img/phantom_grid.png")
    g.add_argument("-n", type=int, default=8)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(fn=cmd_phantom_grid)
    return p


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from cxrbench.errors import Note

    kind = "note" if issubclass(category, Note) else "warning"
    print(f"cxrbench: {kind}: {_one_line(message)}", file=sys.stderr if file is None else file)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as one ``cxrbench: warning: ...`` line each, for the duration of a command."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        yield


def _error_code(exc: BaseException) -> int:
    return 2 if isinstance(exc, ConfigError) else 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed in one line
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False) or os.environ.get("CXRBENCH_DEBUG", "") not in ("", "0")
    try:
        with _one_line_warnings():
            return args.fn(args)
    except KeyboardInterrupt:
        print("cxrbench: interrupted", file=sys.stderr)
        return 130
    except CxrBenchError as exc:
        if debug:
            traceback.print_exc()
        print(f"cxrbench: error: {_one_line(exc)}", file=sys.stderr)
        return _error_code(exc)
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"cxrbench: error: {exc.strerror or _one_line(exc)}{where}", file=sys.stderr)
        return 1
    except MemoryError:
        if debug:
            traceback.print_exc()
        print("cxrbench: error: out of memory; try a smaller --batch-size or --max-studies", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"cxrbench: error: unexpected {type(exc).__name__}: {_one_line(exc)} (run again with --debug for "
              "the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
