"""Ask the question-answering model served by Triton over HTTP.

Each question goes out as its own request, all of them at once, so Triton's dynamic batcher can group
them into one model call. The underlying tritonclient (gevent) client is not thread-safe: use one
``TritonQAClient`` per thread.
"""

from __future__ import annotations

from types import TracebackType

import gevent
import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from mlops.core.errors import MlopsError
from mlops.core.text import one_line
from mlops.core.wire import ANSWERS, QUESTION, TOP_K, read_reply


class TritonQAClient:
    def __init__(self, url: str, *, concurrency: int = 16, timeout_s: float = 60) -> None:
        """``url`` is ``host:port`` of Triton's HTTP endpoint, without a scheme."""
        self.url = url
        # Checked here: tritonclient's own check leaves a half-built client that errors again in __del__.
        if "://" in url:
            raise MlopsError(f"Triton URL {url!r} has a scheme: use host:port, e.g. 127.0.0.1:8000")
        self._client = httpclient.InferenceServerClient(
            url, concurrency=concurrency, connection_timeout=timeout_s, network_timeout=timeout_s
        )
        # gevent prints the traceback of every failed request greenlet; ask() reports connection errors
        # itself, as one line, so keep them off stderr (this thread's hub only).
        hub = gevent.get_hub()
        if not issubclass(OSError, hub.NOT_ERROR):
            hub.NOT_ERROR = (*hub.NOT_ERROR, OSError)

    def _unreachable(self, e: Exception) -> MlopsError:
        return MlopsError(f"Triton at {self.url} is unreachable ({one_line(e) or type(e).__name__}): "
                          "start the server or check the URL")

    def is_model_ready(self, name: str) -> bool:
        try:
            return bool(self._client.is_model_ready(name))
        except InferenceServerException as e:
            raise MlopsError(f"Triton at {self.url} failed to report on model {name!r}: "
                             f"{one_line(e.message())}") from None
        except OSError as e:
            raise self._unreachable(e) from None

    @staticmethod
    def _inputs(question: str, top_k: int) -> list[httpclient.InferInput]:
        text = httpclient.InferInput(QUESTION, [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[question.encode("utf-8")]], dtype=np.object_))
        k = httpclient.InferInput(TOP_K, [1, 1], "INT32")
        k.set_data_from_numpy(np.array([[top_k]], dtype=np.int32))
        return [text, k]

    def ask(self, questions: list[str], top_k: int, model_name: str) -> list[dict]:
        """The reply to each question, in order (mlops.core.wire.reply): answers (symbol, path, line, score, text) or an
        abstention with its reason."""
        outputs = [httpclient.InferRequestedOutput(ANSWERS)]
        try:
            pending = [self._client.async_infer(model_name, self._inputs(q, top_k), outputs=outputs)
                       for q in questions]
            results = [p.get_result() for p in pending]
        except InferenceServerException as e:
            raise MlopsError(f"Triton model {model_name!r} at {self.url} failed: {one_line(e.message())}") from None
        except OSError as e:
            raise self._unreachable(e) from None
        return [read_reply(r.as_numpy(ANSWERS).reshape(-1)[0]) for r in results]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonQAClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
