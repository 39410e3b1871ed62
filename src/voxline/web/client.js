// A browser client for voxline's realtime socket (the Omni-compatible contract), usable by
// any page as an ES module:
//
//   import { VoiceClient, realtimeURL } from "https://voice.example/web/client.js";
//   const client = new VoiceClient({ url: realtimeURL("https://voice.example"), credential });
//   button.onclick = () => client.start(); // inside the click: the audio context resumes
//
// Microphone -> capture worklet (20 ms PCM16 frames at 24 kHz) -> socket -> agent audio ->
// playback worklet (a ring buffer). Every server event goes through handleEvent().

export const REALTIME_PATH = "/v1/omni";
export const WIRE_RATE = 24000;
const RATES = [8000, 16000, 24000];
const SUBPROTOCOL_MARKER = "pyai.v1";
const KEY_SUBPROTOCOL_PREFIX = "pyai-key.";
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // what a subprotocol may carry
const WS_SCHEMES = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" };
const TAG_AUDIO = 0x01;
const TAG_TRANSCRIPT = 0x02;
const TAG_CONTROL = 0x03;
const MAX_SEND_BACKLOG = 64 * 1024; // bytes queued on the socket before capture frames drop
const INTERRUPTED_MS = 1500; // how long the status says "interrupted" after a barge-in

/**
 * The socket URL of a server: `http(s)://host` becomes `ws(s)://host/v1/omni?format=pcm16&…`.
 * Like the Python SDK's `realtime_url`: a base path (behind a proxy) is kept; `agentId`
 * names the stored agent the session starts from (docs/api.md, "Agents"); `framing`
 * ("raw" or "tagged") forces the server's framing; `apiKey` is for server-side code only.
 */
export function realtimeURL(
  baseUrl,
  { sessionLabel, agentId, rate = WIRE_RATE, framing, apiKey } = {},
) {
  const url = new URL(baseUrl, globalThis.location?.href);
  const scheme = WS_SCHEMES[url.protocol];
  if (!scheme) throw new TypeError(`expected an http(s) or ws(s) URL, got ${baseUrl}`);
  if (!RATES.includes(rate)) throw new RangeError(`rate must be one of ${RATES.join(", ")}`);
  if (framing !== undefined && framing !== "raw" && framing !== "tagged") {
    throw new RangeError('framing must be "raw" or "tagged"');
  }
  url.protocol = scheme;
  const path = url.pathname.replace(/\/+$/, "");
  url.pathname = path.endsWith(REALTIME_PATH) ? path : path + REALTIME_PATH;
  url.hash = "";
  url.searchParams.set("format", "pcm16");
  url.searchParams.set("rate", String(rate));
  if (sessionLabel !== undefined) url.searchParams.set("session_label", sessionLabel);
  if (agentId !== undefined) url.searchParams.set("agent_id", agentId);
  if (framing !== undefined) url.searchParams.set("framing", framing);
  if (apiKey !== undefined) url.searchParams.set("api_key", apiKey);
  return url.toString();
}

/** The subprotocols to offer: the marker, then the credential (browsers cannot set headers). */
export function realtimeSubprotocols(keyOrToken) {
  if (!TOKEN_CHARS.test(keyOrToken)) {
    throw new TypeError("the credential has characters a subprotocol cannot carry");
  }
  return [SUBPROTOCOL_MARKER, KEY_SUBPROTOCOL_PREFIX + keyOrToken];
}

/** A failure a person can act on: what happened, and what to do about it. */
export class ClientError extends Error {
  constructor(code, message, fix, { closeCode } = {}) {
    super(message);
    this.name = "ClientError";
    this.code = code;
    this.fix = fix;
    this.closeCode = closeCode;
  }
}

