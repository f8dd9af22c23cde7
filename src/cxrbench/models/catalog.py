"""The built-in models (one table row each) and the generic families a models.yaml entry can use."""

from cxrbench.models import sources
from cxrbench.models.registry import Family, ModelSpec, register, register_family
from cxrbench.models.sources import HOW_TO_GET

# -- generic families: a models.yaml entry `name: {family: open_clip | hf, ...}` defines a model ------------------
_OPEN_CLIP = "cxrbench.models.open_clip_family:build"
_HF = "cxrbench.models.hf_family:build"
register_family(Family(
    name="open_clip", builder=_OPEN_CLIP, keys=("checkpoint",),
    options=("arch", "quick_gelu", "preprocess"),
    describe="open_clip model ({settings}); preprocessing from its preprocess config",
    how_to_get=sources.FAMILY_HOW_TO_GET["open_clip"],
))
register_family(Family(
    name="hf", builder=_HF, keys=("checkpoint",), options=("trust_remote_code", "padding", "max_length"),
    aliases={"path": "checkpoint"},
    describe="Hugging Face dual encoder ({settings}); its image processor and tokenizer",
    how_to_get=sources.FAMILY_HOW_TO_GET["hf"],
))

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

# -- released models (adapters in cxrbench.models.<family>; imported only when a model is built) ------------
_OPENAI = "cxrbench.models.openai_clip:build"
register(ModelSpec(
    name="clip", family="openai_clip", builder=_OPENAI,
    description="OpenAI CLIP ViT-B/32 (general-domain baseline): OpenAI's resize/centre-crop preprocessing, "
                "CLIP BPE text tower (77 tokens, end-of-text pooling)",
    keys=("checkpoint",), how_to_get=HOW_TO_GET["clip"], options={"preprocessing": "openai"},
))
register(ModelSpec(
    name="cxr_repair", family="openai_clip", builder=_OPENAI,
    description="CXR-RePaiR: CLIP ViT-B/32 fine-tuned on MIMIC-CXR; grayscale pad to 320, CXR mean/std, "
                "bicubic resize to 224 without antialiasing (as written upstream)",
    keys=("checkpoint",), how_to_get=HOW_TO_GET["cxr_repair"],
    options={"preprocessing": "cxr_pad320", "antialias": False},
))
register(ModelSpec(
    name="chexzero", family="openai_clip", builder=_OPENAI,
    description="CheXzero: CLIP ViT-B/32 trained on MIMIC-CXR; same preprocessing as cxr_repair",
    keys=("checkpoint",), how_to_get=HOW_TO_GET["chexzero"],
    options={"preprocessing": "cxr_pad320", "antialias": False},
))
register(ModelSpec(
    name="medclip", family="medclip", builder="cxrbench.models.medclip:build",
    description="MedCLIP-ViT: Swin-T image tower + Bio_ClinicalBERT (mean of 3 layers' token means), "
                "grayscale pad-to-square 224",
    keys=("checkpoint", "tokenizer"), how_to_get=HOW_TO_GET["medclip"], options={"vision": "swin"},
))
register(ModelSpec(
    name="medclip_resnet", family="medclip", builder="cxrbench.models.medclip:build",
    description="MedCLIP-ResNet: ResNet-50 image tower + Bio_ClinicalBERT, as medclip",
    keys=("checkpoint", "tokenizer"), how_to_get=HOW_TO_GET["medclip_resnet"], options={"vision": "resnet"},
))
register(ModelSpec(
    name="cxr_clip", family="cxr_clip", builder="cxrbench.models.cxr_clip:build",
    description="CXR-CLIP Swin-Tiny + Bio_ClinicalBERT (release .tar); RGB resize/centre-crop 224, "
                "mean=std=0.5, [SEP]-token text pooling, 256 tokens",
    keys=("checkpoint", "text_encoder"), how_to_get=HOW_TO_GET["cxr_clip"], options={"image_encoder": "swin"},
))
register(ModelSpec(
    name="cxr_clip_r50", family="cxr_clip", builder="cxrbench.models.cxr_clip:build",
    description="CXR-CLIP ResNet-50 + Bio_ClinicalBERT (release .tar); as cxr_clip with ImageNet mean/std",
    keys=("checkpoint", "text_encoder"), how_to_get=HOW_TO_GET["cxr_clip_r50"],
    options={"image_encoder": "resnet"},
))
register(ModelSpec(
    name="biomedclip", family="biomedclip", builder="cxrbench.models.biomedclip:build",
    description="BiomedCLIP ViT-B/16 + PubMedBERT (open_clip hub release, PMC-15M); RGB resize/centre-crop "
                "224, CLIP mean/std, 256-token [CLS] text pooling",
    keys=("checkpoint", "text_config", "tokenizer"), how_to_get=HOW_TO_GET["biomedclip"],
))
register(ModelSpec(
    name="biovil", family="biovil", builder="cxrbench.models.biovil:build",
    description="BioViL ResNet-50 + CXR-BERT-specialized (hi-ml-multimodal), 128-d joint space; grayscale "
                "resize 512 / centre-crop 480, no mean/std",
    keys=("checkpoint", "text_encoder"), how_to_get=HOW_TO_GET["biovil"],
))
register(ModelSpec(
    name="gloria", family="gloria", builder="cxrbench.models.gloria:build",
    description="GLoRIA ResNet-50 + Bio_ClinicalBERT (chexpert_resnet50.ckpt), global embeddings: grayscale "
                "INTER_AREA resize longest side 256 + zero pad, centre crop 224, mean=std=0.5, bilinear "
                "upsample to 299; text: sum of the last 4 BERT layers over all tokens, 97 tokens",
    keys=("checkpoint", "text_encoder"), how_to_get=HOW_TO_GET["gloria"],
))

# -- released models that are nothing but configuration of a generic family --------------------------------------
register(ModelSpec(
    name="medsiglip", family="hf", builder=_HF,
    description="MedSigLIP (google/medsiglip-448): SigLIP so400m at 448 px, medical image-text pairs incl. chest "
                "X-rays; SiglipImageProcessor (bicubic squash to 448, mean=std=0.5), SigLIP tokenizer padded to 64",
    keys=("checkpoint",), how_to_get=HOW_TO_GET["medsiglip"],
    options={"default_checkpoint": sources.MEDSIGLIP_HUB_ID},
))
register(ModelSpec(
    name="pubmedclip", family="hf", builder=_HF,
    description="PubMedCLIP (flaviagiammarino/pubmed-clip-vit-base-patch32): CLIP ViT-B/32 fine-tuned on ROCO; "
                "CLIPImageProcessor (bicubic shortest side 224, centre crop), CLIP tokenizer",
    keys=("checkpoint",), how_to_get=HOW_TO_GET["pubmedclip"],
    options={"default_checkpoint": sources.PUBMEDCLIP_HUB_ID},
))
