"""The embedded brain: a knowledge-grounded responder, no language model needed.

Each caller turn is read in a fixed order: keypad digits (the knowledge file's menu), then
what the caller asks the call to do (a person, goodbye), replies to the agent's own last
question ("Would you like me to connect you…?"), small talk, and finally the question
itself, answered from the turn's ``kb_endpoint`` passages, else the knowledge file, else
with a plain "I don't know" and the offer of a person. Intents are matched on whole
phrases, not on single words, so "I'm a human being with a question" asks about hours and
"say goodbye to toothache" does not hang up.
"""

from __future__ import annotations

import re
from calendar import day_name
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Final

from voxline.engines.brain import (
    BrainOutput,
    BrainRequest,
    Message,
    TextDelta,
    ToolRunner,
)
from voxline.engines.knowledge import (
    ENDPOINT_GOOD_ENOUGH,
    Hit,
    KnowledgeBase,
    MenuItem,
    QuestionAnswer,
    best_excerpt,
    sentences,
    terms,
    words,
)
from voxline.protocol.call_control import CallControl, HangUp, Transfer

MAX_SPOKEN_SENTENCES: Final = 3
ENDPOINT_PASSAGES: Final = 3  # the endpoint ranks them; only its best few are read
SUMMARY_TURNS: Final = 3
MAX_SUMMARY_CHARS: Final = 500

ANYTHING_ELSE: Final = "Is there anything else I can help with?"
CHECK: Final = "Just to check, are you asking"


def _phrases(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns))


_TARGET = (
    r"(?:human|humans|person|people|agent|representative|rep|operator|receptionist|"
    r"front desk|customer service|staff|manager|someone|somebody|anyone|anybody|"
    r"dentist|doctor|hygienist)"
)
_STRONG_TARGET = (
    r"(?:human|person|agent|representative|operator|receptionist|front desk|customer service)"
)
_HUMAN = _phrases(
    rf"\b(?:speak|talk|chat)\s+(?:to|with)\s+(?:\w+\s+){{0,3}}?{_TARGET}\b",
    r"\b(?:transfer|connect)\s+me\b",
    r"\bput me through\b",
    rf"\b(?:want|need|like|get|give me|reach|prefer)\s+(?:\w+\s+){{0,3}}?{_STRONG_TARGET}\b",
    rf"^(?:(?:a|an|the|real|live|actual)\s+)*{_STRONG_TARGET}(?:\s+please)?$",
)
_NEGATED = re.compile(r"\b(?:dont|do not|not|never|no need to)\s+(?:\w+\s+){0,2}$")

