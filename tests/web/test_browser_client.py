"""The browser client (``src/voxline/web``) in real headless Chromium against real servers.

Chromium's fake microphone plays a WAV file of Piper speech into ``getUserMedia``; what the
page shows, and what its worklets report, is read from the page.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.support.examples import ACME_DENTAL
from tests.support.keys import create_key
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.bench.speech import synthesize

CHROMIUM = shutil.which("chromium")
RATE = 24000
QUANTUM = 128
TONE_HZ = 1000.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: chromium)"),
]


def write_wav(path: Path, *parts: npt.NDArray[np.int16] | float) -> Path:
    """A mono 24 kHz WAV of ``parts``: speech, or seconds of silence."""
    audio = np.concatenate(
        [np.zeros(int(p * RATE), np.int16) if isinstance(p, float) else p for p in parts]
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(audio.tobytes())
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@contextmanager
def chromium(playwright: Playwright, microphone: Path | None) -> Iterator[Browser]:
    """Headless Chromium whose microphone plays ``microphone`` once (None: no microphone
    permission at all)."""
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-device-for-media-stream",
    ]
    if microphone is not None:
        args += [
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}%noloop",
        ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The default agent, started as ``./scripts/start`` starts it: the page just works."""
    with run_server(
        tmp_path_factory.mktemp("web-agent"),
        env=OPEN_LIMITS,
        agent="default",
        args=("--knowledge", str(ACME_DENTAL), "--print-key"),
    ) as server:
        yield server


