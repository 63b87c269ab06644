"""Pages for people: the home page, search, posts, tags and preferences."""

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from gateway import client
from workshop import contract
from workshop.contract import ApiError
from workshop.domain.posts import is_valid_post_id
from workshop.domain.tags import is_valid_tag, with_own_tags
from workshop.domain.topics import TOPICS
from workshop.web import login_page_required

bp = Blueprint("pages", __name__)

POPULAR_TAGS_SHOWN = 20


@bp.get("/")
def index() -> Any:
    # The home page is composed from two services; each may fail without failing the page.
    notice = tags_notice = None
    try:
        recommended = client.recommendations(12)
    except ApiError:
        recommended, notice = ([], []), "Recommendations are unavailable right now."
    try:
        popular_tags = client.tag_counts(POPULAR_TAGS_SHOWN)
    except ApiError:
        popular_tags, tags_notice = [], "Popular tags are unavailable right now."
    recommendations, topics = recommended
    return render_template(
        "index.html",
        recommendations=recommendations,
        personal=bool(topics),
        topics=topics,
        popular_tags=popular_tags,
        notice=notice,
        tags_notice=tags_notice,
    )


@bp.get("/search")
def search() -> Any:
    query = request.args.get("q", "")
    if not query.strip():
        return render_template("search.html", query="", results=None, error=None)
    try:
        results = client.search(request.args)
    except ApiError as error:
        if error.status != 400:
            raise
        page = render_template("search.html", query=query, results=None, error=error.message)
        return page, 400
    return render_template("search.html", query=results["query"], results=results, error=None)


@bp.get("/posts/<post_id>")
def post(post_id: str) -> Any:
    if not is_valid_post_id(post_id):
        abort(404, "No post with that id.")
    found = client.get_post(post_id)
    if found is None:
        abort(404, "No post with that id.")
    tags_notice = None
    try:
        my_tags = client.user_tags(post_id) if g.user else []
    except ApiError:
        my_tags, tags_notice = [], "Your tags are unavailable right now."
    # Read your own writes: tag (the owner) has the user's tags at once, search's copy a
    # moment later, so a tag the user just added shows on the page the form lands on.
    found["tags"] = with_own_tags(found["tags"], my_tags)
    return render_template("post.html", post=found, my_tags=my_tags, tags_notice=tags_notice)


@bp.post("/posts/<post_id>/tags")
@login_page_required
def add_tag(post_id: str) -> Any:
    tag = request.form.get("tag", "").strip().lower()
    if not is_valid_post_id(post_id) or client.get_post(post_id) is None:
        abort(404, "No post with that id.")
    if is_valid_tag(tag):
        client.add_tag(post_id, tag)
        flash(f"Tagged “{tag}”.", "info")
    else:
        flash("A tag is 1-32 lower-case letters, digits or '-'.", "error")
    return redirect(url_for("pages.post", post_id=post_id))


@bp.post("/posts/<post_id>/tags/<tag>/remove")
@login_page_required
def remove_tag(post_id: str, tag: str) -> Any:
    if is_valid_post_id(post_id) and is_valid_tag(tag):
        client.remove_tag(post_id, tag)
    return redirect(url_for("pages.post", post_id=post_id))


@bp.get("/tags/<tag>")
def tag(tag: str) -> Any:
    if not is_valid_tag(tag):
        abort(400, "That is not a tag.")
    return render_template("tag.html", tag=tag, posts=client.posts_with_tag(tag))


@bp.route("/preferences", methods=("GET", "POST"))
@login_page_required
def preferences() -> Any:
    if request.method == "POST":
        try:
            topics = request.form.getlist("topics")
            client.set_topics(contract.checked_topics(topics))
        except ApiError as error:
            flash(error.message, "error")
        else:
            flash("Preferences saved: your recommendations follow them now.", "info")
            return redirect(url_for("pages.index"))
    selected = client.get_topics(g.user)
    return render_template("preferences.html", topics=TOPICS, selected=selected)
