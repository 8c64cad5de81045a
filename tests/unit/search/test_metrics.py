
import pytest

from mlops.search.metrics import score_by_slice, score_rankings


def test_recall_and_mrr_on_known_rankings():
    ranked = [["a", "b", "c"], ["x", "y", "a"], ["q"] * 10 + ["z"], []]
    expected = [{"a"}, {"a", "y"}, {"z"}, {"a"}]
    m = score_rankings(ranked, expected)
    assert m["recall_at_1"] == pytest.approx(1 / 4)
    assert m["recall_at_5"] == pytest.approx(2 / 4)
    assert m["recall_at_10"] == pytest.approx(2 / 4)  # "z" is 11th: outside the top 10
    assert m["mrr"] == pytest.approx((1 + 1 / 2) / 4)
    assert m["count"] == 4


def test_slices():
    result = score_by_slice([["a"], ["b"]], [{"a"}, {"a"}], ["s1", "s2"])
    assert result["overall"]["recall_at_1"] == 0.5
    assert result["slices"]["s1"]["recall_at_1"] == 1.0 and result["slices"]["s2"]["recall_at_1"] == 0.0