@pytest.fixture(scope="module")
def page_echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The echo line, its page key configured through ``VOXLINE_WEB_KEY``."""
    data_dir = tmp_path_factory.mktemp("web-echo")
    _, web_key = create_key(data_dir, label="page")
    with run_server(data_dir, env={**OPEN_LIMITS, "VOXLINE_WEB_KEY": web_key}) as server:
        yield server


def client_state(page: Page, expression: str) -> Any:
    return page.evaluate(f"() => {{ const client = window.voxline.client; return {expression}; }}")


def record_statuses(page: Page) -> None:
    page.wait_for_function("() => window.voxline?.client")
    page.evaluate(
        """() => {
          window.statuses = [];
          window.loudest = 0;
          const client = window.voxline.client;
          client.addEventListener("status", ({ detail }) => window.statuses.push(detail));
          client.addEventListener("level", ({ detail }) => {
            window.loudest = Math.max(window.loudest, detail.rms);
          });
        }"""
    )


# ---- serving ---------------------------------------------------------------------------


def test_the_page_and_its_modules_are_served(page_echo_server: RunningServer) -> None:
    server = page_echo_server
    page = httpx.get(f"{server.http}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="web/page.js">' in page.text
    for name in ("client.js", "capture-processor.js", "playback-processor.js", "resampler.js"):
        module = httpx.get(f"{server.http}/web/{name}")
        assert module.status_code == 200, name
        # Browsers refuse module scripts served with a non-JavaScript type.
        assert "javascript" in module.headers["content-type"], name
    assert httpx.get(f"{server.http}/web/style.css").status_code == 200


def test_page_tokens_only_for_the_servers_own_origin(page_echo_server: RunningServer) -> None:
    server = page_echo_server
    url = f"{server.http}/web/token"
    minted = httpx.post(url, headers={"Origin": server.http})
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert body["object"] == "omni.session"
    assert body["token"].startswith("vxt_")
    assert body["url"] == server.ws
    for origin in ("https://evil.example", "http://localhost:1", None):
        headers = {"Origin": origin} if origin else {}
        refused = httpx.post(url, headers=headers)
        assert refused.status_code == 403, origin
        assert refused.json()["error"]["code"] == "origin_not_allowed"


def test_no_page_token_without_a_page_key(echo_server: RunningServer) -> None:
    """A plain ``voxline serve`` (no --print-key, no web_key) serves the page, no tokens."""
    assert httpx.get(f"{echo_server.http}/").status_code == 200
    refused = httpx.post(f"{echo_server.http}/web/token", headers={"Origin": echo_server.http})
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "web_page_disabled"


# ---- a conversation --------------------------------------------------------------------


def test_a_conversation_with_barge_in(
    agent_server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    """Greeting, a spoken question, the answer heard, then interrupted by speaking over it."""
    microphone = write_wav(
        tmp_path / "caller.wav",
        5.0,  # the greeting plays
        synthesize("Which insurance plans do you accept?", RATE),
        3.5,  # a little of the answer is heard
        synthesize("Sorry, one more thing.", RATE),
        8.0,
    )
    with chromium(playwright, microphone) as browser:
        page = browser.new_page(viewport={"width": 820, "height": 760})
        page.goto(f"{agent_server.http}/")
        page.click("#start")
        record_statuses(page)
        greeting = page.locator(".turn.assistant").first
        expect(greeting).to_have_text(re.compile("Thanks for calling Acme Dental"), timeout=15_000)
        expect(greeting).not_to_have_class(re.compile("partial"), timeout=10_000)
        after_greeting = client_state(page, "client.stats")

        question = page.locator(".turn.user").first
        expect(question).to_contain_text(re.compile("insurance", re.I), timeout=20_000)
        expect(question).not_to_have_class(re.compile("partial"))
        assert page.locator(".turn.user").count() == 1  # partials replaced, not appended

        answer = page.locator(".turn.assistant").nth(1)
        expect(answer).to_contain_text("We accept", timeout=20_000)
        expect(answer.locator(".latency")).to_have_text(re.compile(r"^\d+ ms$"))
        expect(answer).to_have_class(re.compile("interrupted"), timeout=20_000)
        heard = answer.locator(".text > span").inner_text()
        unheard = answer.locator(".unheard").inner_text()
        print(f"heard {heard!r}, cut {unheard!r}")
        full = "We accept most PPO dental plans, including Delta Dental, Cigna, Aetna"
        assert heard and full.startswith(heard[:30]) and unheard

        expect(page.locator(".turn.user").nth(1)).to_contain_text(
            re.compile("one more thing", re.I), timeout=20_000
        )
        state = client_state(
            page,
            "{ stats: client.stats, clears: client.clears, statuses: window.statuses,"
            " loudest: window.loudest, latency: document.querySelector('#latency').textContent }",
        )
        print(state)
        stats = state["stats"]
        assert stats["sampleRate"] == RATE
        # The answer's audio reached the playback worklet, and was played.
        assert stats["writtenSamples"] > after_greeting["writtenSamples"] + RATE // 2
        assert stats["playedSamples"] > after_greeting["playedSamples"] + RATE // 2
        assert stats["overruns"] == 0
        # The flush cleared the ring at once: the first render quantum after the clear held
        # no queued audio.
        [clear] = state["clears"]
        report = clear["report"]
        assert clear["cause"] == "flush"
        assert report["bufferedBefore"] > 0 and report["dropped"] > 0
        assert report["bufferedAfter"] == 0
        assert 0 <= report["renderedFrame"] - report["frame"] < QUANTUM
        assert stats["clears"] == 1
        statuses = state["statuses"]
        assert statuses.index("speaking") < statuses.index("interrupted")
        assert "listening" in statuses[statuses.index("interrupted") :]
        assert state["loudest"] > 0.01  # the meter moved
        assert re.search(r"turn \d: \d+ ms to the agent's voice", state["latency"])
        if screenshot := os.environ.get("VOXLINE_SCREENSHOT"):  # for docs/browser.md
            expect(page.locator(".turn.assistant").nth(2)).not_to_have_class(
                re.compile("partial"), timeout=20_000
            )
            page.screenshot(path=screenshot)
        page.click("#start")  # now Stop: a polite goodbye
        expect(page.locator("#status")).to_have_attribute("data-status", "ended")
        expect(page.locator("#start")).to_have_text("Start")
        expect(page.locator("#notice")).to_be_hidden()


# ---- a 48 kHz context ------------------------------------------------------------------

# The spectrum of the playback worklet's output, from an AnalyserNode tapped onto it: the
# power of each reading taken every 50 ms while it plays is summed, so that a steady tone
# stands out of speech whose pitch moves. 32768 points at 48 kHz are 1.46 Hz per bin; the
# peak is refined by parabolic interpolation over its neighbours.
TAP_PLAYBACK = """() => {
  const client = window.voxline.client;
  const analyser = new AnalyserNode(client.context, { fftSize: 32768 });
  client.playback.connect(analyser);
  const levels = new Float32Array(analyser.frequencyBinCount);
  const power = new Float64Array(analyser.frequencyBinCount);
  const binHz = client.context.sampleRate / analyser.fftSize;
  window.readings = 0;
  setInterval(() => {
    if (!client.stats?.playing) return;
    analyser.getFloatFrequencyData(levels);
    for (let i = 0; i < levels.length; i++) power[i] += 10 ** (levels[i] / 10);
    window.readings += 1;
  }, 50);
  window.peakHz = () => {
    const db = Array.from(power, (p) => 10 * Math.log10(p));
    let best = Math.round(200 / binHz);
    for (let i = best; i < Math.round(11000 / binHz); i++) if (db[i] > db[best]) best = i;
    const [left, peak, right] = [db[best - 1], db[best], db[best + 1]];
    return (best + (0.5 * (left - right)) / (left - 2 * peak + right)) * binHz;
  };
}"""


def test_the_page_talks_to_the_stored_agent_its_address_names(
    agent_server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    """The seed's first step: create an agent, put its ``agent_id`` in the page's address."""
    quickstart = (agent_server.data_dir / "quickstart-key").read_text().strip()
    created = httpx.post(
        f"{agent_server.http}/v1/agents",
        json={"name": "Night desk", "greeting": "Good evening, this is the night desk."},
        headers={"Authorization": f"Bearer {quickstart}"},
    )
    assert created.status_code == 201, created.text
    with chromium(playwright, write_wav(tmp_path / "quiet.wav", 8.0)) as browser:
        page = browser.new_page()
        page.goto(f"{agent_server.http}/?agent_id={created.json()['agent_id']}")
        page.click("#start")
        greeting = page.locator(".turn.assistant").first
        expect(greeting).to_have_text(re.compile("Good evening, this is the night desk"))
        page.click("#start")  # stop


def test_a_forced_48khz_context_keeps_the_pitch(
    page_echo_server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    """A 1 kHz tone under the caller's speech goes through the capture worklet (48 -> 24 kHz),
    the server (the echo line replays the turn), the playback worklet (24 -> 48 kHz), and
    comes out at 1 kHz; in tagged framing, to cover the other framing in a browser too."""
    speech = synthesize("Please tell me your opening hours today.", RATE).astype(np.float64)
    tone = np.sin(2 * np.pi * TONE_HZ * np.arange(len(speech)) / RATE)
    # The tone is mixed under speech so that the server hears a turn it will echo.
    caller = np.clip(0.7 * speech + 0.25 * 32767 * tone, -32768, 32767).astype(np.int16)
    microphone = write_wav(tmp_path / "tone.wav", 1.0, caller, 6.0)
    with chromium(playwright, microphone) as browser:
        page = browser.new_page()
        page.goto(f"{page_echo_server.http}/?rate=48000&framing=tagged")
        page.click("#start")
        page.wait_for_function("() => window.voxline?.client.playback")
        page.evaluate(TAP_PLAYBACK)
        # Until a second of the echo has played and the ring has run dry.
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(
                "() => window.voxline.client.stats?.playedSamples > 48000"
                " && !window.voxline.client.stats.playing",
                timeout=20_000,
            )
        state = client_state(
            page,
            "{ rate: client.context.sampleRate, stats: client.stats, peakHz: window.peakHz(),"
            " readings: window.readings, received: client.receivedSamples }",
        )
    stats = state["stats"]
    print(f"peak {state['peakHz']:.2f} Hz over {state['readings']} readings; {stats}")
    assert state["rate"] == stats["sampleRate"] == 48000
    assert stats["playedSamples"] > 48000 and state["readings"] >= 10, state
    assert abs(state["peakHz"] - TONE_HZ) < 2  # an octave off would be 500 or 2000 Hz
    # Every 24 kHz sample off the socket became two at 48 kHz, but for the resampler's
    # look-ahead: 18 samples in, 36 out.
    assert 0 <= 2 * state["received"] - stats["writtenSamples"] <= 36


# ---- errors a person can act on ----------------------------------------------------------


def start_page(
    browser: Browser, url: str, token: str | None = None, *, unreachable: bool = False
) -> Page:
    """Opens the page at ``url`` and presses Start; its token endpoint answers ``token`` if
    one is given, or cannot be reached."""
    page = browser.new_page()
    if unreachable:
        page.route("**/web/token", lambda route: route.abort("connectionrefused"))
    elif token is not None:
        page.route("**/web/token", lambda route: route.fulfill(json={"token": token}))
    page.goto(url)
    page.click("#start")
    return page


def test_errors_say_what_happened_and_what_to_do(
    page_echo_server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    server = page_echo_server
    key = server.create_key(concurrency=1)

    def mint(origin: str) -> str:
        response = httpx.post(
            f"{server.http}/v1/omni/sessions",
            headers={"Authorization": f"Bearer {key}"},
            json={"allowed_origins": [origin]},
        )
        token: str = response.json()["token"]
        return token

    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("/", {"token": "vxt_not-a-token"}, "unauthorized", r"^4401: .*refused the credential"),
        ("/", {"token": mint("https://app.example")}, "origin_not_allowed", r"^4403: .*origin"),
        (f"/?agent_id={'x' * 300}", {}, "invalid_agent_id", r"^4400: .*agent id"),
        ("/", {"unreachable": True}, "server_unreachable", r"cannot be reached"),
    ]
    with chromium(playwright, write_wav(tmp_path / "quiet.wav", 10.0)) as browser:
        for path, answer, code, meaning in cases:
            page = start_page(browser, f"{server.http}{path}", **answer)
            notice = page.locator("#notice")
            expect(notice).to_have_attribute("data-code", code)
            expect(notice.locator(".title")).to_have_text(re.compile(meaning))
            expect(notice.locator(".fix")).not_to_be_empty()
            expect(page.locator("#status")).to_have_attribute("data-status", "ended")
            page.close()

        # A key allowed one session at a time, and a second tab.
        first = start_page(browser, f"{server.http}/", mint(server.http))
        expect(first.locator("#status")).to_have_attribute("data-status", "listening")
        second = start_page(browser, f"{server.http}/", mint(server.http))
        notice = second.locator("#notice")
        expect(notice).to_have_attribute("data-code", "concurrency_limit_exceeded")
        expect(notice.locator(".title")).to_have_text(re.compile("^4429: .*live sessions"))

    with chromium(playwright, None) as browser:  # no microphone permission
        page = start_page(browser, f"{server.http}/")
        notice = page.locator("#notice")
        expect(notice).to_have_attribute("data-code", "microphone_denied")
        expect(notice.locator(".fix")).to_contain_text("Allow the microphone")
