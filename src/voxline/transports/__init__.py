"""Wire formats over the one session engine: each adapts a transport to ``Outbound``."""
