"""`mlops serve`: the champion on a real Triton, and the API + web page in front of it.

Locally both run here: Triton on free 127.0.0.1 ports with the live model repository (only the
champion is in it), the API on ``--host``/``--port``. In the cluster Triton runs in its own pods and
the API is pointed at it with ``--triton-url``. Ctrl-C (or SIGTERM) stops the API, then Triton.
"""

from __future__ import annotations

import uvicorn

from mlops.core.settings import Settings
from mlops.serving.api import ApiConfig, create_app
from mlops.serving.feedback import engine_url, redacted_url
from mlops.triton.server import TritonServer, check_port_free


def run_api(config: ApiConfig, host: str, port: int) -> None:
    """Serve until interrupted; uvicorn handles SIGINT/SIGTERM and drains in-flight requests."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False, loop="uvloop",
                http="httptools", timeout_graceful_shutdown=5)


def serve(settings: Settings, host: str, port: int, triton_url: str | None = None, echo=print) -> None:
    check_port_free(port, "API", host)
    config = ApiConfig(triton_url=triton_url or "", model_name=settings.model_name, database_url=settings.feedback_url)
    urls = (f"  web page  http://{host}:{port}/\n  API docs  http://{host}:{port}/docs\n"
            f"  metrics   http://{host}:{port}/metrics\n  feedback  {redacted_url(engine_url(config.database_url))}")
    if triton_url:
        echo(f"serving the API against Triton at {triton_url} (model {settings.model_name})\n{urls}")
        run_api(config, host, port)
        return
    from mlops.lifecycle.registry import served_champion  # here: the API-only path (the cluster) never loads MLflow

    version = served_champion(settings)
    echo(f"starting tritonserver with {settings.model_name} version {version.version} …")
    with TritonServer(settings.triton_repository, settings.logs_dir / "triton-serve") as triton:
        triton.load_model(settings.model_name)
        echo(f"  triton    http://{triton.http_url} (metrics http://{triton.metrics_url}/metrics)\n{urls}\nCtrl-C stops both.")
        run_api(config.model_copy(update={"triton_url": triton.http_url}), host, port)
        echo("API stopped; stopping tritonserver")
