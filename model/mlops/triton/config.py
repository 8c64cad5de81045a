"""``config.pbtxt`` for the question-answering python-backend model.

Its inputs and output are the wire contract of :mod:`mlops.core.wire`. Dynamic batching lets Triton hand
concurrent requests to the model together, so it encodes them in one pass.

On CPU, ``instance_count`` model instances with ``intra_op_threads`` threads each (torch or ONNX Runtime) (one per core) beat
one instance using every core, whose threads contend with Triton's own (docs/experiments.md).
"""

from __future__ import annotations

import re

from mlops.core.errors import MlopsError
from mlops.core.wire import ANSWERS, QUESTION, TOP_K

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_TEMPLATE = """\
name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}

input [
  {{
    name: "{question}"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }},
  {{
    name: "{top_k}"
    data_type: TYPE_INT32
    dims: [ 1 ]
    optional: true
  }}
]

output [
  {{
    name: "{answers}"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }}
]

dynamic_batching {{
  max_queue_delay_microseconds: {max_queue_delay_us}
}}

instance_group [
  {{
    count: {instance_count}
    kind: KIND_CPU
  }}
]

parameters {{
  key: "intra_op_threads"
  value: {{ string_value: "{intra_op_threads}" }}
}}
"""


def render_model_config(
    name: str, max_batch_size: int = 64, max_queue_delay_us: int = 2000, instance_count: int = 2, intra_op_threads: int = 1
) -> str:
    """The ``config.pbtxt`` text for model ``name`` (must equal its folder name in the repository)."""
    if not _NAME.fullmatch(name):
        raise MlopsError(f"Triton model name {name!r} is invalid: use ASCII letters, digits, '-', '_' or '.'")
    for field, value, minimum in (
        ("max_batch_size", max_batch_size, 1),
        ("max_queue_delay_us", max_queue_delay_us, 0),
        ("instance_count", instance_count, 1),
        ("intra_op_threads", intra_op_threads, 1),
    ):
        if value < minimum:
            raise MlopsError(f"Triton {field} must be at least {minimum}, got {value}")
    return _TEMPLATE.format(
        name=name,
        question=QUESTION,
        top_k=TOP_K,
        answers=ANSWERS,
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        instance_count=instance_count,
        intra_op_threads=intra_op_threads,
    )
