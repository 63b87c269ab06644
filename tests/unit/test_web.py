"""The shared web helpers every front door uses."""

import pytest

from workshop.web.policy import SNIPPET_WIDTH, highlight, local_path, snippet


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


def test_highlight_marks_matches_and_escapes_everything_else():
    title = '<script>alert("x")</script> Testing & <b>tests</b>'
    assert str(highlight(title, "test")) == (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; <mark>Testing</mark> &amp; "
        "&lt;b&gt;<mark>tests</mark>&lt;/b&gt;"
    )


def test_a_query_cannot_inject_markup_either():
    assert "<script>" not in str(highlight("a <script> tag", "<script>"))
    assert str(highlight("a script tag", "<script>")) == "a <mark>script</mark> tag"


def test_a_snippet_is_short_and_marked():
    text = "word " * 200 + "the tests <i>here</i> " + "word " * 200
    shown = str(snippet(text, "testing"))
    assert "<mark>tests</mark>" in shown and "&lt;i&gt;here&lt;/i&gt;" in shown
    assert len(shown) < SNIPPET_WIDTH + 60
