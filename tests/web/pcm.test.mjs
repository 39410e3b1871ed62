// PCM16 conversion and 20 ms framing, as the capture worklet uses them.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FrameAssembler,
  floatToInt16,
  floatToPcm16,
  pcm16ToFloat,
  rms,
} from "../../src/voxline/web/pcm.js";

test("float to int16: golden values, clipping, rounding half to even", () => {
  const golden = [
    [0, 0],
    [1, 32767], // 32768 does not fit: clipped, not wrapped to -32768
    [-1, -32768],
    [0.5, 16384],
    [-0.5, -16384],
    [1.5, 32767],
    [-7, -32768],
    [Infinity, 32767],
    [-Infinity, -32768],
    [NaN, 0],
    [1 / 32768, 1],
    [1 / 65536, 0], // 0.5 rounds to even: 0
    [3 / 65536, 2], // 1.5 rounds to even: 2
    [-3 / 65536, -2],
    [-1 / 65536, 0],
    [0.999, 32735],
  ];
  for (const [x, expected] of golden) assert.equal(floatToInt16(x), expected, `x = ${x}`);
});

test("PCM16 bytes are little-endian and round-trip", () => {
  const bytes = new Uint8Array(floatToPcm16(Float32Array.of(0, 1, -1, 0.5, -2 / 32768)));
  assert.deepEqual([...bytes], [0, 0, 0xff, 0x7f, 0x00, 0x80, 0x00, 0x40, 0xfe, 0xff]);
  const back = pcm16ToFloat(bytes.buffer);
  assert.deepEqual([...back], [0, 32767 / 32768, -1, 0.5, -2 / 32768]);
});

test("PCM16 from an offset, ignoring a trailing odd byte", () => {
  const tagged = Uint8Array.of(0x01, 0x00, 0x40, 0x00, 0xc0, 0x7f);
  const samples = pcm16ToFloat(tagged.buffer, 1);
  assert.deepEqual([...samples], [0.5, -0.5]);
});

test("128-sample render quanta become 480-sample frames, nothing lost or repeated", () => {
  const assembler = new FrameAssembler(480);
  const frames = [];
  let next = 0;
  for (let quantum = 0; quantum < 16; quantum++) {
    const block = new Float32Array(128);
    for (let i = 0; i < 128; i++) block[i] = (next++ % 1000) / 32768;
    frames.push(...assembler.push(block));
  }
  // 16 * 128 = 2048 samples: four whole frames, 128 samples still pending.
  assert.equal(frames.length, 4);
  assert.equal(assembler.filled, 128);
  const samples = frames.flatMap(({ pcm }) => [...new Int16Array(pcm)]);
  assert.equal(samples.length, 1920);
  samples.forEach((value, i) => assert.equal(value, i % 1000));
  for (const { pcm } of frames) assert.equal(pcm.byteLength, 960);
});

test("each frame is its own transferable buffer, with its level", () => {
  const assembler = new FrameAssembler(480);
  const [first, second] = assembler.push(new Float32Array(960).fill(0.25));
  assert.notEqual(first.pcm, second.pcm);
  const copy = structuredClone(first.pcm, { transfer: [first.pcm] });
  assert.equal(first.pcm.byteLength, 0); // detached by the transfer
  assert.equal(copy.byteLength, 960);
  assert.equal(second.rms, 0.25);
});

test("blocks larger than a frame", () => {
  const frames = new FrameAssembler(480).push(new Float32Array(1000));
  assert.equal(frames.length, 2);
});

test("rms", () => {
  assert.equal(rms(new Float32Array(0)), 0);
  assert.equal(rms(Float32Array.of(0.5, -0.5)), 0.5);
  assert.ok(Math.abs(rms(Float32Array.of(1, 0)) - Math.SQRT1_2) < 1e-12);
});
