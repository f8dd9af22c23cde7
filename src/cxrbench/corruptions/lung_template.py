"""A fixed lung-field template in the model frame, for ``lungs`` occlusion when no per-image lung masks exist.

It is NOT a segmentation: two rounded shapes placed where the lung fields of a typical PA chest radiograph lie
when the image fills the frame (the patient's right lung on the image's left). Results that use it are
recorded as ``lungs(template)``. Defined in normalised coordinates ``u = (col + 0.5) / W`` (left to right) and
``v = (row + 0.5) / H`` (top to bottom), so it works at any frame size; a pixel belongs to the template when its
centre does.

Each lung is an ellipse cut by a vertical mediastinal line and a horizontal diaphragm line; the image-right lung
(the patient's left) also loses the part inside the heart ellipse:

=====================  ==============  ===============  ==========  ===========  ==================
lung                   centre (u, v)   semi-axes (u, v) medial cut  dome cut     minus
=====================  ==============  ===============  ==========  ===========  ==================
image left (pt right)  (0.31, 0.45)    (0.15, 0.32)     u <= 0.455  v <= 0.70    --
image right (pt left)  (0.69, 0.46)    (0.14, 0.32)     u >= 0.545  v <= 0.72    heart ellipse
=====================  ==============  ===============  ==========  ===========  ==================

heart ellipse: centre (0.56, 0.67), semi-axes (0.12, 0.10). The template covers about 26% of the frame.
Models that pad the image into the frame (letterboxing) shift the lungs away from it; give masks for those.
"""

from __future__ import annotations

import torch

#: bump when the shape changes (recorded in params)
TEMPLATE_VERSION = 1

_LUNGS = (
    # centre u, centre v, semi-axis u, semi-axis v, medial cut (sign, u), dome v
    (0.31, 0.45, 0.15, 0.32, (-1.0, 0.455), 0.70),
    (0.69, 0.46, 0.14, 0.32, (+1.0, 0.545), 0.72),
)
_HEART = (0.56, 0.67, 0.12, 0.10)


def _inside(u: torch.Tensor, v: torch.Tensor, cu: float, cv: float, au: float, av: float) -> torch.Tensor:
    return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0


def lung_template(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W) bool: the template's lung fields in an H x W frame (computed on the CPU in float64)."""
    v = ((torch.arange(h, dtype=torch.float64) + 0.5) / h).view(-1, 1)
    u = ((torch.arange(w, dtype=torch.float64) + 0.5) / w).view(1, -1)
    out = torch.zeros(h, w, dtype=torch.bool)
    for cu, cv, au, av, (side, cut), dome in _LUNGS:
        medial = (u - cut) * side >= 0.0
        out |= _inside(u, v, cu, cv, au, av) & medial & (v <= dome)
    out &= ~(_inside(u, v, *_HEART) & (u > 0.5))
    return out.to(device) if device is not None else out
