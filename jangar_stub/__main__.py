"""Run the loopback Jangar in the foreground.

Example: ``python -m jangar_stub --port 8181 --behaviour valid``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading

from jangar_stub.server import AnswerRule, Behaviour, JangarStub

log = logging.getLogger("jangar_stub")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jangar_stub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument(
        "--behaviour", default=Behaviour.VALID.value, choices=[b.value for b in Behaviour]
    )
    parser.add_argument("--delay-s", type=float, default=5.0, help="for the slow behaviours")
    parser.add_argument(
        "--veto-on",
        action="append",
        default=[],
        metavar="TEXT",
        help="answer veto when the request's inputs contain TEXT (repeatable)",
    )
    parser.add_argument(
        "--when-instructed",
        default=None,
        metavar="TEXT",
        help="apply --veto-on only when the instructions contain TEXT (e.g. 'event risk')",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    stub = JangarStub(
        host=args.host, port=args.port, behaviour=args.behaviour, delay_s=args.delay_s
    )
    stub.set_rules(
        AnswerRule(text, {"verdict": "veto", "confidence": 0.86}, args.when_instructed)
        for text in args.veto_on
    )
    with stub:
        log.info(
            "jangar stub on %s (JANGAR_BASE_URL), behaviour=%s; Ctrl-C to stop",
            stub.base_url,
            args.behaviour,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
