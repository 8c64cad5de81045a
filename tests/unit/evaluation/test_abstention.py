import numpy as np
import pytest

from mlops.core.wire import read_reply, reply
from mlops.evaluation.abstention import answered_by_kind, choose_threshold, refused_share


def test_the_threshold_refuses_at_most_the_allowed_share_of_every_development_set():
    dev = np.linspace(0.30, 0.99, 100)        # 1% of 100: one question may fall below
    validation = np.linspace(0.50, 0.99, 300)  # three may
    threshold = choose_threshold({"natural_dev": dev, "validation": validation}, max_refused=0.01)
    assert threshold == pytest.approx(dev[1])  # the tighter set decides
    assert refused_share(dev, threshold) == 0.01 and refused_share(validation, threshold) == 0.0
    assert choose_threshold({"small": np.array([0.4, 0.6])}, max_refused=0.01) == 0.4  # none may fall below
    with pytest.raises(ValueError):
        choose_threshold({"empty": np.array([])})


def test_off_topic_answers_are_counted_by_kind():
    figures = answered_by_kind(np.array([0.1, 0.5, 0.2, 0.6]), ["gibberish", "adversarial", "gibberish", "adversarial"], 0.3)
    assert figures == {"answered": 0.5, "count": 4, "by_kind": {"adversarial": 1.0, "gibberish": 0.0}}


def test_a_bare_list_of_answers_reads_as_a_reply_that_answered():
    answers = [{"symbol": "a.b", "path": "a.py", "line": 1, "score": 0.5, "text": ""}]
    assert read_reply('[{"symbol": "a.b", "path": "a.py", "line": 1, "score": 0.5, "text": ""}]') == reply(answers, None)
    assert read_reply('{"answers": [], "abstained": true, "reason": "far", "confidence": 0.1}') == reply([], 0.1, "far")
