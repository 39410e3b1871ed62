// Streaming sample-rate conversion for the worklets, when the browser will not give the
// AudioContext the wire's 24 kHz. Pure: tested under Node.
//
// A rational polyphase resampler: the ratio out/in is reduced to L/M (48000 -> 24000 is
// 1/2, 24000 -> 48000 is 2/1, 44100 -> 24000 is 80/147), and output sample n lies at input
// position n*M/L, kept as an integer index and an integer phase so that the ratio is exact
// and never drifts. Each of the L phases has its own precomputed Kaiser-windowed sinc
// low-pass filter, cut off below the lower of the two Nyquist frequencies, so decimation
// does not alias and interpolation leaves no images. For 2:1 and 1:2 that is a plain FIR
// decimator and a two-phase interpolator.

const MAX_PHASES = 1024;

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The modified Bessel function I0, by its power series (converges fast for the betas used). */
function besselI0(x) {
  const q = (x * x) / 4;
  let term = 1;
  let sum = 1;
  for (let k = 1; term > 1e-12 * sum; k++) {
    term *= q / (k * k);
    sum += term;
  }
  return sum;
}

function sinc(x) {
  return x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
}

export class Resampler {
  /**
   * @param {number} inRate input sample rate, Hz
   * @param {number} outRate output sample rate, Hz
   * @param {object} [options]
   * @param {number} [options.zeroCrossings=16] sinc lobes on each side: the filter's length
   * @param {number} [options.rolloff=0.92] cutoff as a fraction of the lower Nyquist frequency
   * @param {number} [options.beta=8.6] Kaiser window shape: stopband attenuation, about 85 dB
   */
  constructor(inRate, outRate, { zeroCrossings = 16, rolloff = 0.92, beta = 8.6 } = {}) {
    if (!(Number.isInteger(inRate) && Number.isInteger(outRate) && inRate > 0 && outRate > 0)) {
      throw new RangeError("sample rates must be positive integers");
    }
    const divisor = gcd(inRate, outRate);
    this.up = outRate / divisor; // L
    this.down = inRate / divisor; // M
    if (this.up > MAX_PHASES) {
      throw new RangeError(`cannot resample ${inRate} Hz to ${outRate} Hz: ratio too fine`);
    }
    this.inRate = inRate;
    this.outRate = outRate;
    // Cutoff in cycles per input sample, relative to the input Nyquist frequency.
    const cutoff = Math.min(1, this.up / this.down) * rolloff;
    const halfWidth = zeroCrossings / cutoff; // in input samples
    this.half = Math.ceil(halfWidth);
    this.taps = 2 * this.half;
    this.coefficients = new Float32Array(this.up * this.taps);
    const norm = besselI0(beta);
    for (let phase = 0; phase < this.up; phase++) {
      const frac = phase / this.up;
      const row = phase * this.taps;
      let sum = 0;
      for (let t = 0; t < this.taps; t++) {
        const offset = frac - (t - this.half + 1); // output position minus tap position
        const r = offset / halfWidth;
        const w = Math.abs(r) < 1 ? besselI0(beta * Math.sqrt(1 - r * r)) / norm : 0;
        const h = cutoff * sinc(cutoff * offset) * w;
        this.coefficients[row + t] = h;
        sum += h;
      }
      // Unity gain at DC in every phase: a constant stays exactly constant.
      for (let t = 0; t < this.taps; t++) this.coefficients[row + t] /= sum;
    }
    this.history = new Float32Array(this.taps + 256);
    this.output = new Float32Array(256);
    this.reset();
  }

  /** Forgets the signal so far (after a barge-in, say); the next sample starts afresh. */
  reset() {
    // Half a filter of zeros before the first sample aligns output 0 with input 0.
    this.history.fill(0, 0, this.half - 1);
    this.length = this.half - 1;
    this.index = this.half - 1; // history index of the next output's position
    this.phase = 0; // and its fraction, in 1/L steps
  }

  /**
   * Resamples the next block of the stream. The result is a view of an internal buffer,
   * valid until the next call; copy it to keep it.
   */
  process(input) {
    this.ensureHistory(this.length + input.length);
    this.history.set(input, this.length);
    this.length += input.length;
    const most = Math.ceil((this.length * this.up) / this.down) + 1;
    if (this.output.length < most) this.output = new Float32Array(most);
    const { history, coefficients, taps, up, down } = this;
    let produced = 0;
    while (this.index + this.half < this.length) {
      const start = this.index - this.half + 1;
      const row = this.phase * taps;
      let acc = 0;
      for (let t = 0; t < taps; t++) acc += history[start + t] * coefficients[row + t];
      this.output[produced++] = acc;
      this.phase += down;
      this.index += Math.floor(this.phase / up);
      this.phase %= up;
    }
    // Keep only what the next output's window still needs.
    const drop = Math.min(this.index - this.half + 1, this.length);
    if (drop > 0) {
      history.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.index -= drop;
    }
    return this.output.subarray(0, produced);
  }

  ensureHistory(size) {
    if (size <= this.history.length) return;
    const grown = new Float32Array(Math.max(size, 2 * this.history.length));
    grown.set(this.history.subarray(0, this.length));
    this.history = grown;
  }
}
