"""Where each model's released files come from: plain strings shared by the catalog and the adapters.

This module imports nothing, so the catalog (read by every ``import cxrbench.models``) can show these texts
without importing an adapter module or any of its optional dependencies.
"""

from __future__ import annotations

OPENAI_VIT_B_32_URL = (
    "https://openaipublic.azureedge.net/clip/models/"
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"
)
CXR_REPAIR_URL = "https://stanfordmedicine.box.com/s/dbebk0jr5651dj8x1cu6b6kqyuuvz3ml"
CHEXZERO_URL = "https://drive.google.com/drive/folders/1makFLiEMbSleYltaRxw81aBhEDMpVwno"

#: MedCLIP's release zips, by vision tower (upstream's medclip/medclip_*_weight.txt name the same URLs).
MEDCLIP_RELEASES = {
    "swin": "https://storage.googleapis.com/pytrial/medclip-vit-pretrained.zip",
    "resnet": "https://storage.googleapis.com/pytrial/medclip-pretrained.zip",
}
MEDCLIP_WEIGHTS_NAME = "pytorch_model.bin"
BIO_CLINICALBERT_ID = "emilyalsentzer/Bio_ClinicalBERT"

CXR_CLIP_RELEASES = (
    "the CXR-CLIP authors' checkpoints linked from the README of github.com/kakaobrain/cxr-clip "
    "('Pre-trained model checkpoint': swint_m.tar / swint_mc.tar / swint_mcc.tar for Swin-Tiny, "
    "r50_m.tar / r50_mc.tar / r50_mcc.tar for ResNet-50)"
)
CXR_CLIP_TEXT_ENCODER_HELP = (
    f"a folder holding config.json and vocab.txt of {BIO_CLINICALBERT_ID} (its weights are not "
    "needed: the CXR-CLIP checkpoint carries them), or that Hugging Face id if it is in the local HF cache"
)

BIOMEDCLIP_HUB_ID = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
BIOMEDBERT_HUB_ID = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
BIOVIL_HUB_ID = "microsoft/BiomedVLP-CXR-BERT-specialized"
BIOVIL_IMAGE_FILE = "biovil_image_resnet50_proj_size_128.pt"
MEDSIGLIP_HUB_ID = "google/medsiglip-448"
PUBMEDCLIP_HUB_ID = "flaviagiammarino/pubmed-clip-vit-base-patch32"
GLORIA_CHECKPOINT_URL = "https://stanfordmedicine.box.com/s/j5h7q99f3pfi7enc0dom73m4nsm6yzvh"
GLORIA_CHECKPOINT_NAME = "chexpert_resnet50.ckpt"

_MEDCLIP_TOKENIZER = (
    f"`tokenizer`: a folder with vocab.txt (and config.json) of {BIO_CLINICALBERT_ID}, or that id in the local "
    "Hugging Face cache"
)

