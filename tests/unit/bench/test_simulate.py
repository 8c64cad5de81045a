"""The simulator's plan and rating rule, and that its questions stay out of every evaluation set."""

from __future__ import annotations

from collections import Counter

from mlops.bench.simulate import Request, load_personas, plan, rating
from mlops.data.eval_sets import NATURAL_DEV, NATURAL_FRESH, NATURAL_QUESTIONS, OFF_TOPIC_SETS, load_natural_questions, load_off_topic_questions


def test_a_seed_sends_the_same_questions_in_the_same_order_and_shares_hold():
    first, again, other = plan(400, seed=3), plan(400, seed=3), plan(400, seed=4)
    assert first == again and first != other
    drawn = Counter(r.persona for r in first)
    for name, persona in load_personas().items():
        assert abs(drawn[name] / 400 - persona.share) < 0.07, (name, drawn)
    assert any(r.question.question.startswith("Which Transformer is stronger") for r in plan(400, seed=0))


def test_no_simulated_question_is_in_an_evaluation_set():
    evaluation = {q.question.lower() for path in (NATURAL_QUESTIONS, NATURAL_DEV, NATURAL_FRESH) for q in load_natural_questions(path)}
    evaluation |= {q.question.lower() for path in OFF_TOPIC_SETS.values() for q in load_off_topic_questions(path)}
    simulated = {q.question.lower() for p in load_personas().values() for q in p.questions}
    assert simulated and not simulated & evaluation


def test_the_rating_rule():
    novice = Request("novice", load_personas()["novice"].questions[0])  # expects from_pretrained
    off_topic = Request("off_topic", load_personas()["off_topic"].questions[0])
    answered = lambda symbol: {"abstained": False, "answers": [{"symbol": symbol}]}  # noqa: E731
    assert rating(novice, answered("transformers.PreTrainedModel.from_pretrained")) == "up"
    assert rating(novice, answered("transformers.Trainer.train")) == "down"
    assert rating(off_topic, answered("transformers.Trainer.train")) == "down"
    assert rating(novice, {"abstained": True, "answers": []}) is None
