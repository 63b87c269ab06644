"""The message contract: every message type has a schema per version, every producer writes
what its type's newest schema says, and every consumer reads every version it claims.

The schemas are files (workshop/platform/schemas/<type>.v<N>.json); a consumer checks each message
it handles against the schema of its version and refuses the rest (their dead-letter path
runs on a real broker in tests/integration/test_message_versions.py).
"""

import itertools
import json

import pytest
from jsonschema import Draft202012Validator

from tooling.stages import get_stage
from workshop import db as databases
from workshop.data.sample import sample_posts
from workshop.domain.posts import normalise
from workshop.domain.tags import tag_list
from workshop.platform import messages, schemas
from workshop.platform.messages import POST_UPSERTED, Message

# Every message type the code names (the constants of workshop/platform/messages.py).
TYPES = sorted(
    value for name, value in vars(messages).items()
    if name.isupper() and isinstance(value, str) and "." in value and " " not in value
)  # fmt: skip
CONSUMER_STAGES = ["03-services", "04-async"]


def test_every_message_type_has_a_schema_and_every_schema_a_type():
    assert set(schemas.catalogue()) == set(TYPES)
    for message_type in TYPES:
        assert schemas.versions(message_type)[0] == 1, "versions count from 1"


@pytest.mark.parametrize(
    ("message_type", "version"),
    [(kind, v) for kind, versions in schemas.catalogue().items() for v in versions],
)
def test_each_schema_is_json_schema_and_its_examples_follow_it(message_type, version):
    path = schemas.FOLDER / f"{message_type}.v{version}.json"
    document = json.loads(path.read_text())
    Draft202012Validator.check_schema(document)
    assert document["title"] == f"{message_type}, version {version}"
    assert document["examples"], "a test or a lab sends the example"
    for example in document["examples"]:
        assert schemas.payload_problem(message_type, version, example) is None


def test_a_later_version_only_adds_fields():
    # What lets sync hand an older reader a newer message: the old fields stay as they were.
    for message_type, versions in schemas.catalogue().items():
        for older, newer in itertools.pairwise(versions):
            old = schemas.schema(message_type, older)
            new = schemas.schema(message_type, newer)
            for name, rule in old["properties"].items():
                assert new["properties"][name] == rule, (message_type, newer, name)
            assert set(old["required"]) <= set(new["required"])


def test_ingest_writes_post_upserted_in_its_newest_version():
    posts = [normalise(raw) for raw in sample_posts(200)]
    for post in posts:
        message = Message(POST_UPSERTED, post["id"], 1, messages.post_upserted(post), "ingest")
        newest = schemas.newest(POST_UPSERTED)
        assert message.schema_version == newest >= 2
        assert message.problem({POST_UPSERTED: (newest,)}) is None, post["id"]
    ratios = [messages.post_upserted(p)["upvote_ratio"] for p in posts]
    assert all(r is None or 0 <= r <= 1 for r in ratios) and any(r for r in ratios)


def test_tag_and_users_write_their_types():
    tags = {"tags": tag_list({"til": 2, "python": 1, "gone": 0})}
    assert schemas.payload_problem(messages.TAGS_CHANGED, 1, tags) is None
    assert schemas.payload_problem(messages.TAGS_CHANGED, 1, {"tags": []}) is None
    preferences = {"user": "alice", "topics": ["python"]}
    assert schemas.payload_problem(messages.PREFERENCES_UPDATED, 1, preferences) is None


def test_a_v2_post_reaches_a_v1_reader_without_the_new_field():
    payload = schemas.example(POST_UPSERTED, 2)
    v2 = Message(POST_UPSERTED, "abc", 7, payload, "ingest", schema_version=2)
    for_v1 = v2.for_reader((1,))
    assert for_v1.schema_version == 1 and "upvote_ratio" not in for_v1.payload
    assert for_v1.id == v2.id, "the same change: a consumer of both drops the second"
    assert for_v1.problem({}) is None
    assert v2.for_reader((1, 2)) is v2
    # A version with no readable form stays as it is: its reader refuses it, and says why.
    unknown = Message(POST_UPSERTED, "abc", 8, {"title": "x"}, "ingest", schema_version=9)
    assert unknown.for_reader((1,)) is unknown
    assert "reads version 1" in unknown.problem({})


