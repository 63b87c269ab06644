"""Importers: mongoexport JSON lines, reddit listings, uploads and CLI files."""

import gzip
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from workshop.data.importers import (
    ImportFormatError,
    ImportReport,
    parse_listing,
    parse_mongoexport,
    parse_upload,
    read_file,
)


def record(post_id: str = "1abcde", **fields) -> dict:
    """Return a raw reddit post record with sensible defaults."""
    return {
        "id": post_id,
        "name": f"t3_{post_id}",
        "title": f"Learning asyncio the hard way ({post_id})",
        "selftext": "",
        "url": "http://example.org/asyncio",
        "permalink": f"/r/python/comments/{post_id}/learning_asyncio/",
        "author": "curious_otter",
        "subreddit": "python",
        "created_utc": 1370000000.0,
        "score": 12,
        "ups": 15,
        "downs": 3,
        "num_comments": 4,
        "is_self": False,
        "domain": "example.org",
        **fields,
    }


def export_line(post: dict, oid: str = "51a8f2c05f3c2a91d0000001") -> str:
    """Write a record as one mongoexport line (compact, _id first)."""
    return json.dumps({"_id": {"$oid": oid}, **post}, separators=(",", ":"))


def listing(*children: dict, after: str | None = None) -> dict:
    return {"kind": "Listing", "data": {"children": list(children), "after": after}}


def t3(post: dict) -> dict:
    return {"kind": "t3", "data": post}


# A line exactly as a 2013 scraper's collection came out of mongoexport.
REAL_EXPORT_LINE = (
    '{"_id":{"$oid":"51a8f2c05f3c2a91d0a1b2c3"},"domain":"self.python","edited":"False",'
    '"is_self":"True","over_18":"False","id":"1fa2x9","name":"t3_1fa2x9",'
    '"title":"Why is my Django code so slow?","selftext":"I tried PyPy.",'
    '"created_utc":1.37e9,"score":{"$numberLong":"42"},"ups":50,"downs":8,'
    '"num_comments":{"$numberLong":"7"},"subreddit":"python","author":"lazy_badger",'
    '"permalink":"/r/python/comments/1fa2x9/why_is_my_django_code_so_slow/",'
    '"url":"http://www.reddit.com/r/python/comments/1fa2x9/why_is_my_django_code_so_slow/"}'
)


class TestMongoexport:
    def test_real_export_quirks_are_understood(self) -> None:
        report = parse_mongoexport([REAL_EXPORT_LINE])
        assert report.rejected == []
        (post,) = report.posts
        assert post["id"] == "1fa2x9"  # from "id", not from _id
        assert post["is_self"] is True
        assert post["created_utc"] == 1370000000
        assert post["score"] == 42
        assert post["num_comments"] == 7
        assert post["topics"] == ["web", "performance"]

    def test_is_self_false_string_and_bytes_lines(self) -> None:
        line = export_line(record(is_self="False", edited="False")).encode()
        report = parse_mongoexport([line])
        assert report.posts[0]["is_self"] is False

    def test_id_falls_back_to_the_fullname(self) -> None:
        post = record()
        del post["id"]
        report = parse_mongoexport([export_line(post)])
        assert [p["id"] for p in report.posts] == ["1abcde"]

    def test_bad_lines_are_rejected_by_number_and_good_lines_kept(self) -> None:
        lines = [
            export_line(record("aaa1")),
            "{this is not json",
            "",
            '[{"id": "x"}]',
            export_line({k: v for k, v in record("bbb2").items() if k != "title"}),
            export_line(record("Not An Id!", name="t3_Not An Id!")),
            export_line(record("ccc3")),
            '{"id": "ddd4", "title": "x", "subreddit": "python", "created_utc": NaN}',
        ]
        report = parse_mongoexport(lines)
        assert [post["id"] for post in report.posts] == ["aaa1", "ccc3"]
        reasons = {rejection.where: rejection.reason for rejection in report.rejected}
        assert set(reasons) == {"line 2", "line 4", "line 5", "line 6", "line 8"}
        assert "not JSON" in reasons["line 2"]
        assert "array" in reasons["line 4"]
        assert "title" in reasons["line 5"]
        assert "id" in reasons["line 6"]
        assert report.count == 2
        assert "2 posts imported" in report.summary()
        assert "line 2" in report.summary()

    def test_blank_lines_and_a_whole_text_are_accepted(self) -> None:
        text = "\n" + export_line(record("aaa1")) + "\r\n\n" + export_line(record("bbb2")) + "\n"
        report = parse_mongoexport(text)
        assert [post["id"] for post in report.posts] == ["aaa1", "bbb2"]
        assert report.rejected == []

    def test_a_number_too_big_for_an_int_is_rejected_not_raised(self) -> None:
        report = parse_mongoexport([export_line(record(score=1e999))])
        assert report.posts == []
        assert report.rejected[0].where == "line 1"

    def test_undecodable_line_is_rejected(self) -> None:
        report = parse_mongoexport([b"\xff\xfe{", export_line(record()).encode()])
        assert report.count == 1
        assert report.rejected[0].where == "line 1"

    def test_duplicate_ids_keep_the_last_record(self) -> None:
        lines = [
            export_line(record("aaa1", score=1)),
            export_line(record("bbb2")),
            export_line(record("aaa1", score=99)),
        ]
        report = parse_mongoexport(lines)
        assert [post["id"] for post in report.posts] == ["aaa1", "bbb2"]
        assert report.posts[0]["score"] == 99
        assert report.duplicates == 1
        assert report.rejected == []


