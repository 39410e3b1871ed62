import pytest

from voxline.transports.call import far_end_close


@pytest.mark.parametrize(
    ("code", "reason", "recorded"),
    [
        (1000, "", (1000, "client_closed")),
        (1001, "bye", (1001, "client_closed")),
        (1005, "", (1000, "client_closed")),  # a close frame without a status: Node's close()
        (1005, None, (1006, "client_vanished")),  # uvicorn's code for a dropped connection
        (1006, None, (1006, "client_vanished")),
        (4000, "mine", (4000, "client_vanished")),
        (1008, "client_not_reading", (1008, "client_not_reading")),
        (1008, "policy", (1008, "client_vanished")),
    ],
)
def test_how_a_close_of_the_far_ends_is_recorded(
    code: int, reason: str | None, recorded: tuple[int, str]
) -> None:
    assert far_end_close(code, reason) == recorded