def test_a_message_from_before_versions_reads_as_version_1():
    data = Message(messages.TAGS_CHANGED, "abc", 3, {"tags": []}, "tag").to_dict()
    del data["schema_version"]
    assert Message.from_dict(data).schema_version == 1


@pytest.mark.parametrize("stage", CONSUMER_STAGES)
def test_every_consumer_reads_versions_that_exist(stage):
    """Each service's declared reads name schemas in the repository, and each subscribed
    type's examples, in every version it reads, pass its consumer's check."""
    services, found = {}, get_stage(stage)
    for module in found.packages():  # every service, one added in class too
        if module not in ("chassis", "recommend") and (found.path / module / "service.py").exists():
            services[module] = found.load(f"{module}.service").service
    assert {"search", "tag", "users", "ingest", "sync"} <= set(services)
    recommend = get_stage(stage).load("recommend.service")
    for version in ("1", "2"):
        services[f"recommend-v{version}"] = recommend.make_service(version, f"recommend-v{version}")
    assert {1, 2} <= set(services["recommend-v2"].reads[POST_UPSERTED])
    assert services["recommend-v1"].reads == {}, "v1 keeps reading the first version"
    for message_type, versions in schemas.every_version().items():
        if message_type in messages.MASTER_DATA_TYPES:  # logged and handed on unchecked
            assert services["sync"].reads[message_type] is schemas.PASS_ON, message_type
        else:
            assert services["sync"].reads[message_type] == versions, message_type
    for name, service in services.items():
        # What a service follows in the strangler fig is read as what it subscribes to.
        for message_type in {**service.subscribes, **getattr(service, "follows", {})}:
            readable = service.reads.get(message_type, (schemas.FIRST,))
            for version in readable:
                payload = schemas.example(message_type, version)
                message = Message(message_type, "k", 1, payload, "t", schema_version=version)
                assert message.problem(service.reads) is None, (name, message_type, version)


def test_sync_passes_on_master_data_unchecked_and_checks_what_is_meant_for_it():
    sync = get_stage("03-services").load("sync.service").service
    ahead = Message(POST_UPSERTED, "abc", 8, {"title": "x"}, "ingest", schema_version=9)
    assert ahead.problem(sync.reads) is None, "logged, and refused by the subscribers"
    assert ahead.for_reader((1,)) is ahead, "no schema for v9: nothing to take off by"
    declared = Message(messages.SUBSCRIPTION_DECLARED, "q", 1, {"queue": "q"}, "q")
    assert "types" in declared.problem(sync.reads)


def test_the_monolith_hands_each_owner_its_data_in_the_owner_types(tmp_path):
    """The strangler fig's monolith: every change goes out in each type it publishes, and
    each payload follows its type's newest schema (the hand-over types included)."""
    found = get_stage("03-services")
    store, outbox = found.load("monolith.store"), found.load("chassis.messaging.outbox")
    name = f"test-monolith-{tmp_path.name[-8:]}"
    database = databases.database(name)
    try:
        database.taggings.insert_many([
            {"post_id": "abc", "tag": "til", "user": "bob"},
            {"post_id": "abc", "tag": "til", "user": "alice"},
            {"post_id": "abc", "tag": "python", "user": "alice"},
        ])  # fmt: skip
        post = normalise(sample_posts(1)[0])
        documents = {
            messages.POST_UPSERTED: {**post, "_id": post["id"]},
            messages.TAGS_CHANGED: {"_id": "abc"},
            messages.PREFERENCES_UPDATED: {"_id": "alice", "password_hash": "h", "topics": ["ml"]},
        }  # fmt: skip
        published: dict[str, dict] = {}
        for source in store.outbox(database):
            assert isinstance(source, outbox.Source)
            for kind, payload in source.messages(documents[source.message_type]):
                problem = schemas.payload_problem(kind, schemas.newest(kind), payload)
                assert problem is None, (kind, problem)
                published[kind] = payload
    finally:
        databases.client().drop_database(name)
    assert set(published) == set(messages.MASTER_DATA_TYPES)
    assert published[messages.TAGGINGS_CHANGED] == {
        "taggings": {"python": ["alice"], "til": ["alice", "bob"]}
    }
    assert published[messages.TAGS_CHANGED]["tags"][0] == {"tag": "til", "count": 2}
    assert published[messages.ACCOUNT_CHANGED] == {"password_hash": "h", "topics": ["ml"]}
