"""Train the reference models on the iu-phantom training split (``cxrbench train-reference``).

Recipe (recorded in the weights' metadata): images through the reference geometry (grayscale 128x128); the frozen
MiniLM embeds each unique report text once; the image tower, the text head and a temperature are trained with a
symmetric contrastive loss in which every pair with the *same report text* counts as a positive (duplicate normal
reports are frequent, so plain InfoNCE would push identical reports apart). Light augmentation: small random
affine jitter and brightness/contrast changes. ``reference_occaug`` additionally blocks a random fraction
(uniform in [0, 0.85)) of each training image with probability 0.5, with a random mode among pixels / block /
patches, using the same occlusion code as the benchmark. bf16 autocast on the CPU (fp32 master weights); the
weights are stored in fp16.

A held-out tenth of the training studies (never the test split) is used only to report validation Recall@10.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cxrbench import corruptions, metrics
from cxrbench.data import iu_phantom
from cxrbench.errors import ConfigError
from cxrbench.models import reference
from cxrbench.models.minilm import MiniLM
from cxrbench.provenance import code_version, environment

VARIANTS = {"reference": {"occlusion_aug": False}, "reference_occaug": {"occlusion_aug": True}}
DEFAULTS = {"epochs": 40, "batch_size": 128, "lr": 2e-3, "weight_decay": 0.05, "warmup_steps": 60, "seed": 0,
            "occ_prob": 0.5, "occ_max": 0.85, "val_fraction": 0.1}


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine jitter (±4% shift, ±4° rotation, 0.95-1.05 scale) and brightness/contrast, on 0..255 floats."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(4)
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * 0.05
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * 0.08
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.15
    bias = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 15
    return (x * gain + bias).clamp(0, 255)


def _occlude(x: torch.Tensor, gen: torch.Generator, prob: float, max_level: float) -> torch.Tensor:
    out = x.clone()
    keys = torch.randint(0, 2**32, (x.shape[0],), generator=gen, dtype=torch.int64)
    apply = torch.rand(x.shape[0], generator=gen) < prob
    levels = torch.rand(x.shape[0], generator=gen) * max_level
    modes = torch.randint(0, len(corruptions.MODES), (x.shape[0],), generator=gen)
    for i in torch.nonzero(apply).flatten().tolist():
        occ = corruptions.Occlusion(corruptions.MODES[int(modes[i])], fill="zero", patch_size=16)
        out[i : i + 1] = occ.apply(x[i : i + 1], keys[i : i + 1], float(levels[i]))
    return out


def _contrastive_loss(img: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    pos = labels[:, None] == labels[None, :]
    i2t = -(torch.logsumexp(logits.masked_fill(~pos, -1e4), 1) - torch.logsumexp(logits, 1))
    t2i = -(torch.logsumexp(logits.T.masked_fill(~pos, -1e4), 1) - torch.logsumexp(logits.T, 1))
    return (i2t.mean() + t2i.mean()) / 2


def _split_val(studies: list, fraction: float) -> tuple[list, list]:
    n_val = int(len(studies) * fraction)
    return studies[n_val:], studies[:n_val]  # studies are in a fixed (hash) order


def _tensors(ds, studies, minilm: MiniLM, progress: bool):
    from cxrbench.data.records import Dataset
    from cxrbench.prepared import Prepared

    sub = Dataset(ds.name, "train", ds.policy, studies, image_loader=ds.image_loader, provenance=ds.provenance)
    prep = Prepared(sub)
    pixels = torch.stack(prep.map_images(reference.geometry, progress=progress, desc="decode + geometry"))
    text_base = minilm.encode(prep.unique_texts, progress=progress)
    return pixels, torch.tensor(prep.image_text), text_base


@torch.no_grad()
def _val_recall(net, pixels, labels, text_base) -> dict:
    net.eval()
    img = torch.cat([net.image(reference.intensity(pixels[i : i + 256].float())) for i in range(0, len(pixels), 256)])
    txt = net.text(text_base)
    m = metrics.retrieval_metrics(img, txt, labels, ks=(1, 10))
    net.train()
    return {d: m[d]["recall"] for d in m}


def train(variant: str = "reference", out: str | Path | None = None, progress: bool = True, **overrides) -> dict:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown training options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    hp = {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    t0 = time.perf_counter()
    torch.manual_seed(hp["seed"])
    gen = torch.Generator().manual_seed(hp["seed"])
    ds = iu_phantom.load(split="train", progress=progress)  # renders missing phantoms
    train_studies, val_studies = _split_val(ds.studies, hp["val_fraction"])
    minilm = MiniLM.shared()
    pixels, labels, text_base = _tensors(ds, train_studies, minilm, progress)
    v_pixels, v_labels, v_text = _tensors(ds, val_studies, minilm, progress)
    t_data = time.perf_counter() - t0

    net = reference.ReferenceNet()
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=hp["lr"])
    steps_per_epoch = len(pixels) // hp["batch_size"]
    total = steps_per_epoch * hp["epochs"]

    def lr_at(step: int) -> float:
        if step < hp["warmup_steps"]:
            return (step + 1) / hp["warmup_steps"]
        return 0.5 * (1 + math.cos(math.pi * (step - hp["warmup_steps"]) / max(1, total - hp["warmup_steps"])))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    occ_aug = VARIANTS[variant]["occlusion_aug"]
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"train {variant}", unit="step", disable=not progress)
    history = []
    net.train()
    for epoch in range(hp["epochs"]):
        order = torch.randperm(len(pixels), generator=gen)
        running = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * hp["batch_size"] : (s + 1) * hp["batch_size"]]
            x = _augment(pixels[idx].float(), gen)
            if occ_aug:
                x = _occlude(x, gen, hp["occ_prob"], hp["occ_max"])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                img = net.image(reference.intensity(x))
                txt = net.text(text_base[labels[idx]])
            loss = _contrastive_loss(img.float(), txt.float(), labels[idx], net.logit_scale.exp().clamp(max=100))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        history.append(round(running / steps_per_epoch, 4))
    bar.close()
    val = _val_recall(net, v_pixels, v_labels, v_text)
    record = {
        "variant": variant, **hp, "train_images": len(pixels), "train_unique_texts": len(text_base),
        "val_images": len(v_pixels), "val_recall": val, "epoch_loss": history,
        "data_s": round(t_data, 1), "total_s": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(), "code_version": code_version(), "environment": environment(),
        "dataset": {"name": "iu-phantom", "split": "train", "policy": ds.policy, **ds.provenance},
        "command": f"cxrbench train-reference --variant {variant}",
    }
    path = Path(out) if out else reference.weights_path(variant)
    reference.save_weights(net, path, record)
    record["path"] = str(path)
    return record