_FAREWELL = (
    r"(?:good ?bye|bye(?: bye| now)?|see (?:you|ya)(?: later)?|take care|talk (?:to you )?later|"
    r"have a (?:good|nice|great|lovely) (?:day|one|evening|night|weekend|afternoon))"
)
_GOODBYE = _phrases(
    rf"(?<!\bsay )(?<!\bsaid )\b{_FAREWELL}(?: (?:then|now|thanks|thank you))?$",
    r"^(?:(?:no|nope|ok|okay|alright|great|perfect|cool|thanks|thank you)\s+)*"
    r"(?:thats|that is|thatll be) (?:all|it|everything)"
    r"(?: (?:i|we) (?:need|needed|wanted))?(?: for (?:now|today))?"
    r"(?: (?:thanks|thank you)(?: (?:so|very) much)?)?$",
    r"^(?:(?:ok|okay|alright)\s+)?(?:im|were|i am) (?:all )?done(?: (?:thanks|thank you))?$",
    r"^(?:please )?(?:hang up|end (?:the|this) call)(?: please)?$",
)
_YES = re.compile(
    r"^(?:(?:yes|yeah|yep|yup|sure|ok|okay|alright|absolutely|definitely|please|go ahead|"
    r"please do|do it|sounds good|that would be (?:great|good|helpful)|thanks|thank you)\s*)+$"
)
_AFFIRMATIVE = re.compile(
    r"\b(?:yes|yeah|yep|yup|sure|ok|okay|alright|absolutely|definitely|please|go ahead|sounds)\b"
)
_NO = re.compile(
    r"^(?:(?:no|nope|nah|not really|not now|im good|im fine|im okay|thats fine|"
    r"thanks|thank you|ok|okay)\s*)+$"
)
_NEGATIVE = re.compile(r"\b(?:no|nope|nah|not|im good|im fine|im okay)\b")
_IDENTITY = _phrases(
    r"\b(?:are you|is this|am i (?:talking|speaking) (?:to|with))\s+(?:a |an )?"
    r"(?:real |actual |live )?(?:human|person|robot|bot|machine|computer|ai|recording)\b",
    r"\b(?:whats|what is) your name\b",
    r"\bwho (?:am i|is this|are you)(?: (?:talking|speaking) (?:to|with))?$",
)
_REPEAT = _phrases(
    r"^(?:(?:sorry|pardon|excuse me|what)\s+)*(?:can|could|would) you (?:please )?"
    r"(?:repeat|say) (?:that|it|this)(?: again)?(?: please)?$",
    r"^(?:repeat (?:that|it)|say (?:that|it) again|come again|pardon(?: me)?|sorry what|"
    r"what did you say|i didnt (?:catch|hear|get) (?:that|it|you))(?: please)?$",
)
_MENU = re.compile(
    r"^(?:(?:can you|could you|please)\s+)?"
    r"(?:(?:repeat|say|read|list|give me|tell me|what are)\s+)?(?:(?:the|my|your)\s+)?"
    r"(?:menu|options|menu options|main menu)(?: again)?(?: please)?$"
)
_HELLO = re.compile(
    r"^(?:(?:hello|hi|hey|hiya|good morning|good afternoon|good evening|there|"
    r"is anyone there|anyone there|are you there|can you hear me)\s*)+$"
)
_THANKS = re.compile(
    r"^(?:(?:thanks|thank you|so much|very much|a lot|great|perfect|ok|okay|awesome|cool|"
    r"got it|that helps|that helped|alright)\s*)+$"
)

_HEADING = re.compile(r"^\s*#{1,6}\s.*$", re.MULTILINE)
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)\S+?(?=[.,;:!?)]?(?:\s|$))", re.IGNORECASE)
_EMAIL = re.compile(r"\b([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b")
_MARKUP = re.compile(r"^\s*(?:[-*•>]|\d+[.)])\s+|[*_`~]{1,3}|\|", re.MULTILINE)
_UNFINISHED_LINE = re.compile(r"(?<=[\w)])[ \t]*(?:\n|\Z)")


def plain(text: str) -> str:
    """Text fit to be read aloud: no markdown (headings dropped, list items made
    sentences), no URLs, e-mail addresses in words."""
    text = _HEADING.sub("", text)
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _URL.sub("our website", text)
    text = _EMAIL.sub(lambda m: f"{m[1]} at {m[2].replace('.', ' dot ')}", text)
    text = _UNFINISHED_LINE.sub(".\n", _MARKUP.sub("", text).strip())
    return " ".join(text.split())


def speakable(text: str) -> str:
    """:func:`plain` text of at most three sentences."""
    return " ".join(sentences(plain(text))[:MAX_SPOKEN_SENTENCES])


def normalise(text: str) -> str:
    """Caller words as the intent patterns see them: lower case, no punctuation."""
    return " ".join(words(text))


_NAME = re.compile(
    r"\b(?:[Yy]ou are|[Yy]ou're|[Yy]our name is|[Cc]all yourself)\s+([A-Z][a-z]+)\b"
    r"(?![-'’]|\s+[A-Z])"  # not "Acme's" nor the first word of "Acme Dental"
)
_BUSINESS = re.compile(r"\b(?:at|for|from)\s+((?:[A-Z][\w&'’-]*)(?:\s+(?:&\s+)?[A-Z][\w&'’-]*)*)")
_NOT_NAMES: Final = frozenset({"A", "An", "The", "Our", "Your", "This", "That", "I", *day_name})