class TestListing:
    def test_posts_are_imported_and_other_kinds_rejected(self) -> None:
        comment = {"kind": "t1", "data": {"id": "c0ffee", "body": "nice"}}
        document = listing(t3(record("aaa1")), comment, t3(record("bbb2")), "junk")
        report = parse_listing(document)
        assert [post["id"] for post in report.posts] == ["aaa1", "bbb2"]
        assert [rejection.where for rejection in report.rejected] == ["child 2", "child 4"]
        assert "comment" in report.rejected[0].reason

    def test_invalid_post_in_a_listing_is_rejected(self) -> None:
        report = parse_listing(listing(t3(record("aaa1", title="   ")), t3(record("bbb2"))))
        assert report.count == 1
        assert report.rejected[0].where == "child 1"
        assert "title" in report.rejected[0].reason

    def test_comment_page_array_takes_the_posts(self) -> None:
        post_listing = listing(t3(record("aaa1")))
        comments = listing({"kind": "t1", "data": {"id": "c1"}}, {"kind": "more", "data": {}})
        report = parse_listing([post_listing, comments])
        assert [post["id"] for post in report.posts] == ["aaa1"]
        assert [r.where for r in report.rejected] == ["listing 2, child 1", "listing 2, child 2"]

    def test_listing_text_is_parsed(self) -> None:
        report = parse_listing(json.dumps(listing(t3(record()))))
        assert report.count == 1

    @pytest.mark.parametrize(
        "document",
        [
            {"kind": "t3", "data": {}},
            record(),
            [record()],
            [],
            "not json at all",
            None,
            {"kind": "Listing", "data": {"children": "nope"}},
        ],
    )
    def test_a_non_listing_raises_a_clear_error(self, document) -> None:
        with pytest.raises(ImportFormatError, match="listing"):
            parse_listing(document)


class TestUpload:
    @pytest.mark.parametrize(
        "content_type",
        ["application/x-ndjson", "application/jsonl", "application/x-jsonlines; charset=utf-8"],
    )
    def test_json_lines_types_read_mongoexport(self, content_type: str) -> None:
        body = "\n".join([export_line(record("aaa1")), "oops", export_line(record("bbb2"))])
        report = parse_upload(body.encode(), content_type)
        assert report.count == 2
        assert [rejection.where for rejection in report.rejected] == ["line 2"]

    def test_json_reads_a_listing(self) -> None:
        body = json.dumps(listing(t3(record("aaa1")), t3(record("bbb2")))).encode()
        report = parse_upload(body, "Application/JSON; charset=UTF-8")
        assert report.count == 2

    def test_json_that_is_not_a_listing_is_a_format_error(self) -> None:
        with pytest.raises(ImportFormatError):
            parse_upload(json.dumps(record()).encode(), "application/json")
        with pytest.raises(ImportFormatError):
            parse_upload(b"{broken", "application/json")

    @pytest.mark.parametrize("content_type", ["text/csv", "", "multipart/form-data"])
    def test_unknown_content_type_is_a_format_error(self, content_type: str) -> None:
        with pytest.raises(ImportFormatError, match="content type"):
            parse_upload(b"{}", content_type)

    def test_undecodable_body_is_a_format_error(self) -> None:
        with pytest.raises(ImportFormatError):
            parse_upload(b"\xff\xfe\xfa", "application/json")


