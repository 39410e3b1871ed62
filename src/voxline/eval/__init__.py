"""Measuring the engines: the speech-recognition evaluation set, its voices and its run."""