@dataclass(frozen=True, slots=True)
class Voice:
    """Who is speaking, as far as the persona says: an agent name and a business name."""

    agent: str | None = None
    business: str | None = None

    @classmethod
    def from_persona(cls, persona: str | None, *, business: str | None = None) -> Voice:
        """``business`` (the knowledge file's name) is the fallback when the persona names
        none."""
        persona = persona or ""
        agents = (m[1] for m in _NAME.finditer(persona) if m[1] not in _NOT_NAMES)
        named = (m[1] for m in _BUSINESS.finditer(persona) if m[1] not in _NOT_NAMES)
        return cls(next(agents, None), next(named, None) or business)

    @property
    def team(self) -> str:
        return f"someone at {self.business}" if self.business else "a member of our team"

    @property
    def offer(self) -> str:
        return f"Would you like me to connect you with {self.team}?"

    def dont_know(self) -> str:
        return f"I'm sorry, I don't have that information. {self.offer}"

    def transfer(self) -> str:
        return f"Of course. I'll connect you with {self.team} now."

    def goodbye(self) -> str:
        where = f" {self.business}" if self.business else ""
        return f"Thanks for calling{where}. Goodbye!"

    def hello(self) -> str:
        return (
            f"Hi, this is {self.agent}. How can I help?"
            if self.agent
            else "Hi there. How can I help?"
        )

    def identity(self) -> str:
        who = f"I'm {self.agent}, a virtual assistant" if self.agent else "I'm a virtual assistant"
        where = f" for {self.business}" if self.business else ""
        return f"{who}{where}. I can connect you with a person any time you like."


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    action: CallControl | None = None


class KnowledgeResponder:
    """The default :class:`~voxline.engines.brain.Brain`: deterministic and pure CPU, about
    half a millisecond a turn from the knowledge file, about 3 ms when it reads
    ``kb_endpoint`` passages (indexed afresh each turn)."""

    def __init__(self, knowledge: KnowledgeBase | None) -> None:
        self.knowledge = knowledge

    async def respond(
        self, request: BrainRequest, tools: ToolRunner
    ) -> AsyncGenerator[BrainOutput, None]:
        """The reply sentence by sentence (so speech can start on the first), then any
        call-control action."""
        reply = self.reply(request)
        spoken = sentences(reply.text)
        for i, sentence in enumerate(spoken):
            yield TextDelta(sentence if i == len(spoken) - 1 else f"{sentence} ")
        if reply.action is not None:
            yield reply.action

    def likely_lines(self) -> list[str]:
        """What it says most, whatever is asked (with the default persona): its stock lines
        and every answer of its knowledge; worth synthesising before the first caller asks."""
        kb = self.knowledge
        voice = Voice.from_persona(None, business=kb.name if kb else None)
        lines = [voice.dont_know(), voice.transfer(), voice.goodbye(), ANYTHING_ELSE]
        if kb is not None:
            lines += [speakable(e.answer) for e in kb.entries if isinstance(e, QuestionAnswer)]
        return lines

    def _knowledge(self, request: BrainRequest) -> KnowledgeBase | None:
        """The session's knowledge (its agent's), else the one this responder was made with."""
        return request.knowledge_base if request.knowledge_base is not None else self.knowledge

    def reply(self, request: BrainRequest) -> Reply:
        kb = self._knowledge(request)
        voice = Voice.from_persona(request.persona, business=kb.name if kb else None)
        if request.digits:
            return self._keyed(request, voice)
        text = normalise(request.user_text or "")
        last = _last_assistant_line(request.history)
        if _human_requested(text):
            return _transfer(voice.transfer(), "caller_requested_human", request)
        if _GOODBYE.search(text):
            return _goodbye(voice.goodbye())
        if last.endswith(voice.offer):
            if _YES.match(text) and _AFFIRMATIVE.search(text):
                return _transfer(voice.transfer(), "caller_accepted_offer", request)
            if _NO.match(text) and _NEGATIVE.search(text):
                return Reply(f"Okay. {ANYTHING_ELSE}")
        if last.startswith(CHECK) and kb is not None:
            if _YES.match(text) and _AFFIRMATIVE.search(text):
                topic = last.removeprefix(CHECK).strip(" :?")
                hits = kb.search(topic.removeprefix("about "), k=1)
                return Reply(speakable(hits[0].text) if hits else voice.dont_know())
            if _NO.match(text) and _NEGATIVE.search(text):
                return Reply(voice.dont_know())
        if last.endswith(ANYTHING_ELSE):
            if _NO.match(text) and _NEGATIVE.search(text):
                return _goodbye(voice.goodbye())
            if _YES.match(text) and _AFFIRMATIVE.search(text):
                return Reply("Sure, what else can I help with?")
        if _IDENTITY.search(text):
            return Reply(voice.identity())
        if _REPEAT.match(text):
            return Reply(last or "Sorry, I haven't said anything yet. How can I help?")
        if kb is not None and kb.menu and _MENU.match(text):
            return Reply(_menu_prompt(kb.menu))
        if _HELLO.match(text):
            return Reply(voice.hello())
        if _THANKS.match(text) or (_NO.match(text) and _NEGATIVE.search(text)):
            welcome = "You're welcome! " if "thank" in text else "Okay. "
            return Reply(welcome + ANYTHING_ELSE)
        return self._answer(request.user_text or "", request.knowledge, voice, kb)

    def _answer(
        self, question: str, passages: Sequence[str], voice: Voice, kb: KnowledgeBase | None
    ) -> Reply:
        if not terms(question):
            return Reply("Sorry, I didn't quite catch that. What can I help you with?")
        excerpt = best_excerpt(question, [plain(p) for p in passages[:ENDPOINT_PASSAGES]])
        if excerpt is not None and excerpt.score >= ENDPOINT_GOOD_ENOUGH:
            return Reply(speakable(excerpt.text))
        if kb is None:
            return Reply(voice.dont_know())
        if hits := kb.search(question, k=1):
            return Reply(speakable(hits[0].text))
        if (candidate := kb.candidate(question)) is not None and candidate.source:
            return Reply(_check(candidate))
        return Reply(voice.dont_know())

    def _keyed(self, request: BrainRequest, voice: Voice) -> Reply:
        kb = self._knowledge(request)
        menu = kb.menu if kb else {}
        if not menu:
            return Reply("This line has no keypad menu. Please just tell me what you need.")
        digits = (request.digits or "").rstrip("#") or "#"
        item = menu.get(digits) or menu.get(digits[-1])
        if item is None:
            return Reply(f"Sorry, {digits} is not an option. {_menu_prompt(menu)}")
        return _menu_choice(item, voice, request)