// What each error code of the protocol means, and its fix (the seed's troubleshooting table).
const MEANINGS = {
  unauthorized: [
    "The server refused the credential: a wrong, revoked or expired key or token.",
    "Check the key. Browser tokens expire within minutes: get a fresh one and start again.",
  ],
  forbidden: [
    "The key lacks the omni:session scope.",
    "Use a key created with that scope: voxline keys create --scope omni:session.",
  ],
  origin_not_allowed: [
    "This page's origin is not allowed to use the token.",
    "Mint the token with this page's origin in allowed_origins (scheme://host:port).",
  ],
  invalid_agent_id: [
    "The agent id (session label) is malformed.",
    "Use at most 256 characters, without control characters.",
  ],
  invalid_request: [
    "The server refused the connection URL (format, rate or framing).",
    "Connect with format=pcm16, a rate of 8000, 16000 or 24000, and framing raw or tagged.",
  ],
  rate_limit_exceeded: [
    "Too many connections or failed authentications from here.",
    "Wait a little and start again.",
  ],
  concurrency_limit_exceeded: [
    "Too many live sessions for this key.",
    "Close other sessions (other tabs, other clients) or raise the key's concurrency limit.",
  ],
  daily_cap_exceeded: [
    "This key's daily audio allowance is spent.",
    "Use a live key, or wait for the reset at midnight UTC.",
  ],
  message_too_large: ["The client sent a message over the size limit.", "Send 20 ms frames."],
  internal_error: ["The session failed on the server.", "Start again; see the server's log."],
  server_unreachable: [
    "The server cannot be reached.",
    "Check that voxline is running and that this address is right, then start again.",
  ],
  connection_lost: ["The connection dropped.", "Check the network and start again."],
};
const CODE_FOR_CLOSE = {
  1006: "connection_lost",
  1009: "message_too_large",
  1011: "internal_error",
  4400: "invalid_request",
  4401: "unauthorized",
  4403: "forbidden",
  4429: "rate_limit_exceeded",
};

/**
 * A socket close as a ClientError, or null for a normal end. The error event the server sent
 * before closing names the cause best; then the close reason, which is the code's name;
 * then the close code itself.
 */
export function describeClose(code, reason, { error, opened = true } = {}) {
  if (code === 1000 || code === 1001) return null;
  const name =
    [error?.code, reason].find((candidate) => Object.hasOwn(MEANINGS, candidate ?? "")) ??
    (!opened && code === 1006 ? "server_unreachable" : CODE_FOR_CLOSE[code]);
  const [meaning, fix] = MEANINGS[name] ?? [
    `The connection closed (${reason || "no reason given"}).`,
    "Start again.",
  ];
  const retry = error?.retry_after ? ` Retry after ${Math.ceil(error.retry_after)} s.` : "";
  return new ClientError(name ?? "closed", `${code}: ${meaning}`, fix + retry, { closeCode: code });
}

/** A getUserMedia failure as a ClientError. */
export function describeMicrophoneError(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return new ClientError(
        "microphone_denied",
        "Microphone access was denied.",
        "Allow the microphone for this site (the icon in the address bar), then start again.",
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return new ClientError(
        "no_microphone",
        "No microphone was found.",
        "Connect a microphone, or check the system's sound input settings.",
      );
    case "NotReadableError":
      return new ClientError(
        "microphone_busy",
        "The microphone could not be opened.",
        "Close other applications using it, then start again.",
      );
    default:
      return new ClientError("microphone_error", `The microphone failed: ${error}`, "Start again.");
  }
}

/** The error for a page the browser will not give a microphone. */
export function insecureContextError() {
  return new ClientError(
    "insecure_context",
    "This page is not in a secure context, so the browser will not open the microphone.",
    "Open it over HTTPS, or as http://localhost:PORT or http://127.0.0.1:PORT on the " +
      "machine running the server (not as a LAN address or a file).",
  );
}

function createContext(sampleRate) {
  try {
    return new AudioContext({ sampleRate, latencyHint: "interactive" });
  } catch {
    return new AudioContext({ latencyHint: "interactive" }); // a rate the browser refuses
  }
}

/**
 * One conversation. Events (each a CustomEvent with `detail`):
 * - `status`: "connecting" | "listening" | "speaking" | "interrupted" | "ended"
 * - `transcript`: `{role: "user"|"assistant", text, final}`, text cumulative for the turn
 * - `interrupted`: `{reply}`, the part of the agent's reply the caller heard
 * - `latency`: `{turn, totalMs, serverMs}`, end of the caller's speech to agent audio playing
 * - `level`: `{rms}` of each 20 ms microphone frame
 * - `stats`: the playback worklet's stats (buffered ms, underruns, clears, …)
 * - `event`: every server event, as received
 * - `error`: a ClientError; the session is over
 */
