"""Pure DSP on numpy arrays: PCM16 conversion, resampling, levels."""
