"""The shared web helpers every front door uses."""

import pytest

from workshop.web.policy import local_path


@pytest.mark.parametrize("target", ["/", "/posts/abc", "/search?q=a//b", "/tags/web"])
def test_local_paths_are_kept(target):
    assert local_path(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "",
        "https://evil.example/",
        "//evil.example",
        "/\t/evil.example/",
        "/\\evil",
        "/a\nb",
        "posts",
    ],
)
def test_anything_that_could_leave_the_site_is_dropped(target):
    assert local_path(target) == ""
