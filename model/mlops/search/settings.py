"""How the fused retriever scores, as data: what evaluate logs with a run, registry tags by digest, and export
rebuilds, so a registered version answers as it was measured whatever this checkout's prior or thesaurus is by then.
Torch-free: reading or comparing settings never loads the encoder."""

from __future__ import annotations

import hashlib
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from mlops.search.lexical import QueryExpansion, load_query_expansion

# How many tokens the encoder reads of a question and of a passage chunk, and how many questions it encodes at once
# (32: on 2 CPU cores bigger batches pad more and leave the CPU's cache; docs/experiments.md, "Speed"). Every variant
# of the encoder (torch, ONNX) reads the same.
QUERY_MAX_TOKENS = 64
PASSAGE_MAX_TOKENS = 128
QUERY_BATCH = 32

# What can encode the questions: the fine-tuned torch model, or its ONNX graph in fp32 or INT8 (mlops.search.onnx_encoder).
EncoderVariant = Literal["torch-fp32", "onnx-fp32", "onnx-int8"]
ENCODER_VARIANTS: tuple[str, ...] = get_args(EncoderVariant)
TORCH_FP32 = "torch-fp32"

# Users ask about the public API far more than about internals: a small bonus for exported symbols.
PUBLIC_API_PRIOR = 0.1
# A match with another user's question (a labelled-question chunk) is weaker evidence than one with the documentation:
# undiscounted, symbols with labelled questions outrank the right symbol without any (docs/experiments.md, 2026-12-02).
LABELLED_CHUNK_DISCOUNT = 0.1


class RetrievalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bm25_weight: float = Field(ge=0, le=1)
    public_api_prior: float = Field(ge=0)
    query_expansion: QueryExpansion | None
    labelled_chunk_discount: float = Field(0.0, ge=0, le=1)  # subtracted from the cosine of a labelled-question chunk
    # What encodes the questions (the index is the torch encoder's): chosen by evaluate among the accurate enough.
    encoder_variant: EncoderVariant = TORCH_FP32
    # Abstain when no chunk's cosine with the question reaches this (None: always answer): chosen by evaluate on
    # in-domain against off-topic questions (mlops.evaluation.abstention).
    abstain_below: float | None = Field(None, ge=-1, le=1)

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def shipped_settings(bm25_weight: float) -> RetrievalSettings:
    """What a new candidate is measured with: this checkout's public-API prior and thesaurus (users ask in their
    own words: query_expansion.yaml), at the fusion weight chosen on the validation split."""
    return RetrievalSettings(bm25_weight=bm25_weight, public_api_prior=PUBLIC_API_PRIOR, query_expansion=load_query_expansion(),
                             labelled_chunk_discount=LABELLED_CHUNK_DISCOUNT)