def _check(hit: Hit) -> str:
    """Ask whether the caller meant this entry (answered on "yes", see ``reply``)."""
    if hit.kind == "answer":
        return f"{CHECK}: {hit.source.rstrip('?')}?"
    return f"{CHECK} about {hit.source[:1].lower()}{hit.source[1:]}?"


def _menu_choice(item: MenuItem, voice: Voice, request: BrainRequest) -> Reply:
    if item.answer is not None:
        return Reply(speakable(item.answer))
    if item.action == "end_call":
        return Reply(item.say or voice.goodbye(), HangUp("menu_selection"))
    return _transfer(item.say or voice.transfer(), "menu_selection", request)


def _menu_prompt(menu: dict[str, MenuItem]) -> str:
    choices = [f"{key} for {item.label}" for key, item in menu.items()]
    listed = choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])}, or {choices[-1]}"
    return f"Press {listed}."


def _human_requested(text: str) -> bool:
    return any(not _NEGATED.search(text[: match.start()]) for match in _HUMAN.finditer(text))


def _last_assistant_line(history: Sequence[Message]) -> str:
    return history[-1].content.strip() if history and history[-1].role == "assistant" else ""


def _goodbye(line: str) -> Reply:
    return Reply(line, HangUp("caller_goodbye"))


def _transfer(line: str, reason: str, request: BrainRequest) -> Reply:
    said = [m.content for m in request.history if m.role == "user"]
    if request.user_text:
        said.append(request.user_text)
    elif request.digits:
        said.append(f"pressed {request.digits}")
    quoted = "; ".join(f'"{text.strip()}"' for text in said[-SUMMARY_TURNS:])
    summary = f"Caller said: {quoted}" if quoted else "Caller asked for a person."
    return Reply(
        line,
        Transfer(reason=reason, summary=summary[:MAX_SUMMARY_CHARS]),
    )