export class VoiceClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url the socket URL, from realtimeURL()
   * @param {string | (() => Promise<string>)} options.credential a key or browser token, or
   *   a function fetching one just before connecting (tokens are short-lived)
   * @param {"raw"|"tagged"} [options.framing="raw"] how this client frames what it sends
   * @param {object} [options.configure={}] the first `configure` frame's settings
   * @param {number} [options.sampleRate=24000] the AudioContext rate to ask for; the
   *   worklets resample when the browser gives another
   * @param {string|URL} [options.modulesUrl] where the worklet modules are (next to this one)
   */
  constructor({
    url,
    credential,
    framing = "raw",
    configure = {},
    sampleRate = WIRE_RATE,
    modulesUrl = new URL("./", import.meta.url),
  }) {
    super();
    this.url = url;
    this.credential = credential;
    this.framing = framing;
    this.configureSettings = configure;
    this.requestedRate = sampleRate;
    this.modulesUrl = modulesUrl;
    this.status = "idle";
    this.stats = null; // the playback worklet's latest stats
    this.receivedSamples = 0; // agent audio off the socket, at the wire's rate
    this.clears = []; // every flush: when it came, when clear was posted, the worklet's report
  }

  /** Starts the conversation. Call it from a user gesture: the audio context resumes here. */
  start() {
    if (this.context) throw new Error("a VoiceClient starts once");
    this.context = createContext(this.requestedRate);
    const resumed = this.context.resume(); // inside the gesture, before any await
    this.setStatus("connecting");
    return this.run(resumed).catch((error) => {
      if (!this.stopping) this.fail(error);
    });
  }

  /** Ends the conversation politely: the server answers session_ending with session_end. */
  stop() {
    this.stopping = true;
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.sendControl({ type: "session_ending" });
      setTimeout(() => this.socket.close(1000), 1000);
    } else {
      this.socket?.close(1000);
      this.teardown();
      this.setStatus("ended");
    }
  }

  async run(resumed) {
    if (!globalThis.isSecureContext) throw insecureContextError();
    const microphone = await navigator.mediaDevices
      .getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      })
      .catch((error) => {
        throw describeMicrophoneError(error);
      });
    this.microphone = microphone;
    if (this.stopping) return this.teardown();
    await resumed;
    let source;
    try {
      source = new MediaStreamAudioSourceNode(this.context, { mediaStream: microphone });
    } catch (error) {
      // Some browsers cannot feed a microphone into a context at another rate: take the
      // context at the browser's own rate, and let the worklets resample.
      if (error.name !== "NotSupportedError") throw error;
      await this.context.close();
      this.context = new AudioContext({ latencyHint: "interactive" });
      await this.context.resume();
      source = new MediaStreamAudioSourceNode(this.context, { mediaStream: microphone });
    }
    await this.buildGraph(source);
    const credential =
      typeof this.credential === "function" ? await this.credential() : this.credential;
    if (this.stopping) return this.teardown();
    this.connect(credential);
  }

  async buildGraph(source) {
    const context = this.context;
    await Promise.all(
      ["capture-processor.js", "playback-processor.js"].map((name) =>
        context.audioWorklet.addModule(new URL(name, this.modulesUrl)),
      ),
    );
    const processorOptions = { wireRate: WIRE_RATE };
    // The capture node has no output: it is never connected to the speakers.
    this.capture = new AudioWorkletNode(context, "capture-processor", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions,
    });
    this.playback = new AudioWorkletNode(context, "playback-processor", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions,
    });
    source.connect(this.capture);
    this.playback.connect(context.destination);
    this.capture.port.onmessage = ({ data }) => this.captured(data);
    this.playback.port.onmessage = ({ data }) => this.playbackReport(data);
  }

  connect(credential) {
    const socket = new WebSocket(this.url, realtimeSubprotocols(credential));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.opened = true;
      this.sendControl({ type: "configure", ...this.configureSettings });
    };
    socket.onmessage = ({ data }) => this.receive(data);
    socket.onclose = ({ code, reason }) => this.closed(code, reason);
  }

  // ---- sending ---------------------------------------------------------------------

  sendControl(message) {
    const body = JSON.stringify(message);
    this.socket.send(this.framing === "tagged" ? tagged(TAG_CONTROL, encoder.encode(body)) : body);
  }

  captured({ pcm, rms }) {
    this.emit("level", { rms });
    const socket = this.socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount > MAX_SEND_BACKLOG) return; // a stalled socket: stay live
    socket.send(this.framing === "tagged" ? tagged(TAG_AUDIO, new Uint8Array(pcm)) : pcm);
  }

  // ---- receiving -------------------------------------------------------------------

  receive(data) {
    if (typeof data === "string") {
      this.handleEvent(parseJSON(data));
      return;
    }
    if (this.framing !== "tagged") {
      this.play(data);
      return;
    }
    const bytes = new Uint8Array(data);
    if (bytes[0] === TAG_AUDIO) this.play(data.slice(1));
    else if (bytes[0] === TAG_TRANSCRIPT || bytes[0] === TAG_CONTROL) {
      this.handleEvent(parseJSON(decoder.decode(bytes.subarray(1))));
    }
  }

  play(pcm) {
    this.receivedSamples += pcm.byteLength >> 1;
    this.audioSinceClear = true;
    this.playback?.port.postMessage({ type: "audio", pcm }, [pcm]);
  }

  /** Every server event, in one place. */
  handleEvent(event) {
    if (!event || typeof event.event !== "string") return;
    this.emit("event", event);
    switch (event.event) {
      case "session_started":
        this.setStatus("listening");
        break;
      case "transcript":
        this.emit("transcript", { role: event.role, text: event.text, final: event.final });
        break;
      case "turn_begin":
        this.pendingTurn = {
          turn: event.turn,
          serverMs: event.since_caller_end_ms,
          at: performance.now(),
        };
        break;
      case "flush":
      case "barge_in":
        this.clearPlayback(event.event);
        break;
      case "assistant_interrupted":
        this.emit("interrupted", { reply: event.reply });
        break;
      case "error":
        this.serverError = event; // the close that follows is described with it
        break;
      case "warning":
        console.warn(`voxline: ${event.code}: ${event.message}`);
        break;
    }
  }

  /** Barge-in: drop the agent's queued audio now, not when the socket drains. */
  clearPlayback(cause) {
    const at = performance.now();
    if (this.audioSinceClear) {
      this.audioSinceClear = false;
      const id = this.clears.length;
      this.playback?.port.postMessage({ type: "clear", id });
      this.clears.push({ id, cause, at, postedAt: performance.now(), report: null });
    }
    this.pendingTurn = null;
    this.setStatus("interrupted");
    clearTimeout(this.interruptedTimer);
    this.interruptedTimer = setTimeout(() => {
      if (this.status === "interrupted") this.setStatus("listening");
    }, INTERRUPTED_MS);
  }

  playbackReport(message) {
    const wasPlaying = this.stats?.playing;
    this.stats = message.stats;
    if (message.type === "cleared") {
      const entry = this.clears[message.id];
      if (entry) Object.assign(entry, { report: message, reportedAt: performance.now() });
    }
    this.emit("stats", message.stats);
    if (message.stats.playing && !wasPlaying) {
      if (this.pendingTurn) {
        const { turn, serverMs, at } = this.pendingTurn;
        this.pendingTurn = null;
        const playbackMs = performance.now() - at;
        this.emit("latency", { turn, serverMs, totalMs: Math.round(serverMs + playbackMs) });
      }
      if (this.status !== "ended") this.setStatus("speaking");
    } else if (!message.stats.playing && wasPlaying && this.status === "speaking") {
      this.setStatus("listening");
    }
  }

  // ---- the end -------------------------------------------------------------------

  closed(code, reason) {
    const error = this.stopping
      ? null
      : describeClose(code, reason, { error: this.serverError, opened: this.opened });
    if (error) {
      this.fail(error);
      return;
    }
    // A normal end: let what the agent said last finish playing.
    const left = this.stopping ? 0 : (this.stats?.bufferedMs ?? 0);
    setTimeout(() => this.teardown(), left + 100);
    this.setStatus("ended");
  }

  fail(error) {
    this.teardown();
    this.setStatus("ended");
    this.emit("error", error);
  }

  teardown() {
    clearTimeout(this.interruptedTimer);
    if (this.socket && this.socket.readyState < WebSocket.CLOSING) this.socket.close(1000);
    this.microphone?.getTracks().forEach((track) => track.stop());
    if (this.context && !this.contextClosed) this.context.close();
    this.contextClosed = true;
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.emit("status", status);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function tagged(tag, bytes) {
  const message = new Uint8Array(bytes.length + 1);
  message[0] = tag;
  message.set(bytes, 1);
  return message;
}

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null; // not an event; nothing to do with it
  }
}
