"""Deterministic phantom chest radiographs rendered from a study's MeSH tags.

The IU chest X-ray reports are real; their images are replaced by these synthetic ("phantom") radiographs so
that a model has to read the findings named in the report off the pixels. Everything here is plain numpy and
Pillow, single-threaded, and deterministic: the output depends only on ``(spec, seed, view, size)``.

Public API
----------
``parse_mesh(majors) -> PhantomSpec``  maps the ``<major>`` strings of one study to :class:`Finding` objects.
``render(spec, seed=..., view=..., size=...) -> uint8 (size, size)``  draws one radiograph.
``render_with_lungs(...) -> (uint8 image, bool lung-field mask)``  the same image and its lung fields
(lungs minus the heart's silhouette), versioned by ``LUNG_MASK_VERSION``.
``describe(spec) -> str``  one line such as ``"cardiomegaly(mild); pleural_effusion(right, small)"``.
``RENDERER_VERSION``  is part of the on-disk cache key: bump it whenever the pixels of any render change.
``FINDING_DOC`` / ``FINDING_KINDS``  every kind the renderer draws; ``SIDES``, ``ZONES``, ``SEVERITIES``,
``VIEWS``  the values a :class:`Finding` and :func:`render` accept.

Coordinates
-----------
Everything is laid out in normalised image coordinates ``u`` (column, 0 = image left .. 1 = image right) and
``v`` (row, 0 = top .. 1 = bottom), so the same geometry renders at any ``size``. Frontal (PA) view: the
patient faces the viewer, so the patient's RIGHT side is the image LEFT (``sg = -1`` in the code) and the
patient's left is the image right (``sg = +1``). Lateral view: the patient faces image left, so anterior is
image left and the spine is at the image right.

Intensity model
---------------
The renderer accumulates an attenuation ("density") map ``D`` and maps it to brightness like film:
``I = 1 - exp(-k * D)`` then a per-patient window and gamma, so bright = dense (bone, fluid, metal) and
dark = air. :mod:`~cxrbench.phantom.frontal` and :mod:`~cxrbench.phantom.lateral` describe how each view
builds ``D`` from soft tissue, lung air, bones and vessels; :mod:`~cxrbench.phantom.anatomy` lists what
varies between patients (from ``seed`` only: the same seed gives the same patient in both views).

Findings
--------
Each :class:`Finding` kind has up to three hooks, listed in :mod:`~cxrbench.phantom.handlers` (which also
explains location, side and severity): *anatomy* hooks change the patient before drawing, *air* hooks change
the lung air map, *overlay* hooks add density in small windows.

Randomness and determinism: the patient is drawn from ``Generator(PCG64(seed))``; each finding gets its own
stream seeded by ``(seed, index, crc32(kind))`` and the view-specific parts (noise, vessel tree, texture)
their own stream, so adding a finding never changes the rest of the image. No global RNG, clock or threads.
Array maths uses only IEEE-exact operations (+, -, *, /, sqrt, comparisons) plus Pillow; transcendental
functions are evaluated with :mod:`math` on scalars (``canvas.expneg`` replaces ``np.exp``), because numpy's
SIMD ``exp``/``sin``/``pow`` can differ in the last bit between CPUs and would break bit-identical caches.

Speed: ~21-23 ms per 512 x 512 image on one core (numpy + Pillow, no per-pixel Python): full-frame work is a
handful of broadcast operations on (rows x 1) and (1 x cols) profiles; everything else is drawn in small
windows, vector shapes are rasterised by Pillow, and the film curve is a lookup table.

Modules
-------
Imports run one way, down this list: a module imports only modules listed before it.

``spec``             the vocabulary (sides, zones, severities, views, ``FINDING_DOC``), ``Finding``,
                     ``PhantomSpec`` and ``describe``
``mesh``             ``parse_mesh``: MeSH ``<major>`` strings to a ``PhantomSpec`` (the ``_RULES`` table)
``anatomy``          the patient drawn from the seed, the severity scale and the side sign
``canvas``           the arrays of one render and the drawing primitives (imports nothing from the package)
``frontal``          PA base anatomy: body, lungs, heart, airways, ribs, bones, vessels, breasts, stomach
``lateral``          lateral base anatomy
``compose``          both views: lung texture, composition of ``D`` and the film curve
``placement``        where a finding goes: lung zones, resolved sides, how many
``anatomy_hooks``, ``air_hooks``, ``lung_overlays``, ``body_overlays``, ``device_overlays``
                     the per-kind hooks
``handlers``         the table kind -> (anatomy hook, air hook, overlay hook, default side)
``render``           ``RENDERER_VERSION``, the random streams and :func:`render`

Adding a kind: add it to ``FINDING_DOC`` in ``spec.py`` (which defines ``FINDING_KINDS``), map MeSH terms to
it in ``_RULES`` in ``mesh.py``, write its hooks in the hook module of its group, list them in ``HANDLERS`` in
``handlers.py``, extend ``tests/phantom/test_phantom.py``, and bump ``RENDERER_VERSION`` in ``render.py``.
"""

from __future__ import annotations

from cxrbench.phantom.mesh import parse_mesh
from cxrbench.phantom.render import LUNG_MASK_VERSION, RENDERER_VERSION, render, render_with_lungs
from cxrbench.phantom.spec import (
    FINDING_DOC,
    FINDING_KINDS,
    SEVERITIES,
    SIDES,
    VIEWS,
    ZONES,
    Finding,
    PhantomSpec,
    describe,
)

__all__ = ["FINDING_DOC", "FINDING_KINDS", "LUNG_MASK_VERSION", "RENDERER_VERSION", "SEVERITIES", "SIDES", "VIEWS",
           "ZONES", "Finding", "PhantomSpec", "describe", "parse_mesh", "render", "render_with_lungs"]
