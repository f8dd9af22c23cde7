"""The render entry point: the patient, the findings' random streams, and the stages in order.

:func:`render` draws the patient (:mod:`~cxrbench.phantom.anatomy`) and runs every anatomy hook, draws the
view's base anatomy, textures the lungs, runs the air hooks, composes ``D``, runs the overlay hooks, and tones
the result. ``RENDERER_VERSION`` keys the on-disk cache: bump it whenever the pixels of any render change.
:func:`render_with_lungs` also returns the lung-field mask, versioned apart (``LUNG_MASK_VERSION``).
"""

from __future__ import annotations

import zlib

import numpy as np

from cxrbench.phantom.air_hooks import air_emphysema_prune
from cxrbench.phantom.anatomy import Anatomy, draw_patient
from cxrbench.phantom.canvas import Canvas
from cxrbench.phantom.compose import compose_density, film_tone, parenchyma
from cxrbench.phantom.frontal import frontal_base
from cxrbench.phantom.handlers import HANDLERS
from cxrbench.phantom.lateral import lateral_base
from cxrbench.phantom.placement import resolve_sides
from cxrbench.phantom.spec import VIEWS, Finding, PhantomSpec

RENDERER_VERSION = "1"


def _seed64(seed: int) -> int:
    return int(seed) & ((1 << 64) - 1)


def _finding_rng(seed: int, index: int, kind: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, 7919, index, zlib.crc32(kind.encode())]))


def _prepare(spec: PhantomSpec, seed: int) -> tuple[Anatomy, list[tuple[Finding, list[str], np.random.Generator]]]:
    """Patient plus resolved findings, after every anatomy hook (identical for both views)."""
    A = draw_patient(seed)
    jobs = []
    for i, f in enumerate(spec.findings):
        handlers = HANDLERS[f.kind]
        rng = _finding_rng(seed, i, f.kind)
        sides = resolve_sides(f, rng, handlers[3])
        if handlers[0] is not None:
            handlers[0](A, f, sides, rng)
        jobs.append((f, sides, rng))
    return A, jobs


#: version of the lung-field masks of :func:`render_with_lungs` (their own cache key; the pixels keep
#: ``RENDERER_VERSION``): bump it whenever a mask changes
LUNG_MASK_VERSION = "1"


def lung_field(cv: Canvas) -> np.ndarray:
    """The anatomical lung fields of a drawn canvas as (n, n) bool: inside the lungs (``hemi["both"]`` >= 0.5)
    and outside the heart's silhouette. The lungs as the patient's anatomy draws them, before any finding fills or
    collapses them (an effusion or a pneumothorax lies inside the lung field)."""
    return (cv.hemi["both"] >= 0.5) & (cv.heart < 0.5)


def render(spec: PhantomSpec, *, seed: int, view: str = "frontal", size: int = 512) -> np.ndarray:
    """Render one phantom radiograph: uint8 ``(size, size)``, bright = dense, dark = air.

    ``view`` is ``"frontal"`` (PA) or ``"lateral"``; ``size`` >= 64. The same ``seed`` draws the same patient
    in both views; the output is bit-identical for identical arguments.
    """
    return _render(spec, seed, view, size)[0]


def render_with_lungs(spec: PhantomSpec, *, seed: int, view: str = "frontal",
                      size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render`'s image (the very same pixels) and its lung-field mask, (size, size) bool
    (:func:`lung_field`, :data:`LUNG_MASK_VERSION`), from one render."""
    return _render(spec, seed, view, size)


def _render(spec: PhantomSpec, seed: int, view: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    if view not in VIEWS:
        raise ValueError(f"view must be 'frontal' or 'lateral', got {view!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"size must be an int >= 64, got {size!r}")
    unknown = sorted({f.kind for f in spec.findings} - set(HANDLERS))
    if unknown:
        raise ValueError(f"unknown finding kind(s) {', '.join(map(repr, unknown))}; see FINDING_KINDS")
    n = int(size)
    s = _seed64(seed)
    A, jobs = _prepare(spec, s)
    cv = Canvas(n, view)
    view_rng = np.random.Generator(np.random.PCG64([s, 104729, VIEWS.index(view)]))
    base = frontal_base if view == "frontal" else lateral_base
    T, vessels = base(A, cv, view_rng)
    lungs = lung_field(cv)  # read from the base anatomy only: the pixels do not depend on it
    parenchyma(cv, view_rng)
    if A.vessel_prune > 0:
        air_emphysema_prune(cv, A, Finding("emphysema"), [], view_rng)
    for f, sides, rng in jobs:
        hook = HANDLERS[f.kind][1]
        if hook is not None:
            hook(cv, A, f, sides, rng)
    compose_density(A, cv, T, vessels)
    for f, sides, rng in jobs:
        hook = HANDLERS[f.kind][2]
        if hook is not None:
            hook(cv, A, f, sides, rng)
    return film_tone(A, cv, view_rng), lungs
