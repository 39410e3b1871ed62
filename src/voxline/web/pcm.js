// PCM16 conversion and 20 ms framing. Pure: shared by the worklets and tested under Node.
//
// Conversion matches the server's (voxline.audio.pcm): float * 32768, rounded half to
// even, clipped to [-32768, 32767]; int16 / 32768 back. The wire is little-endian
// whatever the machine, so bytes go through a DataView.

/** One float sample in [-1, 1] as an int16 value; clips, never wraps; NaN is silence. */
export function floatToInt16(x) {
  if (!(x === x)) return 0; // NaN
  const v = x * 32768;
  if (v >= 32767) return 32767;
  if (v <= -32768) return -32768;
  let r = Math.round(v);
  if (r - v === 0.5 && r % 2 !== 0) r -= 1; // Math.round rounds halves up; make it even
  return r | 0; // | 0 turns -0 into 0
}

/** Float samples as a new ArrayBuffer of little-endian PCM16. */
export function floatToPcm16(samples) {
  const view = new DataView(new ArrayBuffer(samples.length * 2));
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, floatToInt16(samples[i]), true);
  return view.buffer;
}

/** Little-endian PCM16 bytes as float samples in [-1, 1); a trailing odd byte is ignored. */
export function pcm16ToFloat(buffer, byteOffset = 0, byteLength = buffer.byteLength - byteOffset) {
  const view = new DataView(buffer, byteOffset, byteLength);
  const out = new Float32Array(byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

/** Root mean square of float samples (0 for none). */
export function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}

/**
 * Collects blocks of any size (the audio thread's 128-sample render quanta) into frames of
 * exactly `frameSamples`, each returned as its own PCM16 ArrayBuffer, ready to transfer.
 */
export class FrameAssembler {
  constructor(frameSamples) {
    this.frameSamples = frameSamples;
    this.pending = new Float32Array(frameSamples);
    this.filled = 0;
  }

  /** Adds a block; returns the frames it completed, as `{pcm: ArrayBuffer, rms}`. */
  push(block) {
    const frames = [];
    let offset = 0;
    while (offset < block.length) {
      const take = Math.min(block.length - offset, this.frameSamples - this.filled);
      this.pending.set(block.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.frameSamples) {
        frames.push({ pcm: floatToPcm16(this.pending), rms: rms(this.pending) });
        this.filled = 0;
      }
    }
    return frames;
  }
}
