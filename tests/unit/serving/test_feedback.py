"""The feedback store on SQLite (WAL, full sync), and an unreachable PostgreSQL named in one line without its password."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.serving.feedback import FeedbackStore


def test_sqlite_runs_in_wal_mode(tmp_path: Path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_unreachable_postgres_is_one_clear_error():
    with pytest.raises(MlopsError, match=r"feedback database postgresql\+psycopg://qa:\*\*\*@127.0.0.1:1/x is unreachable"):
        FeedbackStore("postgresql://qa:secret@127.0.0.1:1/x")
