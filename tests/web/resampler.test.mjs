// The worklets' resampler: exact ratios, no drift, correct pitch, filtered images.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Resampler } from "../../src/voxline/web/resampler.js";

function tone(frequency, rate, seconds, amplitude = 0.5) {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin((2 * Math.PI * frequency * i) / rate);
  return out;
}

/** Streams `input` through a resampler in 128-sample quanta, as an audio thread would. */
function stream(resampler, input, block = 128) {
  const parts = [];
  for (let i = 0; i < input.length; i += block) {
    parts.push(Float32Array.from(resampler.process(input.subarray(i, i + block))));
  }
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** The frequency of a clean tone, from the times of its rising zero crossings (interpolated). */
function frequency(samples, rate) {
  const crossings = [];
  for (let i = 1; i < samples.length; i++) {
    if (samples[i - 1] < 0 && samples[i] >= 0) {
      crossings.push(i - 1 + samples[i - 1] / (samples[i - 1] - samples[i]));
    }
  }
  const periods = crossings.length - 1;
  return (periods * rate) / (crossings[periods] - crossings[0]);
}

/** Amplitude of the component of `samples` at `frequency` (a single DFT bin). */
function amplitudeAt(samples, frequencyHz, rate) {
  let re = 0;
  let im = 0;
  for (let i = 0; i < samples.length; i++) {
    re += samples[i] * Math.cos((2 * Math.PI * frequencyHz * i) / rate);
    im -= samples[i] * Math.sin((2 * Math.PI * frequencyHz * i) / rate);
  }
  return (2 * Math.hypot(re, im)) / samples.length;
}

const middle = (samples) => samples.subarray(samples.length >> 2, samples.length - (samples.length >> 2));

test("ratios reduce to exact integers", () => {
  const cases = [
    [48000, 24000, 1, 2],
    [24000, 48000, 2, 1],
    [44100, 24000, 80, 147],
    [24000, 44100, 147, 80],
    [16000, 24000, 3, 2],
  ];
  for (const [from, to, up, down] of cases) {
    const r = new Resampler(from, to);
    assert.deepEqual([r.up, r.down], [up, down], `${from} -> ${to}`);
  }
  assert.throws(() => new Resampler(48000, 24001), RangeError);
  assert.throws(() => new Resampler(0, 24000), RangeError);
});

test("output length follows the ratio exactly, whatever the block size", () => {
  for (const [from, to] of [
    [48000, 24000],
    [24000, 48000],
    [44100, 24000],
    [24000, 44100],
  ]) {
    for (const block of [128, 480, 7]) {
      const r = new Resampler(from, to);
      const out = stream(r, new Float32Array(from)); // one second
      // All but the filter's look-ahead comes out: within one filter length of `to`.
      const held = Math.ceil((r.taps * to) / from);
      assert.ok(out.length <= to && out.length >= to - held, `${from}->${to}/${block}: ${out.length}`);
      // Blocking does not change the result.
      assert.deepEqual(stream(new Resampler(from, to), new Float32Array(from), block).length, out.length);
    }
  }
});

test("a constant stays exactly constant (unity gain at DC in every phase)", () => {
  for (const [from, to] of [
    [48000, 24000],
    [24000, 48000],
    [44100, 24000],
  ]) {
    const out = stream(new Resampler(from, to), new Float32Array(4096).fill(0.25));
    for (const value of out.subarray(200)) assert.ok(Math.abs(value - 0.25) < 1e-6, `${value}`);
  }
});

test("golden values: 2:1 decimation and 1:2 interpolation of an impulse", () => {
  // Reference values from an independent NumPy evaluation of the same filter design:
  // h(t) = c sinc(c t) kaiser(t / W), c = 0.92 * min(1, out/in), W = 16 / c, each phase
  // normalised to unity gain at DC.
  const close = (actual, expected) => assert.ok(Math.abs(actual - expected) < 1e-5, `${actual}`);
  const impulse = new Float32Array(256);
  impulse[100] = 1;
  const down = stream(new Resampler(48000, 24000), impulse);
  // Input 100 is output 50, the filter's centre; outputs 49 and 51 are input lags of 2.
  close(down[50], 0.460006);
  close(down[49], 0.039055);
  close(down[51], 0.039055);
  const up = stream(new Resampler(24000, 48000), impulse);
  // Input 100 is output 200 (the even phase); outputs 199 and 201 lie half a sample away.
  close(up[200], 0.920011);
  close(up[199], 0.629501);
  close(up[201], 0.629501);
  close(up[202], 0.07811);
});

test("the pitch of a tone survives 48 kHz -> 24 kHz -> 48 kHz and 44.1 kHz -> 24 kHz", () => {
  for (const hz of [220, 1000, 3000, 9000]) {
    const at48 = tone(hz, 48000, 1);
    const at24 = stream(new Resampler(48000, 24000), at48);
    assert.ok(Math.abs(frequency(middle(at24), 24000) - hz) < hz * 1e-4, `${hz} Hz at 24 kHz`);
    const back = stream(new Resampler(24000, 48000), at24);
    assert.ok(Math.abs(frequency(middle(back), 48000) - hz) < hz * 1e-4, `${hz} Hz back at 48 kHz`);
    assert.ok(Math.abs(amplitudeAt(middle(back), hz, 48000) - 0.5) < 0.005, `${hz} Hz gain`);
  }
  const at44 = tone(1000, 44100, 1);
  const at24 = stream(new Resampler(44100, 24000), at44);
  assert.ok(Math.abs(frequency(middle(at24), 24000) - 1000) < 0.1);
  assert.ok(Math.abs(amplitudeAt(middle(at24), 1000, 24000) - 0.5) < 0.005);
});

test("decimation does not alias: a 15 kHz tone is gone at 24 kHz", () => {
  // 15 kHz would fold to 9 kHz at a 24 kHz rate.
  const out = stream(new Resampler(48000, 24000), tone(15000, 48000, 0.5));
  assert.ok(amplitudeAt(middle(out), 9000, 24000) < 0.5 * 1e-3); // below -60 dB
});

test("interpolation leaves no image: a 5 kHz tone has nothing at 19 kHz at 48 kHz", () => {
  const out = stream(new Resampler(24000, 48000), tone(5000, 24000, 0.5));
  assert.ok(amplitudeAt(middle(out), 19000, 48000) < 0.5 * 1e-3);
  assert.ok(Math.abs(amplitudeAt(middle(out), 5000, 48000) - 0.5) < 0.005);
});

test("reset forgets the past", () => {
  const r = new Resampler(24000, 48000);
  r.process(new Float32Array(128).fill(1));
  r.reset();
  const out = r.process(new Float32Array(128));
  assert.ok(out.every((v) => v === 0));
});
