"""The Omni-compatible wire contract, without I/O.

``frames`` turns WebSocket messages into inbound frames and events into outbound messages,
``client_frames`` validates what clients send, ``events`` builds what the server sends,
``connect`` reads the upgrade request, and ``errors`` holds the error and close-code table.
"""
