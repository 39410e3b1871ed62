// The playback ring: order, clear (barge-in), underrun fades, overrun policy.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PlaybackRing, fadeSamplesFor } from "../../src/voxline/web/ring.js";

const QUANTUM = 128;
const FADE = 60; // fadeSamplesFor(24000)

function ramp(length, from = 0) {
  return Float32Array.from({ length }, (_, i) => (from + i) / 10000);
}

function render(ring, quanta = 1) {
  const out = new Float32Array(QUANTUM * quanta);
  for (let q = 0; q < quanta; q++) ring.read(out.subarray(q * QUANTUM, (q + 1) * QUANTUM));
  return out;
}

const f32 = Math.fround; // the ring holds float32 samples
const constant = (length, value = 0.5) => new Float32Array(length).fill(value);

test("fade length: 2.5 ms, at most one render quantum", () => {
  assert.equal(fadeSamplesFor(24000), 60);
  assert.equal(fadeSamplesFor(48000), 120);
  assert.equal(fadeSamplesFor(96000), 128);
});

test("samples come out in order, across the wrap-around, after a fade-in", () => {
  const ring = new PlaybackRing(1000, FADE, 12000);
  ring.write(constant(900));
  const first = render(ring);
  // Golden fade-in: gain (i + 1) / FADE over the first FADE samples, then full.
  assert.equal(first[0], f32(0.5 / FADE));
  assert.equal(first[FADE - 1], 0.5);
  assert.equal(first[FADE], 0.5);
  render(ring, 6); // 896 read: the read position is near the end of the storage
  ring.write(ramp(500)); // wraps around
  const out = render(ring, 4);
  assert.deepEqual([...out.subarray(0, 4)], [0.5, 0.5, 0.5, 0.5]);
  assert.deepEqual([...out.subarray(4, 504)], [...ramp(500)]);
  assert.equal(ring.size, 0);
  assert.equal(ring.played, 1400);
});

test("clear empties the ring within one render quantum, with a fade-out", () => {
  const ring = new PlaybackRing(48000, FADE, 12000);
  ring.write(constant(24000)); // a second of agent audio
  render(ring, 2);
  const dropped = ring.clear();
  assert.equal(dropped, 24000 - 256 - FADE);
  assert.equal(ring.size, FADE);
  const out = render(ring);
  assert.equal(ring.size, 0); // empty after the next quantum
  // Golden fade-out: gain (FADE - i) / (FADE + 1), then a decay of the last sample to 0.
  assert.equal(out[0], f32((0.5 * FADE) / (FADE + 1)));
  assert.equal(out[FADE - 1], f32(0.5 / (FADE + 1)));
  for (let i = 1; i < QUANTUM; i++) assert.ok(out[i] <= out[i - 1], "monotonic fade");
  assert.ok(out.subarray(2 * FADE).every((v) => v === 0));
  assert.deepEqual([ring.clears, ring.clearedSamples, ring.underruns], [1, dropped, 0]);
  // Audio after the clear (the next reply) fades in again.
  ring.write(constant(256));
  const next = render(ring);
  assert.equal(next[0], f32(0.5 / FADE));
});

test("clear of an empty or nearly empty ring", () => {
  const ring = new PlaybackRing(1000, FADE, 12000);
  assert.equal(ring.clear(), 0);
  ring.write(constant(10));
  assert.equal(ring.clear(), 0); // all of it is the fade-out
  const out = render(ring);
  assert.ok(out[9] < out[0] && out.subarray(10 + FADE).every((v) => v === 0));
});

test("underrun: the last sample decays to zero instead of a click, and counts", () => {
  const ring = new PlaybackRing(1000, FADE, 12000);
  ring.write(constant(100 + FADE)); // fade-in, then full level
  const out = render(ring, 2);
  assert.equal(out[99 + FADE], 0.5);
  // Golden decay: last * (FADE - i) / (FADE + 1) for the first FADE samples of silence.
  assert.equal(out[100 + FADE], f32((0.5 * FADE) / (FADE + 1)));
  assert.equal(out[99 + 2 * FADE], f32(0.5 / (FADE + 1)));
  assert.equal(out[100 + 2 * FADE], 0);
  assert.equal(ring.playing, false);
  // Audio returns after 96 + 128 silent samples, well within the gap: an underrun.
  render(ring);
  ring.write(constant(300));
  const resumed = render(ring);
  assert.equal(resumed[0], f32(0.5 / FADE)); // and it fades back in
  assert.equal(ring.underruns, 1);
});

test("the end of a reply is not an underrun", () => {
  const ring = new PlaybackRing(1000, FADE, 12000);
  ring.write(constant(64));
  render(ring, 100); // 12,800 silent samples: past the 12,000-sample gap
  ring.write(constant(64));
  render(ring);
  assert.equal(ring.underruns, 0);
});

test("overrun drops the oldest audio and counts it", () => {
  const ring = new PlaybackRing(1000, FADE, 12000);
  assert.equal(ring.write(ramp(800)), 0);
  assert.equal(ring.write(ramp(400, 800)), 200);
  assert.equal(ring.size, 1000);
  assert.deepEqual([ring.overruns, ring.overrunSamples], [1, 200]);
  ring.fadeIn = FADE; // skip the fade-in to read the samples themselves
  ring.playing = true;
  const out = render(ring);
  assert.deepEqual([...out.subarray(0, 3)], [...ramp(3, 200)]); // the oldest 200 are gone
  // A single write larger than the whole ring keeps its newest samples.
  const big = new PlaybackRing(100, FADE, 12000);
  assert.equal(big.write(ramp(250)), 150);
  assert.equal(big.size, 100);
});