class TestReadFile:
    def test_gzipped_mongoexport_file(self, tmp_path) -> None:
        lines = [export_line(record("aaa1")), export_line(record("bbb2"))]
        path = tmp_path / "posts.ndjson.gz"
        path.write_bytes(gzip.compress("\n".join(lines).encode()))
        content, content_type = read_file(path)
        assert content_type == "application/x-ndjson"
        assert parse_upload(content, content_type).count == 2

    def test_listing_files_single_line_and_pretty_printed(self, tmp_path) -> None:
        document = listing(t3(record()))
        single, pretty = tmp_path / "a.json", tmp_path / "b.json"
        single.write_text(json.dumps(document))
        pretty.write_text(json.dumps(document, indent=2))
        for path in (single, pretty):
            content, content_type = read_file(path)
            assert content_type == "application/json"
            assert parse_upload(content, content_type).count == 1

    def test_array_file_is_json(self, tmp_path) -> None:
        path = tmp_path / "comments.json"
        path.write_text(json.dumps([listing(t3(record()))]))
        assert read_file(path)[1] == "application/json"

    def test_unrecognisable_file_is_a_format_error(self, tmp_path) -> None:
        path = tmp_path / "posts.csv"
        path.write_text("id,title\n1abc,hello\n")
        with pytest.raises(ImportFormatError):
            read_file(path)

    def test_corrupt_gzip_is_a_format_error(self, tmp_path) -> None:
        path = tmp_path / "posts.ndjson.gz"
        path.write_bytes(b"\x1f\x8bnot really gzip")
        with pytest.raises(ImportFormatError, match="gzip"):
            read_file(path)


def test_report_built_from_posts_dedupes_them() -> None:
    first, again = {"id": "aaa1", "score": 1}, {"id": "aaa1", "score": 2}
    report = ImportReport(posts=[first, again])
    assert report.posts == [again]


def test_a_script_url_is_replaced_by_the_reddit_thread():
    from workshop.domain.posts import normalise

    post = normalise({"id": "abc1", "title": "t", "subreddit": "python", "created_utc": 1,
                      "url": "javascript:alert(1)"})  # fmt: skip
    assert post["url"] == "https://www.reddit.com/r/python/comments/abc1/"


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EVIL_PERMALINKS = [
    "@evil.example/x",
    "//evil.example/r/python/comments/1abcde/",
    "http://evil.example/r/python/comments/1abcde/",
    "http://www.reddit.com.evil.example/r/python/comments/1abcde/",
    "http://www.reddit.com@evil.example/r/python/comments/1abcde/",
    "javascript:alert(1)",
    ".evil.example/r/python/comments/1abcde/",
    ":8080@evil.example/",
    "\\\\evil.example/r/python/comments/1abcde/",
    "r/python/comments/1abcde/",
    "/r/python/comments/1abcde/x y/",
    "/r/python/comments/1abcde/?next=//evil.example",
]


def old_record(post_id: str = "1fymy0", **fields) -> dict:
    """Return a record as the older reddit API wrote it: no subreddit, strings for the rest."""
    old = record(post_id, **{"is_self": "True", "edited": "False", "created_utc": 1.370746482e9})
    del old["subreddit"]
    old["subreddit_id"] = "t5_2qh0y"
    old["permalink"] = f"http://www.reddit.com/r/Python/comments/{post_id}/learning_asyncio/"
    old.update(fields)
    return old


