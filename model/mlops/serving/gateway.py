"""The API's way to Triton: one async tritonclient (a pooled aiohttp session) shared by all requests.

Async so that many questions are in flight at once and Triton's dynamic batcher can group them;
the API process itself only moves JSON. Failures are sorted into two kinds the API answers
differently: Triton (or the model) unavailable -> 503 with Retry-After, anything else -> 502.
A restarted Triton is picked up on the next request: the session opens new connections itself.
"""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

from mlops.core.text import one_line
from mlops.core.wire import ANSWERS, QUESTION, TOP_K, read_reply

# Triton's HTTP answers when the model is not loaded (yet): the service is not ready, not broken.
_NOT_READY = ("unknown model", "not ready", "unavailable", "is not found")
READY_TIMEOUT_S = 2.0


class TritonUnavailable(Exception):
    """Triton is down, unreachable, or the model is not loaded: retry later."""


class TritonFailed(Exception):
    """Triton answered with an error for this request."""


class TritonGateway:
    def __init__(self, url: str, model_name: str, *, timeout_s: float = 10.0, connections: int = 64) -> None:
        self.url = url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.connections = connections
        self._client: aioclient.InferenceServerClient | None = None

    async def open(self) -> None:
        # The aiohttp session must be made inside the running event loop.
        self._client = aioclient.InferenceServerClient(self.url, conn_limit=self.connections, conn_timeout=self.timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _classify(self, e: Exception) -> Exception:
        if isinstance(e, InferenceServerException):
            message = one_line(e.message())
            if any(marker in message.lower() for marker in _NOT_READY):
                return TritonUnavailable(f"model {self.model_name!r} is not ready on Triton at {self.url}: {message}")
            return TritonFailed(f"Triton model {self.model_name!r} failed: {message}")
        if isinstance(e, asyncio.TimeoutError):
            return TritonUnavailable(f"Triton at {self.url} did not answer within {self.timeout_s:g} s")
        return TritonUnavailable(f"Triton at {self.url} is unreachable ({one_line(e) or type(e).__name__})")

    async def ask(self, question: str, top_k: int) -> tuple[dict, str]:
        """The reply (mlops.core.wire.reply: answers best first, or an abstention) and the model version that gave it."""
        text = aioclient.InferInput(QUESTION, [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[question.encode("utf-8")]], dtype=np.object_))
        k = aioclient.InferInput(TOP_K, [1, 1], "INT32")
        k.set_data_from_numpy(np.array([[top_k]], dtype=np.int32))
        try:
            result = await self._client.infer(self.model_name, [text, k], outputs=[aioclient.InferRequestedOutput(ANSWERS)])
        except (TimeoutError, InferenceServerException, aiohttp.ClientError, OSError) as e:
            raise self._classify(e) from None
        return read_reply(result.as_numpy(ANSWERS).reshape(-1)[0]), str(result.get_response().get("model_version", ""))

    async def ready(self) -> tuple[bool, str]:
        """(ready, reason): Triton answers and the model is loaded."""
        try:
            ok = await asyncio.wait_for(self._client.is_model_ready(self.model_name), READY_TIMEOUT_S)
        except (TimeoutError, InferenceServerException, aiohttp.ClientError, OSError) as e:
            return False, str(self._classify(e))
        return (True, "") if ok else (False, f"model {self.model_name!r} is not loaded on Triton at {self.url}")
