// The page voxline serves at "/": a Start/Stop button, live status, the transcript, a
// microphone meter and per-turn latency, on client.js. Query parameters, for testing:
// `rate` forces the AudioContext's rate (48000: the worklets resample), `framing` picks
// "raw" or "tagged", `agent_id` names the stored agent to talk to (docs/api.md, "Agents").

import { ClientError, VoiceClient, insecureContextError, realtimeURL } from "./client.js";

const params = new URLSearchParams(location.search);
const $ = (selector) => document.querySelector(selector);
const button = $("#start");
const statusLabel = $("#status");
const notice = $("#notice");
const meter = $("#level > span");
const transcript = $("#transcript");
const latencyLabel = $("#latency");
const audioLabel = $("#audio");

const STATUS_TEXT = {
  idle: "Press Start and talk",
  connecting: "Connecting…",
  listening: "Listening",
  speaking: "Agent speaking",
  interrupted: "Interrupted",
  ended: "Ended",
};

let client = null;

/** A short-lived token for this page, minted by the server that served it. */
async function pageToken() {
  let response;
  try {
    response = await fetch(new URL("web/token", location.href), { method: "POST" });
  } catch {
    throw new ClientError(
      "server_unreachable",
      "The server cannot be reached.",
      "Check that voxline is running, then start again.",
    );
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = body?.error ?? {};
    throw new ClientError(
      error.code ?? `http_${response.status}`,
      `The server gave this page no token: ${error.message ?? response.statusText}`,
      response.status === 404
        ? "Start the server with --print-key (as ./scripts/start does) or set VOXLINE_WEB_KEY."
        : "Reload the page and start again.",
    );
  }
  return body.token;
}

function start() {
  notice.hidden = true;
  transcript.replaceChildren();
  open.user = open.assistant = unplacedLatency = null;
  const framing = params.get("framing") ?? "raw";
  let url;
  try {
    url = realtimeURL(new URL(".", location.href), {
      framing,
      agentId: params.get("agent_id") ?? undefined,
    });
  } catch (error) {
    showError(new ClientError("invalid_parameter", error.message, "Fix the page's address."));
    return;
  }
  const rate = Number(params.get("rate")) || undefined;
  client = new VoiceClient({ url, credential: pageToken, framing, sampleRate: rate });
  window.voxline = { client }; // for a console, or a test, to look inside
  client.addEventListener("status", ({ detail }) => showStatus(detail));
  client.addEventListener("transcript", ({ detail }) => showTranscript(detail));
  client.addEventListener("interrupted", ({ detail }) => showInterrupted(detail.reply));
  client.addEventListener("latency", ({ detail }) => showLatency(detail));
  client.addEventListener("level", ({ detail }) => showLevel(detail.rms));
  client.addEventListener("error", ({ detail }) => showError(detail));
  client.start(); // within the click: the audio context may start
}

function showStatus(status) {
  if (status === "listening") {
    audioLabel.textContent = `audio ${client.context.sampleRate / 1000} kHz`;
  }
  statusLabel.textContent = STATUS_TEXT[status];
  statusLabel.dataset.status = status;
  const live = status !== "ended";
  button.textContent = live ? "Stop" : "Start";
  button.dataset.live = String(live);
  if (!live) meter.style.width = "0";
}

// ---- the transcript: one entry per turn, partials replaced by finals -----------------

const open = { user: null, assistant: null }; // the entry each role is still speaking into
let unplacedLatency = null; // measured before the agent's words of that turn arrived

function showTranscript({ role, text, final }) {
  let entry = open[role];
  if (!entry) {
    entry = document.createElement("div");
    entry.className = `turn ${role}`;
    entry.innerHTML = `<span class="who"></span><p class="text"></p>`;
    entry.querySelector(".who").textContent = role === "user" ? "You" : "Agent";
    transcript.append(entry);
    open[role] = entry;
    if (role === "assistant" && unplacedLatency) placeLatency(entry, unplacedLatency);
  }
  entry.querySelector(".text").textContent = text;
  entry.dataset.text = text;
  entry.classList.toggle("partial", !final);
  if (final) open[role] = null;
  entry.scrollIntoView({ block: "end" });
}

/** The agent was cut off: show what was heard, and strike what was not. */
function showInterrupted(heard) {
  const entry = open.assistant ?? transcript.querySelector(".turn.assistant:last-of-type");
  if (!entry) return;
  open.assistant = null;
  const said = entry.dataset.text ?? "";
  const text = entry.querySelector(".text");
  const kept = document.createElement("span");
  kept.textContent = heard;
  const cut = document.createElement("s");
  cut.className = "unheard";
  cut.textContent = said.startsWith(heard) ? said.slice(heard.length) : "";
  text.replaceChildren(kept, cut);
  entry.classList.remove("partial");
  entry.classList.add("interrupted");
}

function showLatency(latency) {
  const { turn, totalMs, serverMs } = latency;
  latencyLabel.textContent = `turn ${turn}: ${totalMs} ms to the agent's voice`;
  latencyLabel.title = `server ${serverMs} ms, then ${totalMs - serverMs} ms to the speakers`;
  if (open.assistant) placeLatency(open.assistant, latency);
  else unplacedLatency = latency;
}

function placeLatency(entry, { totalMs, serverMs }) {
  unplacedLatency = null;
  const badge = document.createElement("span");
  badge.className = "latency";
  badge.textContent = `${totalMs} ms`;
  badge.title = `from the end of your speech (server ${serverMs} ms)`;
  entry.querySelector(".who").after(badge);
}

function showLevel(rms) {
  const db = 20 * Math.log10(Math.max(rms, 1e-5)); // -100 dBFS at worst
  meter.style.width = `${Math.min(100, Math.max(0, ((db + 60) / 60) * 100))}%`;
}

function showError(error) {
  notice.querySelector(".title").textContent = error.message;
  notice.querySelector(".fix").textContent = error.fix ?? "";
  notice.dataset.code = error.code ?? "";
  notice.hidden = false;
}

button.addEventListener("click", () => {
  if (button.dataset.live === "true") client.stop();
  else start();
});

if (!window.isSecureContext) {
  button.disabled = true;
  showError(insecureContextError());
}
