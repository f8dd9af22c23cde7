"""Key translation between checkpoints written with transformers 4.x and the installed transformers.

MedCLIP and CXR-CLIP released checkpoints written with transformers 4.2x. transformers 5 renamed the Swin
modules and stopped storing some deterministic buffers:

    4.x                                                   5.x
    ...attention.self.query / key / value                 ...attention.q_proj / k_proj / v_proj
    ...attention.output.dense                             ...attention.o_proj
    ...attention.self.relative_position_bias_table        ...attention.relative_position_bias.relative_position_bias_table
    ...attention.self.relative_position_index (buffer)    not stored (recomputed)
    ...intermediate.dense / ...output.dense (block MLP)    ...mlp.fc1 / ...mlp.fc2
    BERT embeddings.position_ids (buffer)                 not stored

``translate_state_dict`` renames a checkpoint's keys into whatever naming the *installed* model uses (it looks
at the model's own keys, so it works under transformers 4 and 5) and returns the names of dropped
deterministic buffers, which callers pass on as known-harmless. Anything it cannot map is left as is so that the
loud key check in :mod:`cxrbench.models.checkpoint` names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

# (old 4.x suffix, new 5.x suffix) inside a Swin block ("...blocks.N.")
_SWIN_BLOCK_RENAMES = (
    ("attention.self.query.", "attention.q_proj."),
    ("attention.self.key.", "attention.k_proj."),
    ("attention.self.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
    ("attention.self.relative_position_bias_table", "attention.relative_position_bias.relative_position_bias_table"),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
)

#: Deterministic buffers that old checkpoints store and new models recompute. Regular expressions.
DERIVED_BUFFERS = (
    r"(^|\.)relative_position_index$",
    r"(^|\.)embeddings\.position_ids$",
)

_BLOCK = re.compile(r"^(?P<head>.*\.blocks\.\d+\.)(?P<tail>.*)$")


def _rename_swin_key(key: str, old_to_new: bool) -> str:
    m = _BLOCK.match(key)
    if not m:
        return key
    head, tail = m.group("head"), m.group("tail")
    for old, new in _SWIN_BLOCK_RENAMES:
        src, dst = (old, new) if old_to_new else (new, old)
        if tail.startswith(src):
            return head + dst + tail[len(src):]
    return key


def translate_state_dict(
    state: Mapping[str, torch.Tensor], model_keys: Iterable[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename ``state`` into the naming of ``model_keys``; drop derived buffers the model does not store.

    Returns (renamed state, dropped keys).
    """
    model_keys = set(model_keys)
    model_is_new = any(".attention.q_proj." in k for k in model_keys)
    model_is_old = any(".attention.self.query." in k for k in model_keys)
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        new_key = key
        if model_is_new and ".blocks." in key:
            new_key = _rename_swin_key(key, old_to_new=True)
        elif model_is_old and ".blocks." in key:
            new_key = _rename_swin_key(key, old_to_new=False)
        if new_key not in model_keys and any(re.search(p, new_key) for p in DERIVED_BUFFERS):
            dropped.append(key)
            continue
        out[new_key] = value
    return out, dropped
