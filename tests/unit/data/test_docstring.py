"""A docstring's sentences, example and Markdown, on docstrings written as Transformers writes them."""

from __future__ import annotations

import pytest

from mlops.data.docstring import Alignment, sentences, to_markdown
from mlops.data.text import clean_docstring

# transformers/trainer_utils.py set_seed at v5.23.0 (the installed package), verbatim.
SET_SEED = (
    "Helper function for reproducible behavior to set the seed in `random`, `numpy`, `torch` (if installed).\n\n"
    "Args:\n    seed (`int`):\n        The seed to set.\n"
    "    deterministic (`bool`, *optional*, defaults to `False`):\n"
    "        Whether to use deterministic algorithms where available. Can slow down training."
)
# The shapes of PreTrainedConfig.from_pretrained and GenerationMixin.generate (a Tip inside an argument, doc-builder
# links, an Examples section with a doctest block and its printed output), shortened.
WITH_TIP_AND_EXAMPLE = """Generates sequences of token ids for models with a language modeling head, see [`~GenerationMixin.generate`].

Most generation-controlling parameters are set in `generation_config`, e.g. *greedy decoding* or [sampling](../generation_strategies).

Args:
    inputs (`torch.Tensor`, *optional*):
        The sequence used as a prompt for the generation.

        <Tip warning={true}>

        The model must be an encoder-decoder, i.e. have `get_encoder`.

        </Tip>
    max_new_tokens (`int`):
        How many tokens to generate at most.

Examples:

```python
>>> from transformers import AutoTokenizer
>>> tokenizer = AutoTokenizer.from_pretrained("gpt2")
>>> for word in ["a",
...              "b"]:
...     print(word)
a
b
```
"""


@pytest.mark.parametrize("raw", [SET_SEED, WITH_TIP_AND_EXAMPLE, "", "  \n ", "``` lone fences ```", "x  `` y"])
def test_the_alignment_text_is_the_cleaned_docstring(raw: str):
    assert Alignment.of(raw).text == clean_docstring(raw)


def test_sentences_map_between_the_raw_docstring_and_the_text():
    alignment = Alignment.of(SET_SEED)
    found = sentences(SET_SEED)
    assert [SET_SEED[s:e] for s, e in found] == [
        "Helper function for reproducible behavior to set the seed in `random`, `numpy`, `torch` (if installed).",
        "seed (`int`):\n        The seed to set.",
        "deterministic (`bool`, *optional*, defaults to `False`):\n        Whether to use deterministic algorithms where available.",
        "Can slow down training.",
    ]
    for start, end in found:
        text_start, text_end = alignment.to_text(start, end)
        assert alignment.text[text_start:text_end] == clean_docstring(SET_SEED[start:end])
        assert alignment.to_raw(text_start, text_end) == (start, end)


def test_sentences_leave_out_code_headers_and_tip_tags():
    found = [WITH_TIP_AND_EXAMPLE[s:e] for s, e in sentences(WITH_TIP_AND_EXAMPLE)]
    assert "Args:" not in found and not any("<Tip" in s or "</Tip>" in s or ">>>" in s or "```" in s for s in found)
    assert "The model must be an encoder-decoder, i.e. have `get_encoder`." in found  # no split after "i.e."
    assert "How many tokens to generate at most." in " ".join(found)


def test_lead_ins_and_list_items_are_not_sentences():
    doc = ("Pads the batch.\n\nArgs:\n    padding (`str`):\n        Select a strategy among:\n\n"
           "        - `'longest'`: Pad to the longest sequence in the batch.\n        - `False`: No padding.\n\n"
           "1. Tokenize the texts first.\n2. Then pad them.\n\nUse it as follows:\n\n```python\ncollator(batch)\n```")
    assert [doc[s:e] for s, e in sentences(doc)] == ["Pads the batch."]


def test_the_summary_stays_even_as_a_lead_in_and_short_fragments_join_a_neighbour():
    doc = "Collates batches and handles the keys named:\n\n- label\n- label_ids\n\nSee 1. It pads every batch to one length."
    assert [doc[s:e] for s, e in sentences(doc)] == ["Collates batches and handles the keys named:",
                                                     "See 1. It pads every batch to one length."]


def test_an_unclosed_example_fence_keeps_its_last_line():
    _, example = to_markdown("Adds.\n\nExample:\n\n```python\n>>> a = 1\n>>> b = 2")
    assert example == "a = 1\nb = 2"


def test_markdown_lists_arguments_quotes_tips_and_takes_the_example_out():
    markdown, example = to_markdown(WITH_TIP_AND_EXAMPLE)
    assert "`generate`" in markdown and "[`~" not in markdown  # doc-builder links as code spans
    assert "**Args**" in markdown and "- **inputs** (`torch.Tensor`, *optional*):" in markdown
    assert "  > **Warning**" in markdown and "  > The model must be an encoder-decoder" in markdown
    assert "<Tip" not in markdown and "</Tip>" not in markdown
    assert ">>>" not in markdown and "Examples" not in markdown  # the section held only the example
    assert example == 'from transformers import AutoTokenizer\ntokenizer = AutoTokenizer.from_pretrained("gpt2")\n' \
                      'for word in ["a",\n             "b"]:\n    print(word)'


def test_a_docstring_without_example_or_sections_is_its_own_markdown():
    assert to_markdown("Sets the *seed*.") == ("Sets the *seed*.", None)
    fenced = "Runs it:\n\n```bash\nmake test\n```"
    assert to_markdown(fenced) == (fenced, None)  # a code block without doctest prompts is not the usage example
