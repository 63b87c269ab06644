"""`workshop up` waits longer for a stage with a larger sample to become ready: loading
30,000 posts into every copy takes minutes on a busy laptop, and giving up at the default
limit stopped a stage that was only slow."""

from tooling.runner import READY_TIMEOUT_SECONDS, ready_timeout


def test_the_default_sample_gets_the_default_limit_and_more_posts_more_time():
    default = ready_timeout({})
    assert default >= READY_TIMEOUT_SECONDS
    assert ready_timeout({"WORKSHOP_SAMPLE_POSTS": "3000"}) == default
    assert ready_timeout({"WORKSHOP_SAMPLE_POSTS": "30000"}) >= default + 240
    assert ready_timeout({"WORKSHOP_SAMPLE_POSTS": "0"}) == READY_TIMEOUT_SECONDS
