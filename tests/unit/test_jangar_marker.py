"""The SSE reply stops growing at ChatAdapter's end marker, wherever the deltas split it."""

from __future__ import annotations

import pytest

from app.review.jangar import COMPLETED_MARKER, JangarReply

ANSWER = "[[ ## verdict ## ]]\napprove\n\n" + COMPLETED_MARKER


@pytest.mark.parametrize("cut", range(len(ANSWER) - len(COMPLETED_MARKER), len(ANSWER) + 1))
def test_marker_when_split_across_deltas_then_found_and_tail_dropped(cut: int) -> None:
    reply = JangarReply()
    reply.append(ANSWER[:cut])
    reply.append(ANSWER[cut:] + "\n\nand then the model kept talking")
    assert reply.completed
    assert reply.content == ANSWER
    assert reply.overrun  # the stream is cut at this event


def test_marker_when_only_whitespace_follows_then_not_an_overrun() -> None:
    reply = JangarReply()
    reply.append(ANSWER + "\n")
    assert reply.completed
    assert not reply.overrun


def test_text_after_marker_when_more_arrives_then_overrun_and_not_kept() -> None:
    reply = JangarReply()
    reply.append(ANSWER)
    reply.append("   \n")
    assert not reply.overrun  # whitespace is not generation worth cutting for
    reply.append("more")
    assert reply.overrun
    assert reply.content == ANSWER
