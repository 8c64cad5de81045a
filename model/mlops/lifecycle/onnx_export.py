"""The fine-tuned encoder as ONNX: exported with ``torch.onnx``, fused by ONNX Runtime's transformer optimiser, and
quantised to INT8 (dynamic: weights INT8 per output channel, activations quantised at run time). Static INT8 with
scales calibrated on training questions measured worse (docs/experiments.md, 2026-12-02).

Every file is written into a new folder that replaces the target only when all of them are there, so a failed export
leaves nothing half-written. ``onnx_variants`` lists what it made: files, sizes and SHA-256 digests, which evaluate
logs to the run (and so to every version registered from it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import onnx
import torch
from transformers import AutoModel

from mlops.search.encoder import Encoder
from mlops.search.onnx_encoder import TOKENIZER_FILES, VARIANT_FILES
from mlops.search.settings import QUERY_MAX_TOKENS

RAW_GRAPH = "model.onnx"
OPSET = 17


class _HiddenStates(torch.nn.Module):
    """The encoder's forward pass with positional inputs and one output, as the exporter traces it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask).last_hidden_state


@contextmanager
def _root_logger_untouched():
    """The quantiser configures the root logger (a handler, then advice to pre-process, which a fused graph cannot
    take), after which every library's debug records would print: its level and handlers are put back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_onnx(encoder: Encoder, target: Path, echo=print) -> dict[str, dict]:
    """Write the tokenizer and the ONNX variants of ``encoder`` into ``target``; return ``onnx_variants(target)``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".onnx-", dir=target.parent))
    try:
        sample = encoder.tokenize(["how do I save a model", "stop generating when a word appears"], QUERY_MAX_TOKENS)
        names = ["input_ids", "token_type_ids", "attention_mask"]  # _HiddenStates.forward's order
        axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
        # The same weights with eager attention: ORT's optimiser fuses that graph (Attention, EmbedLayerNormalization)
        # and not the one scaled_dot_product_attention traces to.
        model = AutoModel.from_pretrained(encoder.path, attn_implementation="eager").eval()
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(_HiddenStates(model), tuple(sample[n].cpu() for n in names), str(staging / RAW_GRAPH),
                              input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
        config = model.config
        optimized = optimize_model(str(staging / RAW_GRAPH), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size)
        fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
        echo(f"  ONNX Runtime fused {fused}")
        optimized.save_model_to_file(str(staging / VARIANT_FILES["onnx-fp32"]))
        # The fused operators are com.microsoft ones that ONNX shape inference cannot type: their outputs are float.
        # Per-channel weight scales: the questions' vectors keep cosine 0.99 to fp32's at worst, against 0.95 per tensor.
        with _root_logger_untouched():
            quantize_dynamic(staging / VARIANT_FILES["onnx-fp32"], staging / VARIANT_FILES["onnx-int8"], weight_type=QuantType.QInt8,
                             per_channel=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        (staging / RAW_GRAPH).unlink()
        for name in TOKENIZER_FILES:
            if (encoder.path / name).is_file():
                shutil.copy2(encoder.path / name, staging / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return onnx_variants(target)


def onnx_variants(folder: Path) -> dict[str, dict]:
    """Per ONNX variant, its file, size in bytes and SHA-256."""
    return {variant: {"file": name, "bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
            for variant, name in VARIANT_FILES.items()}
