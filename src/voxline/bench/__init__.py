"""``voxline bench``: load, latency and barge-in measurement."""
