// The playback worklet: agent audio (PCM16 at the wire's rate) into a ring buffer, played at
// the context's rate. `clear` empties it at once (barge-in); stats go back to the main thread.

import { pcm16ToFloat } from "./pcm.js";
import { Resampler } from "./resampler.js";
import { PlaybackRing, fadeSamplesFor } from "./ring.js";

const STATS_EVERY_QUANTA = 8; // about 40 ms at 24 kHz

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { wireRate = 24000, capacitySeconds = 10, underrunGapMs = 500 } =
      options.processorOptions ?? {};
    // `sampleRate` and `currentFrame` are the AudioWorkletGlobalScope's.
    this.resampler = sampleRate === wireRate ? null : new Resampler(wireRate, sampleRate);
    this.ring = new PlaybackRing(
      Math.round(sampleRate * capacitySeconds),
      fadeSamplesFor(sampleRate),
      Math.round((sampleRate * underrunGapMs) / 1000),
    );
    this.quanta = 0;
    this.clearing = null; // a clear received since the last quantum, reported after the next
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.type === "audio") {
      const samples = pcm16ToFloat(message.pcm);
      this.ring.write(this.resampler ? this.resampler.process(samples) : samples);
    } else if (message.type === "clear") {
      const bufferedBefore = this.ring.size;
      const dropped = this.ring.clear();
      this.resampler?.reset();
      this.clearing = { id: message.id, frame: currentFrame, bufferedBefore, dropped };
    }
  }

  process(inputs, outputs) {
    const channels = outputs[0];
    const wasPlaying = this.ring.playing;
    this.ring.read(channels[0]);
    for (let c = 1; c < channels.length; c++) channels[c].set(channels[0]);
    if (this.clearing) {
      // The quantum just rendered is the first after the clear: it held at most the fade.
      this.port.postMessage({
        type: "cleared",
        ...this.clearing,
        renderedFrame: currentFrame,
        bufferedAfter: this.ring.size,
        stats: this.stats(),
      });
      this.clearing = null;
    }
    if (wasPlaying !== this.ring.playing || ++this.quanta % STATS_EVERY_QUANTA === 0) {
      this.port.postMessage({ type: "stats", stats: this.stats() });
    }
    return true;
  }

  stats() {
    const ring = this.ring;
    return {
      sampleRate,
      frame: currentFrame,
      playing: ring.playing,
      bufferedMs: (ring.size * 1000) / sampleRate,
      underruns: ring.underruns,
      overruns: ring.overruns,
      overrunSamples: ring.overrunSamples,
      clears: ring.clears,
      clearedSamples: ring.clearedSamples,
      writtenSamples: ring.written,
      playedSamples: ring.played,
    };
  }
}

registerProcessor("playback-processor", PlaybackProcessor);
