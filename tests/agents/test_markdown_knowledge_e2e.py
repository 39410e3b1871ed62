"""The default agent answering from a Markdown knowledge file (``voxline serve --knowledge
file.md``): headings, a Q/A list and a question heading give grounded answers to typed
questions, paraphrased ones included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.caller import Caller, Received
from tests.support.server import OPEN_LIMITS, RunningServer, run_server

pytestmark = pytest.mark.e2e

HOURS = "We're open Monday to Friday from 8 in the morning to 6 in the evening."
PARKING = "Yes, there's free parking behind the shop."
WALK_INS = "Yes, walk-ins are welcome before noon."
PRICES = "A full service is 80 dollars, and a tune-up is 45 dollars."
KNOWLEDGE = f"""# Spoke & Chain Bicycles

Greeting: Thanks for calling Spoke and Chain, how can I help?

## Visiting

### Opening hours

{HOURS} We're closed at weekends.

## Questions

- **Is there parking?** {PARKING}
- **Do you take walk-ins?** {WALK_INS}

Q: How much is a service?
A: {PRICES}
"""

# (typed question, a phrase of the answer)
QUESTIONS = [
    ("What are your hours during the week?", "Monday to Friday"),  # said in other words
    ("What do you charge for a tune-up?", PRICES),
    ("What is the price of a service?", PRICES),
    ("Do you accept walk-ins?", WALK_INS),
    ("Is there parking?", PARKING),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("markdown")
    knowledge = Path(directory / "bicycles.md")
    knowledge.write_text(KNOWLEDGE)
    with run_server(
        directory / "data", env=OPEN_LIMITS, agent="default", args=("--knowledge", str(knowledge))
    ) as running:
        yield running


def _said(got: Received) -> list[str]:
    return [
        event["text"]
        for _, event in got.events
        if event["event"] == "transcript" and event["role"] == "assistant" and event["final"]
    ]


async def test_a_markdown_file_serves_grounded_answers(server: RunningServer) -> None:
    caller = await Caller.open(
        server.ws, subprotocols=["pyai.v1", f"pyai-key.{server.create_key()}"]
    )
    await caller.send_control({"type": "configure"})
    await caller.silence_until(lambda got: len(_said(got)) >= 1, timeout=20)
    assert _said(caller.got) == ["Thanks for calling Spoke and Chain, how can I help?"]
    for number, (question, phrase) in enumerate(QUESTIONS, start=2):
        await caller.send_control({"type": "input_text", "text": question})
        await caller.silence_until(lambda got, n=number: len(_said(got)) >= n, timeout=20)
        assert phrase in _said(caller.got)[-1], (question, _said(caller.got)[-1])
    await caller.close()
