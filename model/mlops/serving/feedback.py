"""Durable user feedback (thumbs up/down on one answer), stored with SQLAlchemy.

SQLite in WAL mode under ``.mlops/`` by default, PostgreSQL when ``DATABASE_URL`` names one. Each row
is committed (and, on SQLite, synced) before the API answers ``201``, so a crash right after the
answer cannot lose it. ``export`` streams the rows as dicts in insertion order, each with its newest review (an
annotator's decision on a thumbs-down, ``mlops review``): what retraining reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from mlops.core.errors import MlopsError

EXPORT_BATCH = 500
MAX_REVIEWER = 200
DECISIONS = ("symbol", "off-topic")  # mlops.data.feedback.ReviewDecision reads them back


class Base(DeclarativeBase):
    pass


def _utc(moment: datetime) -> str:
    """ISO 8601 with the zone: every time is stored in UTC, and SQLite gives it back without one."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    question: Mapped[str] = mapped_column(Text)
    symbol: Mapped[str] = mapped_column(String(500))
    rating: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_version: Mapped[str] = mapped_column(String(64))

    def as_dict(self, review: Review | None = None) -> dict:
        return {
            "id": self.id,
            "created_at": _utc(self.created_at),
            "question": self.question,
            "symbol": self.symbol,
            "rating": self.rating,
            "comment": self.comment,
            "model_version": self.model_version,
            "review": review.as_dict() if review else None,
        }


class Review(Base):
    """An annotator's decision on one feedback row: the symbol that answers its question, or that it is off-topic.
    Rows are only added; a later decision on the same feedback row replaces the earlier one in the export."""

    __tablename__ = "review"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), index=True)  # retention deletes both
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewer: Mapped[str] = mapped_column(String(MAX_REVIEWER))
    decision: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str | None] = mapped_column(String(500), nullable=True)

    def as_dict(self) -> dict:
        return {"decision": self.decision, "symbol": self.symbol, "reviewer": self.reviewer, "decided_at": _utc(self.decided_at)}


class StoreUnavailable(Exception):
    """The database did not take or give the data (down, locked, disk full)."""


def engine_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` (what people and operators write) use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets readers (export) run beside the writer; synchronous=FULL syncs every commit to disk.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def redacted_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


class FeedbackStore:
    def __init__(self, url: str) -> None:
        url = engine_url(url)
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError) as e:
            raise MlopsError(f"DATABASE_URL {redacted_url(url)!r} is not a database URL this service can use ({e}); "
                             "use sqlite:///path/feedback.db or postgresql://user:password@host:5432/db") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as e:
            raise MlopsError(f"feedback database {redacted_url(url)} is unreachable: {' '.join(str(e.orig or e).split())[:300]}; "
                             "start it or fix DATABASE_URL") from None
        self.url = redacted_url(url)

    def add(self, *, question: str, symbol: str, rating: str, model_version: str, comment: str | None = None) -> int:
        """Store one feedback row; returns its id once it is committed."""
        row = Feedback(created_at=datetime.now(UTC), question=question, symbol=symbol, rating=rating,
                       comment=comment, model_version=model_version)
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
                session.flush()
                return row.id
        except SQLAlchemyError as e:
            raise StoreUnavailable(f"the feedback database did not store the row: {type(e).__name__}") from e

    def add_review(self, feedback_ids: list[int], *, reviewer: str, decision: str, symbol: str | None = None) -> None:
        """Store one decision for each of ``feedback_ids`` (the ratings of one question), in one transaction."""
        if decision not in DECISIONS or (decision == "symbol") != bool(symbol) or not 0 < len(reviewer) <= MAX_REVIEWER:
            raise ValueError(f"a review is {' or '.join(DECISIONS)} (a symbol exactly with 'symbol') by a named reviewer; "
                             f"got {decision!r}, {symbol!r} by {reviewer!r}")
        now = datetime.now(UTC)
        try:
            with Session(self.engine) as session, session.begin():
                session.add_all([Review(feedback_id=i, decided_at=now, reviewer=reviewer, decision=decision, symbol=symbol) for i in feedback_ids])
        except SQLAlchemyError as e:
            raise StoreUnavailable(f"the feedback database did not store the review: {type(e).__name__}") from e

    def export(self) -> Iterator[dict]:
        """Every row, oldest first, read in batches (the table may be large), with its newest review. Reviews are a
        person's work, few beside the ratings, so they are read whole first."""
        try:
            with Session(self.engine) as session:
                reviews = {r.feedback_id: r for r in session.scalars(select(Review).order_by(Review.id))}
                rows = session.execute(select(Feedback).order_by(Feedback.id).execution_options(yield_per=EXPORT_BATCH))
                for row in rows.scalars():
                    yield row.as_dict(reviews.get(row.id))
        except SQLAlchemyError as e:
            raise StoreUnavailable(f"the feedback database could not be read: {type(e).__name__}") from e

    def close(self) -> None:
        self.engine.dispose()
