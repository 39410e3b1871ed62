// The pure parts of client.js: socket URLs and subprotocols as the Python SDK builds them,
// and close codes explained as the seed's troubleshooting table does.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  describeClose,
  describeMicrophoneError,
  realtimeSubprotocols,
  realtimeURL,
} from "../../src/voxline/web/client.js";

test("realtimeURL: http(s) becomes ws(s), a base path is kept, the query is complete", () => {
  assert.equal(
    realtimeURL("http://127.0.0.1:8000"),
    "ws://127.0.0.1:8000/v1/omni?format=pcm16&rate=24000",
  );
  assert.equal(
    realtimeURL("https://voice.example/proxy/", { sessionLabel: "front desk", framing: "tagged" }),
    "wss://voice.example/proxy/v1/omni?format=pcm16&rate=24000&session_label=front+desk&framing=tagged",
  );
  assert.equal(
    realtimeURL("http://h", { agentId: "agent_0123" }),
    "ws://h/v1/omni?format=pcm16&rate=24000&agent_id=agent_0123",
  );
  assert.equal(
    realtimeURL("ws://h/v1/omni?x=1#frag", { rate: 16000 }),
    "ws://h/v1/omni?x=1&format=pcm16&rate=16000",
  );
  assert.throws(() => realtimeURL("ftp://h"), TypeError);
  assert.throws(() => realtimeURL("http://h", { rate: 44100 }), RangeError);
  assert.throws(() => realtimeURL("http://h", { framing: "json" }), RangeError);
});

test("realtimeSubprotocols: the marker, then the credential", () => {
  assert.deepEqual(realtimeSubprotocols("vxt_abc-DEF_123"), ["pyai.v1", "pyai-key.vxt_abc-DEF_123"]);
  assert.throws(() => realtimeSubprotocols("has space"), TypeError);
  assert.throws(() => realtimeSubprotocols(""), TypeError);
});

test("close codes get their meaning and a fix", () => {
  const cases = [
    [4401, "unauthorized", {}, "unauthorized", /refused the credential/],
    [4403, "forbidden", {}, "forbidden", /omni:session/],
    [4403, "origin_not_allowed", {}, "origin_not_allowed", /origin/],
    [4400, "invalid_agent_id", {}, "invalid_agent_id", /agent id/],
    [4400, "invalid_rate", {}, "invalid_request", /connection URL/],
    [4429, "concurrency_limit_exceeded", {}, "concurrency_limit_exceeded", /live sessions/],
    [4429, "", { error: { code: "daily_cap_exceeded" } }, "daily_cap_exceeded", /daily/],
    [1006, "", { opened: false }, "server_unreachable", /cannot be reached/],
    [1006, "", { opened: true }, "connection_lost", /dropped/],
    [4999, "constructor", {}, "closed", /4999: The connection closed \(constructor\)/],
  ];
  for (const [code, reason, context, name, meaning] of cases) {
    const error = describeClose(code, reason, context);
    assert.equal(error.code, name, `${code} ${reason}`);
    assert.equal(error.closeCode, code);
    assert.match(error.message, meaning);
    assert.ok(error.message.startsWith(`${code}: `));
    assert.ok(error.fix.length > 0);
  }
  const limited = describeClose(4429, "rate_limit_exceeded", {
    error: { code: "rate_limit_exceeded", retry_after: 2.2 },
  });
  assert.match(limited.fix, /Retry after 3 s/);
  assert.equal(describeClose(1000, "session_ending"), null);
});

test("microphone failures say what to do", () => {
  assert.equal(describeMicrophoneError({ name: "NotAllowedError" }).code, "microphone_denied");
  assert.equal(describeMicrophoneError({ name: "NotFoundError" }).code, "no_microphone");
  assert.match(describeMicrophoneError({ name: "NotAllowedError" }).fix, /Allow the microphone/);
});
