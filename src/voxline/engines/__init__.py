"""Model-backed engines shared by every session of a server process."""
