"""The transport-agnostic conversation engine: turn-taking, playout, barge-in, history."""
