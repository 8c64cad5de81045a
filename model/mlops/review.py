"""`mlops review`: an annotator works through the thumbs-down in the terminal.

For each question users rated down (mlops.data.feedback.review_queue) it shows the answers they rejected and a
BM25 search over the dataset's corpus (the question itself first; ``/words`` searches again). The annotator picks
the symbol that answers the question (a number or its dotted name), marks it off-topic, or skips it. Each decision
is stored at once in the feedback database, with who and when (mlops.serving.feedback.Review), so quitting loses
nothing; the next ``mlops data --feedback`` turns it into a training pair or an off-topic example.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.data.corpus import Symbol
from mlops.data.feedback import OFF_TOPIC, SYMBOL, QueueItem, parse_rows, review_queue
from mlops.data.text import clean_docstring, passage
from mlops.search.retriever import Retriever
from mlops.serving.feedback import MAX_REVIEWER, FeedbackStore, StoreUnavailable

CANDIDATES = 8
HELP = "a number or a symbol's name picks it; /words searches the corpus; o = off-topic, s = skip, q = quit"


class Reviewer:
    """One annotator's session over one corpus; ``read`` gives the next line they type (None: input ended)."""

    def __init__(self, store: FeedbackStore, symbols: list[Symbol], name: str, read: Callable[[str], str | None], echo) -> None:
        self.store, self.name, self.read, self.echo = store, name, read, echo
        self.by_name = {s.symbol: s for s in symbols}
        self.split = {s.symbol: dataset.split_of(passage(s)) for s in symbols}
        self.search = Retriever(None, symbols, None, bm25_weight=1.0, public_api_prior=0.0)  # words only: a hit shares one
        self.counts = {SYMBOL: 0, OFF_TOPIC: 0, "skipped": 0}

    def summary(self, symbol: Symbol) -> str:
        doc = clean_docstring(symbol.docstring).split("\n", 1)[0]
        held = "" if self.split[symbol.symbol] == "train" else f", held out for {self.split[symbol.symbol]}: not trained on"
        signature = symbol.signature if symbol.kind != "class" else ""
        return f"{symbol.symbol}{signature}  [{symbol.kind}, {symbol.path}:{symbol.line}{held}]\n       {doc[:110]}"

    def candidates(self, words: str) -> list[Symbol]:
        hits = self.search.rank([words], CANDIDATES)[0]
        return [self.search.symbols[i] for i, score in hits if score > 0]

    def show(self, shown: list[Symbol], words: str) -> None:
        self.echo(f"  search {words!r}:" if shown else f"  search {words!r}: nothing matches; try other words")
        for n, symbol in enumerate(shown, 1):
            self.echo(f"    {n}. {self.summary(symbol)}")
        self.echo(f"  {HELP}")

    def named(self, text: str) -> str | None:
        """The symbol ``text`` names: its dotted name (a signature pasted with it is ignored), or a unique ending of it."""
        name = text.split("(", 1)[0].strip()
        if name in self.by_name:
            return name
        endings = [s for s in self.by_name if s.endswith("." + name)]
        return endings[0] if len(endings) == 1 else None

    def review(self, n: int, total: int, item: QueueItem) -> bool:
        """Ask about one question until the annotator decides, skips or quits; False once they quit."""
        times = len(item.feedback_ids)
        self.echo(f"\n[{n}/{total}] {item.question!r}: rated down {times} time{'s' * (times > 1)} "
                  f"(version{'s' * (len(item.model_versions) > 1)} {', '.join(item.model_versions)})")
        self.echo("  answers it got and users rejected: " + ", ".join(item.rejected))
        if item.earlier:
            self.echo(f"  reviewed before: {item.earlier.symbol or 'off-topic'} by {item.earlier.reviewer} at {item.earlier.decided_at}")
        shown = self.candidates(item.question)
        self.show(shown, item.question)
        while True:
            line = self.read("> ")
            if line is None or line.strip().lower() == "q":
                return False
            line = line.strip()
            if line.lower() == "s":
                self.counts["skipped"] += 1
                return True
            if line.lower() == "o":
                return self.decide(item, OFF_TOPIC, None)
            if line.startswith("/") and line[1:].strip():
                shown = self.candidates(line[1:].strip())
                self.show(shown, line[1:].strip())
            elif line.isdigit() and 1 <= int(line) <= len(shown):
                return self.decide(item, SYMBOL, shown[int(line) - 1].symbol)
            elif symbol := self.named(line):
                return self.decide(item, SYMBOL, symbol)
            elif line:
                self.echo(f"  {line!r} is neither a number from the list nor one symbol of this corpus; {HELP}")

    def decide(self, item: QueueItem, decision: str, symbol: str | None) -> bool:
        try:
            self.store.add_review(item.feedback_ids, reviewer=self.name, decision=decision, symbol=symbol)
        except StoreUnavailable as exc:
            raise MlopsError(f"{exc}; nothing was stored for {item.question!r}, run `mlops review` again") from None
        self.counts[decision] += 1
        held = symbol and self.split[symbol] != "train"
        self.echo(f"  stored: {symbol or 'off-topic'} (by {self.name})"
                  + (f"; {symbol} is held out for {self.split[symbol]}, so this question is not trained on" if held else ""))
        return True


def run_review(settings: Settings, feedback: str, reviewer: str, read: Callable[[str], str | None], dataset_hash: str | None = None,
               limit: int | None = None, echo=print) -> dict:
    """Review the queue (at most ``limit`` questions) against a dataset's corpus; what was decided, and what is left."""
    if "://" not in feedback:
        raise MlopsError(f"--feedback {feedback!r} is not a database URL: reviews are stored beside the ratings, so give the API's "
                         "DATABASE_URL (sqlite:///path/feedback.db or postgresql://user:password@host:5432/feedback)")
    if not 0 < len(reviewer.strip()) <= MAX_REVIEWER:
        raise MlopsError(f"--reviewer {reviewer[:40]!r} is empty or over {MAX_REVIEWER} characters: name who reviews (it is stored "
                         "with every decision)")
    folder = dataset.resolve(settings.datasets_dir, dataset_hash)
    store = FeedbackStore(feedback)
    try:
        try:
            queue = review_queue(parse_rows(store.export()))
        except StoreUnavailable as exc:
            raise MlopsError(f"cannot read the feedback: {exc}") from None
        todo = queue[:limit] if limit else queue
        echo(f"{len(queue)} questions rated down wait for review; searching the corpus of dataset {Path(folder).name}")
        session = Reviewer(store, dataset.load_corpus(folder), reviewer.strip(), read, echo)
        for n, item in enumerate(todo, 1):
            if not session.review(n, len(todo), item):
                break
    finally:
        store.close()
    counts = session.counts
    return {"reviewer": session.name, "symbol": counts[SYMBOL], "off_topic": counts[OFF_TOPIC], "skipped": counts["skipped"],
            "left": len(queue) - counts[SYMBOL] - counts[OFF_TOPIC]}
