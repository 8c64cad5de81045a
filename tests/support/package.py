"""The small synthetic package the tests read (written, never imported), its natural questions, and the QA model's name."""

from __future__ import annotations

import textwrap
from pathlib import Path

# (module path, qualified name, docstring): enough distinct topics for retrieval to be meaningful.
MINI_API = [
    ("minilib/training.py", "Trainer", "Runs the training loop over a dataset with an optimizer and a learning rate schedule."),
    ("minilib/training.py", "Trainer.save_checkpoint", "Saves the model weights and optimizer state to a checkpoint folder on disk."),
    ("minilib/training.py", "Trainer.resume", "Resumes an interrupted training run from the last checkpoint folder."),
    ("minilib/training.py", "set_seed", "Sets the random seed of python, numpy and torch so that runs are reproducible."),
    ("minilib/training.py", "EarlyStopping", "Stops training when the validation metric has not improved for a number of evaluations."),
    ("minilib/training.py", "linear_warmup_schedule", "Creates a learning rate schedule that warms up linearly and then decays to zero."),
    ("minilib/generation/utils.py", "generate", "Generates text token by token from a prompt with greedy search, sampling or beam search."),
    ("minilib/generation/utils.py", "TextStreamer", "Prints generated tokens to the console as soon as they are produced."),
    ("minilib/generation/utils.py", "StopOnWords", "Stops generation as soon as one of the given words appears in the output."),
    ("minilib/generation/utils.py", "RepetitionPenalty", "Penalizes tokens that were already generated so the output repeats itself less."),
    ("minilib/generation/utils.py", "TopPSampler", "Samples the next token from the smallest set whose cumulative probability exceeds p."),
    ("minilib/tokenization.py", "Tokenizer", "Splits text into tokens and maps them to integer ids from a vocabulary."),
    ("minilib/tokenization.py", "Tokenizer.pad", "Pads a batch of token id sequences to the same length with the padding token."),
    ("minilib/tokenization.py", "Tokenizer.truncate", "Cuts sequences that are longer than the maximum length of the model."),
    ("minilib/tokenization.py", "Tokenizer.add_tokens", "Adds new tokens to the vocabulary and returns how many were added."),
    ("minilib/tokenization.py", "Tokenizer.decode", "Converts a list of token ids back into a readable string."),
    ("minilib/modeling.py", "Model", "Base class of all neural network models with loading and saving helpers."),
    ("minilib/modeling.py", "Model.from_pretrained", "Loads a model and its configuration from a local folder of saved weights."),
    ("minilib/modeling.py", "Model.save_pretrained", "Writes the model weights and configuration to a folder so it can be loaded again."),
    ("minilib/modeling.py", "Model.resize_token_embeddings", "Resizes the input embedding matrix after tokens were added to the vocabulary."),
    ("minilib/modeling.py", "Model.enable_checkpointing", "Recomputes activations in the backward pass to trade compute for lower memory use."),
    ("minilib/modeling.py", "Model.to_device", "Moves every parameter of the model to the given GPU or CPU device."),
    ("minilib/quantization.py", "QuantizationConfig", "Describes how to quantize weights to 8 or 4 bits to shrink memory use."),
    ("minilib/quantization.py", "quantize", "Replaces linear layers with low-bit integer versions according to a quantization config."),
    ("minilib/logging.py", "set_verbosity", "Changes how many log messages the library prints, from debug to errors only."),
    ("minilib/logging.py", "disable_progress_bars", "Turns off the progress bars shown while downloading or training."),
    ("minilib/data/collators.py", "PaddingCollator", "Builds batches from examples, padding them dynamically to the longest one."),
    ("minilib/data/collators.py", "MaskingCollator", "Randomly masks tokens in a batch for masked language model pretraining."),
    ("minilib/pipelines.py", "pipeline", "Builds a ready-to-use inference pipeline for a task such as classification or translation."),
    ("minilib/pipelines.py", "Pipeline", "Wraps a model with its preprocessing and postprocessing for one inference task."),
    ("minilib/pipelines.py", "Pipeline.batch_size", "Sets how many inputs the pipeline processes together in one forward pass."),
    ("minilib/export.py", "export_onnx", "Exports a model to the ONNX format for inference outside of python."),
    ("minilib/export.py", "export_torchscript", "Traces a model into TorchScript so that it can be deployed without the source."),
    ("minilib/hub.py", "push_to_hub", "Uploads a model folder to a remote model hub repository under your account."),
    ("minilib/hub.py", "download_file", "Downloads one file from a remote repository into the local cache folder."),
    ("minilib/cache.py", "KeyValueCache", "Stores attention keys and values of past tokens so generation does not recompute them."),
    ("minilib/cache.py", "KeyValueCache.reset", "Empties the cache before a new prompt is processed."),
    ("minilib/metrics.py", "accuracy", "Computes the share of predictions that equal the reference labels."),
    ("minilib/metrics.py", "perplexity", "Computes the exponential of the average negative log likelihood of a text."),
    ("minilib/distributed.py", "init_process_group", "Starts the communication between processes for multi GPU data parallel training."),
    ("minilib/distributed.py", "all_reduce_mean", "Averages a tensor over all processes of a distributed training job."),
]

