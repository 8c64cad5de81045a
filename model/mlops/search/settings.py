"""How the fused retriever scores, as data: what evaluate logs with a run, registry tags by digest, and export
rebuilds, so a registered version answers as it was measured whatever this checkout's prior or thesaurus is by then.
Torch-free: reading or comparing settings never loads the encoder."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from mlops.search.lexical import QueryExpansion, load_query_expansion

# Users ask about the public API far more than about internals: a small bonus for exported symbols.
PUBLIC_API_PRIOR = 0.1


class RetrievalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bm25_weight: float = Field(ge=0, le=1)
    public_api_prior: float = Field(ge=0)
    query_expansion: QueryExpansion | None

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def shipped_settings(bm25_weight: float) -> RetrievalSettings:
    """What a new candidate is measured with: this checkout's public-API prior and thesaurus (users ask in their
    own words: query_expansion.yaml), at the fusion weight chosen on the validation split."""
    return RetrievalSettings(bm25_weight=bm25_weight, public_api_prior=PUBLIC_API_PRIOR, query_expansion=load_query_expansion())
