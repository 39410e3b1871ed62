"""The embedded knowledge-grounded responder: intents, keypad menu, answers, persona."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from tests.support.examples import ACME_DENTAL
from voxline.engines.brain import Brain, BrainOutput, BrainRequest, Message, TextDelta
from voxline.engines.knowledge import KnowledgeBase
from voxline.engines.responder import ANYTHING_ELSE, KnowledgeResponder, Reply, Voice, speakable
from voxline.protocol.call_control import HangUp, Transfer

PERSONA = "You are Maya, the friendly receptionist at Acme Dental. Keep answers short."


@pytest.fixture(scope="module")
def responder() -> KnowledgeResponder:
    return KnowledgeResponder(KnowledgeBase.load(ACME_DENTAL))


def ask(
    responder: KnowledgeResponder,
    text: str | None = None,
    *,
    digits: str | None = None,
    persona: str | None = PERSONA,
    history: Sequence[Message] = (),
    knowledge: Sequence[str] = (),
) -> Reply:
    request = BrainRequest(
        persona=persona,
        history=tuple(history),
        user_text=text,
        digits=digits,
        knowledge=tuple(knowledge),
    )
    return responder.reply(request)


def after(line: str) -> list[Message]:
    return [Message("user", "earlier question"), Message("assistant", line)]


async def no_tools(name: str, arguments: dict[str, Any]) -> str:
    raise AssertionError("the responder runs no tools")


# ---- a person -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Can I speak to a human?",
        "I want to talk to a real person please",
        "Let me speak with someone",
        "representative",
        "Agent, please.",
        "operator",
        "transfer me to the front desk",
        "could you put me through to reception",
        "I need a human",
        "can i talk to somebody at the front desk about my bill",
        "get me a representative",
    ],
)
def test_asking_for_a_person_transfers(responder: KnowledgeResponder, text: str) -> None:
    reply = ask(responder, text, history=[Message("user", "do you take delta")])
    assert isinstance(reply.action, Transfer)
    assert reply.action.reason == "caller_requested_human"
    summary = reply.action.summary or ""
    assert "do you take delta" in summary
    assert text in summary
    assert "Acme Dental" in reply.text


@pytest.mark.parametrize(
    "text",
    [
        "I'm a human being with a question about hours",
        "are you a real person",
        "is this a human",
        "I don't want to talk to a person",
        "do you have parking for people in wheelchairs",
        "my insurance agent said you take delta",
        "can someone see my son this week",
    ],
)
def test_mentioning_people_does_not_transfer(responder: KnowledgeResponder, text: str) -> None:
    reply = ask(responder, text)
    assert reply.action is None, reply


def test_are_you_a_person_is_answered_with_the_agent_name(responder: KnowledgeResponder) -> None:
    reply = ask(responder, "Are you a real person?")
    assert reply.text.startswith("I'm Maya, a virtual assistant for Acme Dental.")


# ---- goodbye ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Goodbye.",
        "ok thanks bye",
        "Thank you, goodbye!",
        "bye bye",
        "That's all, thank you.",
        "no that's it thanks",
        "alright that's everything I needed",
        "great, have a nice day",
        "I'm done",
        "please hang up",
        "see you later",
    ],
)
def test_goodbyes_end_the_call(responder: KnowledgeResponder, text: str) -> None:
    reply = ask(responder, text)
    assert reply.action == HangUp("caller_goodbye")
    assert reply.text == "Thanks for calling Acme Dental. Goodbye!"


@pytest.mark.parametrize(
    "text",
    [
        "how do I say goodbye to toothache",
        "goodbye to my toothache would be nice, what can you do",
        "is that all the insurance you take",
        "what happens if I say bye before the cleaning is done",
        "thank you",
    ],
)
def test_goodbye_words_inside_questions_do_not_end(
    responder: KnowledgeResponder, text: str
) -> None:
    assert ask(responder, text).action is None


def test_no_after_anything_else_ends_and_yes_goes_on(responder: KnowledgeResponder) -> None:
    history = after(f"You're welcome! {ANYTHING_ELSE}")
    for text in ("no", "No thanks.", "nope, I'm good"):
        assert ask(responder, text, history=history).action == HangUp("caller_goodbye")
    reply = ask(responder, "yes", history=history)
    assert reply.action is None
    assert reply.text == "Sure, what else can I help with?"


# ---- the keypad menu --------------------------------------------------------------------


def test_menu_digit_speaks_its_answer(responder: KnowledgeResponder) -> None:
    reply = ask(responder, digits="1")
    assert reply.text.startswith("We're open Monday to Thursday")
    assert reply.action is None
    assert ask(responder, digits="1#").text == reply.text


def test_menu_digit_with_an_action_acts(responder: KnowledgeResponder) -> None:
    zero = ask(responder, digits="0")
    assert isinstance(zero.action, Transfer)
    assert zero.action.reason == "menu_selection"
    assert "pressed 0" in (zero.action.summary or "")
    three = ask(responder, digits="3")
    assert (
        three.text == "Let me put you through to our front desk to book or change your appointment."
    )


def test_digit_not_on_the_menu_reprompts_with_the_options(responder: KnowledgeResponder) -> None:
    reply = ask(responder, digits="7")
    assert reply.action is None
    assert reply.text == (
        "Sorry, 7 is not an option. Press 1 for our opening hours, 2 for our address and "
        "parking, 3 for booking or changing an appointment, 4 for a dental emergency, "
        "or 0 for a member of our team."
    )


def test_the_last_digit_keyed_counts(responder: KnowledgeResponder) -> None:
    assert ask(responder, digits="71").text == ask(responder, digits="1").text


def test_menu_end_call_and_the_menu_read_on_request() -> None:
    kb = KnowledgeBase.from_dict(
        {
            "menu": {
                "1": {"label": "our hours", "answer": "Nine to five."},
                "9": {"label": "ending the call", "action": "end_call"},
            }
        }
    )
    responder = KnowledgeResponder(kb)
    reply = ask(responder, digits="9", persona=None)
    assert reply == Reply("Thanks for calling. Goodbye!", HangUp("menu_selection"))
    menu = ask(responder, "what are my options", persona=None)
    assert menu.text == "Press 1 for our hours, or 9 for ending the call."


def test_keys_without_a_menu_are_explained() -> None:
    reply = ask(KnowledgeResponder(None), digits="1", persona=None)
    assert reply.action is None
    assert "keypad" in reply.text


# ---- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("do you take delta dental", "We accept most PPO dental plans"),
        ("Where do I park?", "Yes, there's free parking"),
        ("whats the cancelation policy", "Please give us at least 24 hours' notice"),
        ("my tooth got knocked out what should i do", "If you have a dental emergency"),
    ],
)
def test_questions_are_answered_from_the_file(
    responder: KnowledgeResponder, text: str, start: str
) -> None:
    reply = ask(responder, text)
    assert reply.text.startswith(start)
    assert reply.action is None


def test_unknown_questions_are_plainly_not_known(responder: KnowledgeResponder) -> None:
    reply = ask(responder, "what's the weather like tomorrow")
    assert reply.text == (
        "I'm sorry, I don't have that information. "
        "Would you like me to connect you with someone at Acme Dental?"
    )
    yes = ask(responder, "yes please", history=after(reply.text))
    assert isinstance(yes.action, Transfer)
    assert yes.action.reason == "caller_accepted_offer"
    no = ask(responder, "no thanks", history=after(reply.text))
    assert no == Reply(f"Okay. {ANYTHING_ELSE}")


def test_a_question_in_chatter_is_checked_then_answered(responder: KnowledgeResponder) -> None:
    check = ask(responder, "I'm a human being with a quick question about the hours")
    assert check == Reply("Just to check, are you asking: What are your opening hours?")
    yes = ask(responder, "yeah", history=after(check.text))
    assert yes.text.startswith("We're open Monday to Thursday")
    no = ask(responder, "no", history=after(check.text))
    assert no.text.startswith("I'm sorry, I don't have that information.")
    passage = ask(responder, "how do I say goodbye to toothache")
    assert passage.text == "Just to check, are you asking about dental emergencies?"
    assert ask(responder, "yes", history=after(passage.text)).text.startswith(
        "If you have a dental emergency"
    )


def test_endpoint_passages_come_first_and_are_made_speakable(
    responder: KnowledgeResponder,
) -> None:
    passages = [
        "## Booking\n**Acme Dental** books *new patients* within a week.\n"
        "- Book online at [our booking page](https://acme.example/book) or https://acme.example\n"
        "- Questions: hello@acme.example",
        "Parking is free behind the building.",
    ]
    reply = ask(responder, "how do I book online", knowledge=passages)
    assert reply.text == "Book online at our booking page or our website."


def test_off_topic_endpoint_passages_are_not_read(responder: KnowledgeResponder) -> None:
    passages = [
        "Bills are issued on the first of each month and due by the 15th.",
        "Installation is free with a 12 month contract.",
    ]
    # Nothing in the passages answers it: the file does.
    assert ask(responder, "do you take delta dental", knowledge=passages).text.startswith(
        "We accept most PPO dental plans"
    )
    assert ask(responder, "tell me a joke", knowledge=passages).text.startswith("I'm sorry")


def test_without_a_knowledge_file_endpoint_passages_still_answer() -> None:
    responder = KnowledgeResponder(None)
    passages = ["A late fee of 10 dollars applies after the due date. Pay by card or autopay."]
    assert ask(responder, "is there a late fee", knowledge=passages, persona=None).text == (
        "A late fee of 10 dollars applies after the due date."
    )
    unknown = ask(responder, "do you sell phones", persona=None)
    assert unknown.text == (
        "I'm sorry, I don't have that information. "
        "Would you like me to connect you with a member of our team?"
    )


def test_every_answer_of_the_example_is_speakable(responder: KnowledgeResponder) -> None:
    kb = responder.knowledge
    assert kb is not None
    for entry in kb.entries:
        question = getattr(entry, "question", None) or getattr(entry, "title", "")
        text = ask(responder, question).text
        assert not re.search(r"https?://|www\.|[*#_`\[\]]", text), text
        assert 1 <= len(re.findall(r"[.!?](?:\s|$)", text)) <= 3, text


def test_speakable_strips_markup_and_keeps_three_sentences() -> None:
    assert speakable("# Title\n- **One.** Two. Three. Four.") == "One. Two. Three."
    assert speakable("Visit www.acme.example/book, or call.") == "Visit our website, or call."
    assert speakable("We take:\n1. Cash\n2. Cards\n") == "We take: Cash. Cards."
    assert speakable("Questions? Write to hello@acme.example") == (
        "Questions? Write to hello at acme dot example."
    )


# ---- small talk and persona ---------------------------------------------------------------


def test_hello_repeat_thanks_and_nothing_said(responder: KnowledgeResponder) -> None:
    assert ask(responder, "Hello? Is anyone there?").text == "Hi, this is Maya. How can I help?"
    assert ask(responder, "hello", persona=None).text == "Hi there. How can I help?"
    said = "We're open nine to five."
    assert ask(responder, "sorry, can you repeat that?", history=after(said)).text == said
    assert ask(responder, "thanks so much").text == f"You're welcome! {ANYTHING_ELSE}"
    assert ask(responder, "hi i have a question").text.startswith("Sorry, I didn't quite catch")
    assert ask(responder, None).text.startswith("Sorry, I didn't quite catch")


@pytest.mark.parametrize(
    ("persona", "agent", "business"),
    [
        (PERSONA, "Maya", "Acme Dental"),
        (
            "You are Sam. You answer calls for Springfield Family Dentistry.",
            "Sam",
            "Springfield Family Dentistry",
        ),
        ("Your name is Leo and you work at Bright Smiles & Co.", "Leo", "Bright Smiles & Co"),
        ("You are a helpful receptionist. Be brief.", None, "Fallback Clinic"),
        ("You are Acme Dental's virtual receptionist.", None, "Fallback Clinic"),
        ("You are Ana. You take calls from Monday to Friday.", "Ana", "Fallback Clinic"),
        ("You are Ana, taking calls from Monday on for Bright Dental.", "Ana", "Bright Dental"),
        (None, None, "Fallback Clinic"),
    ],
)
def test_persona_names_the_agent_and_the_business(
    persona: str | None, agent: str | None, business: str
) -> None:
    assert Voice.from_persona(persona, business="Fallback Clinic") == Voice(agent, business)


def test_without_names_the_lines_are_neutral() -> None:
    reply = ask(KnowledgeResponder(None), "can I talk to a person", persona="Be brief.")
    assert reply.text == "Of course. I'll connect you with a member of our team now."
    bye = ask(KnowledgeResponder(None), "bye", persona=None)
    assert bye.text == "Thanks for calling. Goodbye!"


# ---- the Brain interface --------------------------------------------------------------------


async def test_reply_streams_sentence_by_sentence_then_the_action(
    responder: KnowledgeResponder,
) -> None:
    brain: Brain = responder
    request = BrainRequest(persona=PERSONA, history=(), user_text="put me through to someone")
    outputs: list[BrainOutput] = [out async for out in brain.respond(request, no_tools)]
    assert outputs == [
        TextDelta("Of course. "),
        TextDelta("I'll connect you with someone at Acme Dental now."),
        outputs[-1],
    ]
    assert isinstance(outputs[-1], Transfer)
    request = BrainRequest(persona=PERSONA, history=(), user_text="what languages do you speak")
    deltas = [out async for out in responder.respond(request, no_tools)]
    assert all(isinstance(out, TextDelta) for out in deltas)
    assert len(deltas) == 2
    assert (
        "".join(out.text for out in deltas if isinstance(out, TextDelta))
        == responder.reply(request).text
    )


def test_a_turn_takes_well_under_five_milliseconds(responder: KnowledgeResponder) -> None:
    passages = ["Parking is free behind the building. The entrance is on Fifth Street."] * 3
    requests = [
        BrainRequest(persona=PERSONA, history=after("Hello."), user_text=text, knowledge=knowledge)
        for text in (
            "do you take delta dental",
            "my tooth got knocked out what should i do",
            "what's the weather like tomorrow",
            "i'm a human being with a question about hours",
            "where do i park",
        )
        for knowledge in ((), passages)
    ]
    responder.reply(requests[0])
    start = time.perf_counter()
    for _ in range(20):
        for request in requests:
            responder.reply(request)
    per_turn = (time.perf_counter() - start) / (20 * len(requests))
    assert per_turn < 0.005


def test_the_sessions_own_knowledge_is_searched(responder: KnowledgeResponder) -> None:
    """A session from a stored agent brings its own knowledge, used instead of the server's."""
    own = KnowledgeBase.from_dict(
        {"name": "Bright Smiles", "entries": [{"question": "Is there parking?", "answer": "No."}]}
    )
    request = BrainRequest(
        persona=None, history=(), user_text="Is there parking?", knowledge_base=own
    )
    assert responder.reply(request).text == "No."
    assert responder.reply(replace(request, knowledge_base=None)).text != "No."
