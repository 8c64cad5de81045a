"""Answer a question with the current ``champion``, in process (no server needed)."""

from __future__ import annotations

import os

from mlops.core.inputs import DEFAULT_TOP_K, check_question, check_top_k
from mlops.core.settings import Settings
from mlops.lifecycle import registry
from mlops.lifecycle.export import export_version
from mlops.search.retriever import Retriever


def champion_retriever(settings: Settings) -> tuple[Retriever, str]:
    """The champion's exported folder: the live Triton repository's, else a fresh export into the cache."""
    client, champion = registry.champion(settings)
    folder = settings.served_folder(champion.version)
    if not (folder / "retrieval.json").is_file():
        folder = settings.exports_dir / settings.model_name / str(champion.version)
        if not (folder / "retrieval.json").is_file():
            export_version(settings, client, champion, settings.exports_dir, echo=lambda *_: None)
    return Retriever.load(folder), str(champion.version)


def ask(settings: Settings, question: str, top_k: int = DEFAULT_TOP_K) -> tuple[dict, str]:
    """The champion's reply (the best ``top_k`` answers, or its abstention: mlops.core.wire.reply) and its version."""
    question, top_k = check_question(question), check_top_k(top_k)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    retriever, version = champion_retriever(settings)
    return retriever.reply([question], top_k)[0], version


def show(reply: dict, version: str, console) -> None:
    """The reply as a reader sees it in a terminal (rich: colours on a terminal, plain text in a pipe): each answer's
    name and signature, the highlighted sentence and the links; the best one's example and documentation in full."""
    from rich.markdown import Markdown
    from rich.padding import Padding
    from rich.syntax import Syntax
    from rich.text import Text

    from mlops.data.docstring import to_markdown

    if reply["abstained"]:
        console.print(f"No confident answer (model version {version}): {reply['reason']}")
        return
    for rank, answer in enumerate(reply["answers"], start=1):
        title = Text(f"{rank}. ", style="bold")
        title.append(answer["symbol"], style="bold cyan")
        title.append(answer.get("signature") or "", style="cyan")
        console.print(title)
        console.print(Text(f"   {answer['path']}:{answer['line']}  score {answer['score']:.3f}", style="dim"))
        if answer.get("highlight"):
            lead, summary, found = Text(), answer.get("summary"), answer["highlight"]
            if summary and summary["start"] != found["start"]:  # the summary first, as the page shows it
                lead.append(answer["text"][summary["start"]:summary["end"]] + " … ")
            lead.append(answer["text"][found["start"]:found["end"]], style="bold yellow")
            console.print(Padding(lead, (0, 0, 0, 3), expand=False))
        for label in ("source_url", "docs_url"):
            if answer.get(label):
                # one line however narrow the terminal, so that the URL stays whole and clickable
                console.print(Text(f"   {'source' if label == 'source_url' else 'docs'}: {answer[label]}", style="blue"), soft_wrap=True)
        if rank == 1 and answer.get("docstring"):
            body, example = to_markdown(answer["docstring"])
            if example:
                console.print(Padding(Text("Example:", style="bold"), (1, 0, 0, 3), expand=False))
                console.print(Padding(Syntax(example, "python", theme="ansi_dark", background_color="default"), (0, 0, 0, 3), expand=False))
            console.print(Padding(Markdown(body), (1, 3, 0, 3)))
        console.print()
    console.print(Text(f"model version {version}", style="dim"))
