"""Agent profiles as clients write them: checked by configure's own rules, knowledge by the
knowledge file's; and their knowledge indexed once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.examples import ACME_DENTAL
from voxline.agents import profiles
from voxline.agents.profiles import ProfileError, changes, knowledge_of
from voxline.protocol import client_frames
from voxline.protocol.agent_profile import AgentProfile

KNOWLEDGE = {"entries": [{"question": "Is there parking?", "answer": "Yes, behind the building."}]}


def _refusal(payload: Any, **kwargs: bool) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        changes(payload, creating=kwargs.pop("creating", False), **kwargs)
    return caught.value


def test_a_profile_takes_configure_settings_vocabulary_and_knowledge() -> None:
    made = changes(
        {
            "name": " Front desk ",
            "instructions": "You are Maya at Acme Dental.",
            "greeting": "Thanks for calling.",
            "endpointing_ms": 800,
            "vocabulary": ["Nguyen", " Acme  Dental ", "nguyen"],
            "knowledge": KNOWLEDGE,
            "agent_id": "agent_ignored",  # read-only fields of a fetched object are ignored
            "created_at": 1,
        },
        creating=True,
    )
    assert made["name"] == "Front desk"
    assert made["persona"] == "You are Maya at Acme Dental."
    assert made["vocabulary"] == ["Nguyen", "Acme Dental"]
    assert json.loads(made["knowledge"]) == KNOWLEDGE
    assert "agent_id" not in made and "created_at" not in made


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("endpointing_ms", 50),
        ("greeting", 7),
        ("kb_endpoint", "ftp://kb.example"),
        ("tools", [{"name": "bad name"}]),
        ("barge_in_confidence", 2),
    ],
)
def test_settings_are_refused_with_configures_own_message(key: str, value: Any) -> None:
    with pytest.raises(ValueError) as by_configure:
        client_frames.check_setting(key, value)
    refusal = _refusal({key: value})
    assert (str(refusal), refusal.param) == (str(by_configure.value), key)


@pytest.mark.parametrize(
    ("payload", "param", "message"),
    [
        ({"greeting": "Hi."}, "name", "name is required"),
        ({"name": ""}, "name", "non-empty"),
        ({"name": "x", "greting": "Hi."}, "greting", "unknown field"),
        ({"name": "x", "audio_out": 16000}, "audio_out", "unknown field"),
        ({"name": "x", "vocabulary": "Nguyen"}, "vocabulary", "a list"),
        ({"name": "x", "vocabulary": ["ok", ""]}, "vocabulary", "non-empty"),
        ({"name": "x", "vocabulary": ["a"] * 101}, "vocabulary", "at most 100"),
        ({"name": "x", "knowledge": {"entires": []}}, "knowledge", "entires"),
        ({"name": "x", "knowledge": []}, "knowledge", "knowledge"),
        ({"name": "x", "knowledge_file": "/etc/passwd"}, "knowledge_file", "only on the server"),
        ({"name": "x", "persona": "a", "instructions": "b"}, "instructions", "same field"),
        ([], None, "JSON object"),
    ],
)
def test_bad_profiles_are_refused(payload: Any, param: str | None, message: str) -> None:
    refusal = _refusal(payload, creating=True)
    assert refusal.param == param
    assert message in str(refusal)


def test_a_knowledge_file_only_on_the_server(tmp_path: Path) -> None:
    made = changes({"knowledge_file": str(ACME_DENTAL)}, creating=False, files=True)
    assert made == {"knowledge_file": str(ACME_DENTAL.resolve())}
    broken = tmp_path / "kb.json"
    broken.write_text('{"entries": [{"question": "q"}]}')
    refusal = _refusal({"knowledge_file": str(broken)}, files=True)
    assert refusal.param == "knowledge_file" and "answer" in str(refusal)


def test_null_unsets_a_field_on_update() -> None:
    assert changes({"greeting": None, "knowledge": None}, creating=False) == {
        "greeting": None,
        "knowledge": None,
    }
    assert _refusal({"name": None}).param == "name"


def test_inline_knowledge_is_indexed_once_however_many_sessions() -> None:
    text = changes({"knowledge": KNOWLEDGE}, creating=False)["knowledge"]
    agent = AgentProfile(id="agent_1", owner="o", name="n", knowledge=text)
    same_text = AgentProfile(id="agent_2", owner="o", name="n", knowledge=text)
    first = knowledge_of(agent)
    assert first is not None and first is knowledge_of(same_text)
    assert first.search("is there parking", k=1)[0].text == "Yes, behind the building."


def test_a_knowledge_file_gone_leaves_the_call_without_it(tmp_path: Path) -> None:
    agent = AgentProfile(
        id="agent_1", owner="o", name="n", knowledge_file=str(tmp_path / "gone.json")
    )
    assert knowledge_of(agent) is None
    assert knowledge_of(AgentProfile(id="agent_2", owner="o", name="n")) is None


def test_the_api_object_never_shows_the_kb_token() -> None:
    agent = AgentProfile(
        id="agent_1",
        owner="o",
        name="Desk",
        settings={"kb_endpoint": "https://kb.example/q", "kb_token": "s3cret"},
        vocabulary=("Nguyen",),
    )
    shown = profiles.as_json(agent)
    assert "s3cret" not in json.dumps(shown)
    assert shown["kb_token_set"] is True and shown["kb_endpoint"] == "https://kb.example/q"
    assert (shown["object"], shown["agent_id"], shown["id"]) == ("agent", "agent_1", "agent_1")
    assert shown["vocabulary"] == ["Nguyen"] and shown["persona"] is None
