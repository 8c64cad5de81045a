"""What the serving benchmark measures; light, so the CLI shows these defaults without loading the benchmark."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concurrency: list[int] = Field([1, 8, 32], min_length=1)
    requests: int = Field(480, ge=10, description="requests per system and concurrency level")
    api_users: int = Field(8, ge=1)
    api_seconds: int = Field(60, ge=5)
