"""Pages for people: the home page, search, posts, tags and preferences.

A page composed from several services asks them all at the same time (asyncio.gather):
it takes as long as the slowest, not the sum. A part whose service fails is left out and
the page says so; only the page's main resource missing makes an error page.
"""

import asyncio
from typing import Any

from quart import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from chassis.web import login_page_required
from gateway import client
from workshop import contract
from workshop.contract import ApiError
from workshop.domain.posts import is_valid_post_id
from workshop.domain.tags import is_valid_tag, with_own_tags
from workshop.domain.topics import TOPICS

bp = Blueprint("pages", __name__)

POPULAR_TAGS_SHOWN = 20


def missing(part: Any) -> bool:
    """Tell whether a part of a page failed (its service did); a bug is raised, not hidden."""
    if isinstance(part, ApiError):
        return True
    if isinstance(part, BaseException):
        raise part
    return False


async def nothing() -> list[Any]:
    return []


@bp.get("/")
async def index() -> Any:
    # The home page is composed from two services; each may fail without failing the page.
    recommended, popular_tags = await asyncio.gather(
        client.recommendations(12), client.tag_counts(POPULAR_TAGS_SHOWN), return_exceptions=True
    )
    notice = tags_notice = None
    if missing(recommended):
        recommended, notice = ([], []), "Recommendations are unavailable right now."
    if missing(popular_tags):
        popular_tags, tags_notice = [], "Popular tags are unavailable right now."
    recommendations, topics = recommended
    return await render_template(
        "index.html",
        recommendations=recommendations,
        personal=bool(topics),
        topics=topics,
        popular_tags=popular_tags,
        notice=notice,
        tags_notice=tags_notice,
    )


@bp.get("/search")
async def search() -> Any:
    query = request.args.get("q", "")
    if not query.strip():
        return await render_template("search.html", query="", results=None, error=None)
    try:
        results = await client.search(request.args)
    except ApiError as error:
        if error.status != 400:
            raise
        page = await render_template("search.html", query=query, results=None, error=error.message)
        return page, 400
    return await render_template("search.html", query=results["query"], results=results, error=None)


@bp.get("/posts/<post_id>")
async def post(post_id: str) -> Any:
    if not is_valid_post_id(post_id):
        abort(404, "No post with that id.")
    # The post and the user's own tags, asked at the same time.
    found, my_tags = await asyncio.gather(
        client.get_post(post_id),
        client.user_tags(post_id) if g.user else nothing(),
        return_exceptions=True,
    )
    if isinstance(found, BaseException):
        raise found  # the post is the page: without it, the error page says what is down
    if found is None:
        abort(404, "No post with that id.")
    tags_notice = None
    if missing(my_tags):
        my_tags, tags_notice = [], "Your tags are unavailable right now."
    # Read your own writes: tag (the owner) has the user's tags at once, search's copy a
    # moment later, so a tag the user just added shows on the page the form lands on.
    found["tags"] = with_own_tags(found["tags"], my_tags)
    return await render_template("post.html", post=found, my_tags=my_tags, tags_notice=tags_notice)


@bp.post("/posts/<post_id>/tags")
@login_page_required
async def add_tag(post_id: str) -> Any:
    tag = (await request.form).get("tag", "").strip().lower()
    if not is_valid_post_id(post_id) or await client.get_post(post_id) is None:
        abort(404, "No post with that id.")
    if is_valid_tag(tag):
        await client.add_tag(post_id, tag)
        await flash(f"Tagged “{tag}”.", "info")
    else:
        await flash("A tag is 1-32 lower-case letters, digits or '-'.", "error")
    return redirect(url_for("pages.post", post_id=post_id))


@bp.post("/posts/<post_id>/tags/<tag>/remove")
@login_page_required
async def remove_tag(post_id: str, tag: str) -> Any:
    if is_valid_post_id(post_id) and is_valid_tag(tag):
        await client.remove_tag(post_id, tag)
    return redirect(url_for("pages.post", post_id=post_id))


@bp.get("/tags/<tag>")
async def tag(tag: str) -> Any:
    if not is_valid_tag(tag):
        abort(400, "That is not a tag.")
    return await render_template("tag.html", tag=tag, posts=await client.posts_with_tag(tag))


@bp.route("/preferences", methods=("GET", "POST"))
@login_page_required
async def preferences() -> Any:
    if request.method == "POST":
        try:
            topics = (await request.form).getlist("topics")
            await client.set_topics(contract.checked_topics(topics))
        except ApiError as error:
            await flash(error.message, "error")
        else:
            await flash("Preferences saved: your recommendations follow them now.", "info")
            return redirect(url_for("pages.index"))
    selected = await client.get_topics(g.user)
    return await render_template("preferences.html", topics=TOPICS, selected=selected)