# Natural questions about MINI_API (what the evaluation's natural set is, for this corpus).
MINI_NATURAL = [
    ("my training crashed halfway, how do I continue where it stopped?", ["minilib.training.Trainer.resume"]),
    ("make results identical every time I run the script", ["minilib.training.set_seed"]),
    ("print words on screen while the model is still writing", ["minilib.generation.utils.TextStreamer"]),
    ("the GPU has too little memory during fine-tuning", ["minilib.modeling.Model.enable_checkpointing", "minilib.quantization.QuantizationConfig"]),
    ("the model keeps saying the same phrase again and again", ["minilib.generation.utils.RepetitionPenalty"]),
    ("too much output in my terminal from the library", ["minilib.logging.set_verbosity"]),
    ("share my model with other people online", ["minilib.hub.push_to_hub"]),
    ("run the model from C++ without python", ["minilib.export.export_onnx", "minilib.export.export_torchscript"]),
]


def write_package(root: Path, api=MINI_API) -> Path:
    """Write a small importable-looking package (never imported: the corpus reads it with ast)."""
    files: dict[str, list[str]] = {}
    for path, qualified, doc in api:
        parts = qualified.split(".")
        lines = files.setdefault(path, [])
        if len(parts) == 1:
            keyword = "class" if parts[0][0].isupper() else "def"
            signature = ":" if keyword == "class" else "(*args, **kwargs):"
            lines.append(f"{keyword} {parts[0]}{signature}\n    \"\"\"{doc}\"\"\"\n")
        else:
            # A method: indent it into the class, which was written first.
            lines.append(f"    def {parts[1]}(self, *args, **kwargs):\n        \"\"\"{doc}\"\"\"\n")
    for path, lines in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines))
        for folder in target.relative_to(root).parents:
            if str(folder) != ".":
                (root / folder / "__init__.py").touch()
    # The package's own __init__ exports a few names (eagerly and through a lazy import table).
    (root / "minilib/__init__.py").write_text(
        'from .training import Trainer, set_seed\n_import_structure = {"generation.utils": ["generate", "TextStreamer"]}\n'
    )
    # Things the corpus must leave out.
    (root / "minilib/_private.py").write_text('def hidden():\n    """Private module."""\n')
    (root / "minilib/training.py").open("a").write(
        '\ndef _helper():\n    """Private function."""\n\ndef undocumented():\n    pass\n\ndef test_something():\n    """A test."""\n'
    )
    return root / "minilib"


def symbols_by_split(root: Path) -> dict[str, list[str]]:
    """The package's symbols in each dataset split, as `mlops data` splits them (by a hash of the passage)."""
    from mlops.data.corpus import extract_symbols
    from mlops.data.dataset import SPLITS, dedupe_symbols, split_of
    from mlops.data.text import passage

    symbols = dedupe_symbols(extract_symbols(root)[0])
    return {split: sorted(s.symbol for s in symbols if split_of(passage(s)) == split) for split in SPLITS}


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


QA_MODEL = "transformers-qa"
# set_seed as the serving tests' model documents it: shaped like transformers' own set_seed docstring (Markdown, an
# Args section, a warning Tip, a doctest example, a relative docs link), plus a script tag that must render inert.
SET_SEED = "minilib.training.set_seed"
SET_SEED_DOCSTRING = """Sets the random seed of python, numpy and torch so that runs are reproducible.

Call it *before* the model is created, see [`~Trainer.resume`] and [the reproducibility guide](../reproducibility).

Args:
    seed (`int`):
        The seed to set.
    deterministic (`bool`, *optional*, defaults to `False`):
        Whether to use deterministic algorithms where available. Can slow down training.

<Tip warning={true}>

Seeding alone does not make GPU kernels deterministic.

</Tip>

Example:

```python
>>> from minilib.training import set_seed
>>> set_seed(42)
```

<script>document.title = "pwned"</script>"""
SET_SEED_SOURCE_URL = "https://github.com/example/minilib/blob/v1.0.0/src/minilib/training.py#L10"
SET_SEED_DOCS_URL = "https://example.org/docs/minilib/v1.0.0/en/main_classes/trainer#minilib.set_seed"
# The design's own example of a question to refuse: far from every passage of the mini package.
OFF_TOPIC_QUESTION = "Which Transformer is stronger: Optimus Prime or Megatron?"