#: Shown when a model's weights are missing: where to get them and which file each setting points at.
HOW_TO_GET: dict[str, str] = {
    "clip": (
        f"OpenAI's ViT-B-32.pt (a TorchScript archive, the file clip.load('ViT-B/32') downloads from "
        f"{OPENAI_VIT_B_32_URL}); `checkpoint` points at that file (an open_clip or plain state dict of the same "
        "model also loads)"
    ),
    "cxr_repair": (
        f"CXR-RePaiR's CLIP checkpoint trained on MIMIC-CXR (github.com/rajpurkarlab/CXR-RePaiR README: "
        f"{CXR_REPAIR_URL}); `checkpoint` points at the downloaded .pt state dict"
    ),
    "chexzero": (
        f"a CheXzero checkpoint from the Google Drive folder linked in the github.com/rajpurkarlab/CheXzero "
        f"README, 'Model Checkpoints' ({CHEXZERO_URL}); `checkpoint` points at one .pt state dict of it"
    ),
    "medclip": (
        f"download and unzip {MEDCLIP_RELEASES['swin']} (MedCLIP-ViT); `checkpoint` points at its "
        f"{MEDCLIP_WEIGHTS_NAME} (or the folder); {_MEDCLIP_TOKENIZER}"
    ),
    "medclip_resnet": (
        f"download and unzip {MEDCLIP_RELEASES['resnet']} (MedCLIP-ResNet); `checkpoint` points at its "
        f"{MEDCLIP_WEIGHTS_NAME} (or the folder); {_MEDCLIP_TOKENIZER}"
    ),
    "cxr_clip": (
        f"{CXR_CLIP_RELEASES}; `checkpoint` points at a Swin-Tiny .tar (e.g. swint_mcc.tar), `text_encoder` at "
        f"{CXR_CLIP_TEXT_ENCODER_HELP}"
    ),
    "cxr_clip_r50": (
        f"{CXR_CLIP_RELEASES}; `checkpoint` points at a ResNet-50 .tar (e.g. r50_mcc.tar), `text_encoder` at "
        f"{CXR_CLIP_TEXT_ENCODER_HELP}"
    ),
    "biomedclip": (
        f"Download the Hugging Face repo {BIOMEDCLIP_HUB_ID} (open_clip_config.json, open_clip_pytorch_model.bin, "
        f"tokenizer files) and the config.json of {BIOMEDBERT_HUB_ID} on a machine with internet (e.g. "
        "`hf download ...`); point `checkpoint` at the BiomedCLIP folder (or keep both repos in the Hugging Face "
        "cache) and `text_config` at the BiomedBERT folder."
    ),
    "biovil": (
        f"Download the Hugging Face repo {BIOVIL_HUB_ID} at revision v1.1 (config.json, pytorch_model.bin, "
        f"vocab.txt, tokenizer files and {BIOVIL_IMAGE_FILE}) on a machine with internet, e.g. "
        f"`hf download {BIOVIL_HUB_ID} --revision v1.1`; keep it in the Hugging Face cache or point `checkpoint` "
        f"at {BIOVIL_IMAGE_FILE} and `text_encoder` at the folder."
    ),
    "medsiglip": (
        f"Download the Hugging Face repo {MEDSIGLIP_HUB_ID} (gated: accept the Health AI Developer Foundations "
        f"terms on its page first; config.json, model.safetensors, preprocessor_config.json, tokenizer files) on a "
        f"machine with internet, e.g. `hf download {MEDSIGLIP_HUB_ID}`; keep it in the Hugging Face cache or point "
        "`checkpoint` at the folder. Its SigLIP tokenizer needs the sentencepiece and protobuf packages."
    ),
    "pubmedclip": (
        f"Download the Hugging Face repo {PUBMEDCLIP_HUB_ID} (config.json, pytorch_model.bin, "
        f"preprocessor_config.json, vocab.json, merges.txt, tokenizer files) on a machine with internet, e.g. "
        f"`hf download {PUBMEDCLIP_HUB_ID}`; keep it in the Hugging Face cache or point `checkpoint` at the folder."
    ),
    "gloria": (
        f"GLoRIA's {GLORIA_CHECKPOINT_NAME} (the PyTorch Lightning checkpoint linked from the "
        f"github.com/marshuang80/gloria README: {GLORIA_CHECKPOINT_URL}); `checkpoint` points at that file, "
        f"`text_encoder` at a folder holding config.json and vocab.txt of {BIO_CLINICALBERT_ID} (its weights are "
        "not needed: the GLoRIA checkpoint carries them), or that Hugging Face id if it is in the local HF cache"
    ),
}

#: The generic families' "where to get it" (a models.yaml entry names its own files).
FAMILY_HOW_TO_GET: dict[str, str] = {
    "open_clip": (
        "`checkpoint` is an open_clip checkpoint file (with `arch`), a `local-dir:` folder holding "
        "open_clip_config.json and the weights, or an `hf-hub:org/name` id in the local Hugging Face cache"
    ),
    "hf": (
        "`checkpoint` (alias `path`) is a Hugging Face model folder (config.json, weights, preprocessor and "
        "tokenizer files) or a hub id in the local Hugging Face cache"
    ),
}
