from workshop.domain.recommend import (
    COMMENT_WEIGHT,
    SCORE_THRESHOLD,
    matches_preferences,
    popularity,
    recommend,
)


def post(post_id, ups, downs=0, comments=0, topics=(), tags=()):
    return {
        "id": post_id, "score": ups - downs, "ups": ups, "downs": downs, "num_comments": comments,
        "topics": list(topics), "tags": [{"tag": t, "count": 1} for t in tags],
    }  # fmt: skip


def test_popularity_is_net_votes_plus_weighted_comments():
    assert popularity(post("a", 50, 10, 5)) == 40 + COMMENT_WEIGHT * 5


def test_posts_under_the_threshold_are_not_recommended():
    low = post("low", SCORE_THRESHOLD - 1, comments=1000)
    assert recommend([low, post("ok", SCORE_THRESHOLD)]) == [post("ok", SCORE_THRESHOLD)]


def test_anonymous_order_is_popularity_then_id():
    posts = [post("b", 20), post("a", 20), post("c", 30)]
    assert [p["id"] for p in recommend(posts)] == ["c", "a", "b"]


def test_preferred_topics_or_tags_come_first():
    posts = [
        post("top", 900),
        post("web", 20, topics=["web"]),
        post("tagged", 15, tags=["data"]),
        post("other", 100, topics=["ml"]),
    ]
    ranked = [p["id"] for p in recommend(posts, topics=["web", "data"])]
    assert ranked == ["web", "tagged", "top", "other"]


def test_limit_caps_the_list():
    posts = [post(str(i), 20 + i) for i in range(30)]
    assert len(recommend(posts, limit=5)) == 5


def test_matches_preferences_needs_an_overlap():
    assert not matches_preferences(post("a", 20, topics=["web"]), [])
    assert not matches_preferences(post("a", 20, topics=["web"]), ["ml"])
    assert matches_preferences(post("a", 20, tags=["ml"]), ["ml"])
