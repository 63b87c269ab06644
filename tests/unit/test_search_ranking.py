from workshop.domain.search import page_slice, rank, relevance


def post(post_id, score, terms):
    return {"id": post_id, "score": score, "terms": terms}


def test_relevance_counts_distinct_query_terms_present():
    assert relevance(["django", "pypy", "fast"], ["django", "pypy", "numpy"]) == 2
    assert relevance(["django"], ["django", "django"]) == 1
    assert relevance([], ["django"]) == 0


def test_rank_orders_by_relevance_then_score_then_id():
    candidates = [
        post("b", 10, ["django"]),
        post("a", 10, ["django"]),
        post("c", 99, ["django"]),
        post("d", 1, ["django", "pypy"]),
        post("e", 500, ["numpy"]),
    ]
    assert rank(candidates, ["django", "pypy"]) == ["d", "c", "a", "b"]


def test_rank_drops_posts_without_any_term():
    assert rank([post("a", 1, ["x"])], ["y"]) == []


def test_page_slice_is_one_based():
    items = list(range(45))
    assert items[page_slice(1, 20)] == list(range(20))
    assert items[page_slice(3, 20)] == list(range(40, 45))
    assert items[page_slice(4, 20)] == []
