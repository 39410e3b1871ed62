// The playback ring: agent audio arrives in bursts off the socket and leaves at the audio
// context's steady rate. Pure: used by the playback worklet and tested under Node.
//
// - Underrun (the ring runs dry while playing): the last sample decays to zero over a short
//   fade instead of stepping there, and playback fades back in when audio returns. The ring
//   cannot tell a starved stream from the end of a reply when it runs dry, so it counts an
//   underrun when audio comes back within `underrunGap` samples: a gap inside speech.
// - clear() (barge-in): everything queued is dropped except a fade-out of at most one fade
//   length, which the next render quantum plays; the ring is empty after it.
// - Overrun (more audio than the capacity): the oldest audio is dropped, so that what plays
//   stays close to what the server is sending now; latency stays bounded.

/** Fade length: 2.5 ms, and never longer than one 128-sample render quantum. */
export function fadeSamplesFor(rate) {
  return Math.min(128, Math.round(rate * 0.0025));
}

export class PlaybackRing {
  constructor(capacity, fadeSamples, underrunGap) {
    this.data = new Float32Array(capacity);
    this.fade = fadeSamples;
    this.underrunGap = underrunGap;
    this.dryFor = -1; // silent samples since the ring ran dry while playing (-1: it did not)
    this.start = 0; // index of the oldest queued sample
    this.size = 0; // queued samples
    this.playing = false; // whether queued audio is being played
    this.fadeIn = fadeSamples; // samples into the current fade-in (fade: done)
    this.fadeOutLeft = 0; // samples left in a clear's fade-out
    this.fadeOutLength = 0;
    this.decayFrom = 0; // the last sample played before an underrun,
    this.decayLeft = 0; // and how many decay samples are left
    this.last = 0;
    this.underruns = 0;
    this.overruns = 0;
    this.overrunSamples = 0;
    this.clears = 0;
    this.clearedSamples = 0;
    this.written = 0;
    this.played = 0;
  }

  get capacity() {
    return this.data.length;
  }

  /** Queues samples; on overrun drops the oldest. Returns how many samples were dropped. */
  write(samples) {
    this.written += samples.length;
    let input = samples;
    if (input.length > this.capacity) input = input.subarray(input.length - this.capacity);
    const excess = this.size + input.length - this.capacity;
    const dropped = samples.length - input.length + Math.max(0, excess);
    if (excess > 0) {
      this.start = (this.start + excess) % this.capacity;
      this.size -= excess;
    }
    if (dropped > 0) {
      this.overruns += 1;
      this.overrunSamples += dropped;
    }
    let end = (this.start + this.size) % this.capacity;
    const first = Math.min(input.length, this.capacity - end);
    this.data.set(input.subarray(0, first), end);
    this.data.set(input.subarray(first), 0);
    this.size += input.length;
    return dropped;
  }

  /** Drops queued audio but a short fade-out; returns how many samples were dropped. */
  clear() {
    const keep = Math.min(this.size, this.fade);
    const dropped = this.size - keep;
    this.size = keep;
    this.fadeOutLeft = this.fadeOutLength = keep;
    this.clears += 1;
    this.clearedSamples += dropped;
    if (keep === 0 && this.playing) this.stop();
    this.dryFor = -1;
    return dropped;
  }

  /** Fills `out` with the next samples: queued audio, fades, or silence. */
  read(out) {
    for (let i = 0; i < out.length; i++) {
      if (this.size > 0) {
        let sample = this.data[this.start];
        this.start = this.start + 1 === this.capacity ? 0 : this.start + 1;
        this.size -= 1;
        if (!this.playing) {
          if (this.dryFor >= 0 && this.dryFor < this.underrunGap) this.underruns += 1;
          this.dryFor = -1;
          this.playing = true;
          this.fadeIn = 0;
          this.decayLeft = 0;
        }
        let fadedOut = false;
        if (this.fadeOutLeft > 0) {
          sample *= this.fadeOutLeft / (this.fadeOutLength + 1);
          this.fadeOutLeft -= 1;
          fadedOut = this.fadeOutLeft === 0;
        } else if (this.fadeIn < this.fade) {
          this.fadeIn += 1;
          sample *= this.fadeIn / this.fade;
        }
        this.played += 1;
        this.last = sample;
        out[i] = sample;
        if (fadedOut) this.stop(); // the end of a clear is not an underrun
      } else {
        if (this.playing) {
          this.stop();
          this.dryFor = 0;
        } else if (this.dryFor >= 0 && this.dryFor < this.underrunGap) {
          this.dryFor += 1;
        }
        out[i] = this.decayLeft > 0 ? (this.decayFrom * this.decayLeft--) / (this.fade + 1) : 0;
      }
    }
  }

  /** Playback stops: the last sample decays to zero rather than stepping there. */
  stop() {
    this.playing = false;
    this.decayFrom = this.last;
    this.decayLeft = this.fade;
    this.last = 0;
  }
}
