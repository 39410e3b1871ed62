"""The nodes listing groups the processes' announcements by node."""

from __future__ import annotations

from voxline.server.nodes_api import nodes


def presence(node: str, sessions: int, cap: int | None, *, draining: bool = False) -> dict:
    return {
        "node": node,
        "host": "h",
        "pid": 1,
        "version": "0",
        "started_at": float(sessions),
        "sessions": sessions,
        "max_sessions": cap,
        "draining": draining,
    }


def test_processes_are_grouped_by_node_with_their_sessions_and_capacity_added_up() -> None:
    listed = nodes(
        {
            "p2": presence("b", 5, 100),
            "p1": presence("b", 2, 100, draining=True),
            "p3": presence("a", 1, None),
            "p4": presence("a", 0, 50),
        }
    )
    assert [(n["node"], n["sessions"], n["max_sessions"], n["draining"]) for n in listed] == [
        ("a", 1, None, False),  # a process without a cap: the node has none
        ("b", 7, 200, True),  # one process draining: the node is
    ]
    assert [p["process_id"] for p in listed[1]["processes"]] == ["p1", "p2"]  # oldest first
    assert "node" not in listed[1]["processes"][0]


def test_no_process_no_node() -> None:
    assert nodes({}) == []