class TestOlderRedditExports:
    def test_the_subreddit_comes_from_the_permalink(self) -> None:
        report = parse_mongoexport([export_line(old_record())])
        assert report.rejected == []
        (post,) = report.posts
        assert post["subreddit"] == "Python"
        assert post["permalink"] == "/r/Python/comments/1fymy0/learning_asyncio/"
        assert post["created_utc"] == 1370746482
        assert post["is_self"] is True

    def test_empty_strings_are_missing_values(self) -> None:
        raw = old_record(score="", num_comments="", url="", domain="", is_self="", author="",
                         ups="", downs="", selftext="", subreddit="", edited="")  # fmt: skip
        (post,) = parse_mongoexport([export_line(raw)]).posts
        assert post["subreddit"] == "Python"
        assert (post["score"], post["ups"], post["downs"], post["num_comments"]) == (0, 0, 0, 0)
        assert post["is_self"] is False and post["author"] == "[deleted]"
        assert post["url"] == "https://www.reddit.com/r/Python/comments/1fymy0/learning_asyncio/"
        assert post["domain"] == "www.reddit.com"

    def test_numbers_as_exponent_text_and_edited_in_every_form(self) -> None:
        lines = [
            export_line(old_record("aaa1", created_utc="1.370746482e+09", edited=False)),
            export_line(old_record("bbb2", score="7", num_comments="3", edited=1.370750000e9)),
        ]
        report = parse_mongoexport(lines)
        assert report.rejected == []
        first, second = report.posts
        assert first["created_utc"] == 1370746482 and isinstance(first["created_utc"], int)
        assert (second["score"], second["num_comments"]) == (7, 3)

    def test_an_empty_id_falls_back_to_the_fullname(self) -> None:
        (post,) = parse_mongoexport([export_line(old_record(id="", name="t3_1fymy0"))]).posts
        assert post["id"] == "1fymy0"

    @pytest.mark.parametrize(
        ("given", "stored"),
        [
            ("http://www.reddit.com/r/Python/comments/1abcde/x/", "/r/Python/comments/1abcde/x/"),
            ("https://old.reddit.com/r/Python/comments/1abcde/x/?ref=search",
             "/r/Python/comments/1abcde/x/"),
            ("http://reddit.com/r/Python/comments/1abcde/", "/r/Python/comments/1abcde/"),
            ("/r/Python/comments/1abcde/x/", "/r/Python/comments/1abcde/x/"),
        ],
    )  # fmt: skip
    def test_a_reddit_permalink_is_stored_as_its_path(self, given: str, stored: str) -> None:
        (post,) = parse_mongoexport([export_line(old_record("1abcde", permalink=given))]).posts
        assert post["permalink"] == stored
        assert post["subreddit"] == "Python"

    @pytest.mark.parametrize("permalink", EVIL_PERMALINKS)
    def test_a_permalink_off_reddit_is_dropped(self, permalink: str) -> None:
        raw = record("1abcde", permalink=permalink)
        (post,) = parse_mongoexport([export_line(raw)]).posts
        assert post["permalink"] == "/r/python/comments/1abcde/"
        assert urlsplit("https://www.reddit.com" + post["permalink"]).hostname == "www.reddit.com"

    @pytest.mark.parametrize("permalink", EVIL_PERMALINKS)
    def test_without_a_subreddit_a_permalink_off_reddit_rejects_the_row(self, permalink) -> None:
        report = parse_mongoexport([export_line(old_record("1abcde", permalink=permalink))])
        assert report.posts == []
        assert "subreddit" in report.rejected[0].reason

    def test_the_mongoexport_fixture_imports_every_good_row(self) -> None:
        content, content_type = read_file(FIXTURES / "old-reddit.ndjson")
        report = parse_upload(content, content_type)
        assert report.count == 30
        reasons = {rejection.where: rejection.reason for rejection in report.rejected}
        assert set(reasons) == {"line 6", "line 15", "line 26"}
        assert "id" in reasons["line 6"]
        assert "title" in reasons["line 15"]
        assert "subreddit" in reasons["line 26"]
        for post in report.posts:
            assert post["permalink"].startswith(f"/r/{post['subreddit']}/comments/{post['id']}/")
            assert isinstance(post["created_utc"], int) and post["created_utc"] > 1370000000
            assert isinstance(post["is_self"], bool)
            assert all(isinstance(post[f], int) for f in ("score", "ups", "downs", "num_comments"))
        by_id = {post["id"]: post for post in report.posts}
        assert by_id["1fymy0"]["subreddit"] == "Python" and by_id["1fymy0"]["is_self"] is True
        assert by_id["1fynj7"]["created_utc"] == 1370758600  # "1.370758600e+09", a string
        assert by_id["1fyn8q"]["score"] == by_id["1fyn8q"]["ups"] - by_id["1fyn8q"]["downs"]

    def test_the_listing_fixture_imports_every_post(self) -> None:
        content, content_type = read_file(FIXTURES / "old-reddit-listing.json")
        report = parse_upload(content, content_type)
        assert [post["id"] for post in report.posts] == ["1fzq0a", "1fzq2p", "1fzq55", "1fzq7k"]
        assert [rejection.where for rejection in report.rejected] == ["child 3", "child 6"]
        pandas = report.posts[1]  # no subreddit field, an absolute permalink
        assert pandas["subreddit"] == "Python"
        assert (
            pandas["permalink"]
            == "/r/Python/comments/1fzq2p/pandas_011_release_brings_dtype_improvements/"
        )


def test_an_unparsable_url_is_replaced_not_fatal_to_the_import():
    lines = [export_line(record("aaa1", url="http://[", domain="")), export_line(record("bbb2"))]
    report = parse_mongoexport(lines)
    assert [post["id"] for post in report.posts] == ["aaa1", "bbb2"]
    assert (
        report.posts[0]["url"] == "https://www.reddit.com/r/python/comments/aaa1/learning_asyncio/"
    )
