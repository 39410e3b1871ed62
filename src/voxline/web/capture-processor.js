// The capture worklet: microphone audio at the context's rate in, 20 ms frames of PCM16 at
// the wire's rate out, posted to the main thread as transferable buffers with their level.

import { FrameAssembler } from "./pcm.js";
import { Resampler } from "./resampler.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { wireRate = 24000, frameMs = 20 } = options.processorOptions ?? {};
    // `sampleRate` is the AudioWorkletGlobalScope's: the context's rate.
    this.resampler = sampleRate === wireRate ? null : new Resampler(sampleRate, wireRate);
    this.frames = new FrameAssembler(Math.round((wireRate * frameMs) / 1000));
  }

  process(inputs) {
    const channel = inputs[0]?.[0]; // the node downmixes to one channel
    if (channel) {
      const block = this.resampler ? this.resampler.process(channel) : channel;
      for (const frame of this.frames.push(block)) this.port.postMessage(frame, [frame.pcm]);
    }
    return true;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
