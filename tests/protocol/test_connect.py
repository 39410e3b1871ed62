"""The upgrade request of docs/protocol.md ("Connecting")."""

import pytest

from voxline.protocol.connect import ConnectRequest, parse_connect, select_subprotocol
from voxline.protocol.errors import Rejection
from voxline.protocol.frames import Framing


def test_subprotocol_echo_rule() -> None:
    assert select_subprotocol(["pyai-key.k", "pyai.v1"]) == "pyai.v1"
    assert select_subprotocol(["x", "pyai-key.k"]) == "pyai-key.k"
    assert select_subprotocol(["other"]) == "other"
    assert select_subprotocol([]) is None


def test_credential_order() -> None:
    request = parse_connect(
        {"api_key": "q"}, {"authorization": "Bearer h"}, ["pyai.v1", "pyai-key.s"]
    )
    assert isinstance(request, ConnectRequest)
    assert (request.credential, request.credential_source) == ("s", "subprotocol")
    request = parse_connect({"api_key": "q"}, {"authorization": "Bearer h"}, [])
    assert isinstance(request, ConnectRequest)
    assert request.credential == "q"
    request = parse_connect({}, {"authorization": "Bearer h"}, [])
    assert isinstance(request, ConnectRequest)
    assert request.credential == "h"
    request = parse_connect({}, {}, ["pyai.v1"])
    assert isinstance(request, ConnectRequest)
    assert request.credential is None


def test_defaults_and_label_aliases() -> None:
    request = parse_connect({"agent": "legacy"}, {"origin": "https://a.example"}, [])
    assert isinstance(request, ConnectRequest)
    assert (request.rate, request.label, request.framing, request.origin) == (
        24000,
        "legacy",
        None,
        "https://a.example",
    )
    request = parse_connect({"session_label": "a", "agent_id": "b", "framing": "raw"}, {}, [])
    assert isinstance(request, ConnectRequest)
    assert (request.label, request.framing) == ("a", Framing.RAW)


@pytest.mark.parametrize(
    ("query", "label", "agent_id"),
    [
        ({"agent_id": "agent_abc"}, "agent_abc", "agent_abc"),
        ({"agent": "agent_abc"}, "agent_abc", "agent_abc"),  # the deprecated path's name
        ({"session_label": "desk", "agent_id": "agent_abc"}, "desk", "agent_abc"),
        ({"agent_id": "front-desk"}, "front-desk", None),  # an opaque label, as ever
        ({"session_label": "agent_abc"}, "agent_abc", None),  # never names an agent
    ],
)
def test_an_agent_id_starting_agent_names_a_stored_agent(
    query: dict[str, str], label: str, agent_id: str | None
) -> None:
    request = parse_connect(query, {}, [])
    assert isinstance(request, ConnectRequest)
    assert (request.label, request.agent_id) == (label, agent_id)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"session_label": "desk", "agent_id": "agent_" + "x" * 300}, "invalid_agent_id"),
        ({"format": "opus"}, "invalid_format"),
        ({"rate": "44100"}, "invalid_rate"),
        ({"rate": "fast"}, "invalid_rate"),
        ({"rate": "²"}, "invalid_rate"),  # passes str.isdigit(), then int() raises
        ({"rate": "１６０００"}, "invalid_rate"),  # fullwidth digits, which int() reads
        ({"rate": " 16000"}, "invalid_rate"),
        ({"session_label": "x" * 257}, "invalid_agent_id"),
        ({"agent_id": "bad\nlabel"}, "invalid_agent_id"),
        ({"framing": "json"}, "invalid_framing"),
    ],
)
def test_bad_requests(query: dict[str, str], code: str) -> None:
    rejection = parse_connect(query, {}, [])
    assert isinstance(rejection, Rejection)
    assert rejection.code == code
    assert rejection.kind.close_code == 4400
