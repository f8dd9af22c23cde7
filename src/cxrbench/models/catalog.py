"""The built-in models: one table row each."""

from cxrbench.models.registry import ModelSpec, register

_REFERENCE_HOW = "packaged with cxrbench (src/cxrbench/weights); rebuild with `cxrbench train-reference`"

register(ModelSpec(
    name="reference", family="reference", builder="cxrbench.models.reference:build",
    description="Project-trained CNN image tower + frozen MiniLM text tower with a learned projection "
                "(trained on the iu-phantom training split)",
    keys=("checkpoint", "text_encoder"), how_to_get=_REFERENCE_HOW,
))
register(ModelSpec(
    name="reference_occaug", family="reference", builder="cxrbench.models.reference:build",
    description="As `reference`, trained with random-occlusion augmentation",
    keys=("checkpoint", "text_encoder"), how_to_get=_REFERENCE_HOW,
))
register(ModelSpec(
    name="random", family="reference", builder="cxrbench.models.reference:build",
    description="Chance floor: the reference architecture with untrained (seeded random) towers",
    keys=("text_encoder",), how_to_get="needs no weights", options={"untrained": True},
))
