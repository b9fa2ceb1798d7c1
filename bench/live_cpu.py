"""Where a live review's CPU goes inside the process (not a test; never asserted).

    .venv/bin/python -m bench.live_cpu                      # 400 calls x 3 rounds per segment
    .venv/bin/python -m bench.live_cpu --calls 1000 --rounds 5 --demos 4
    .venv/bin/python -m bench.live_cpu --baseline 166b4ae   # that revision vs this tree

The service's ``X-Review-Overhead-Ms`` is noisy (it includes the database write and the HTTP
server); this drives the real ``LiveExecutor`` in-process against the Jangar stub (``python -m
jangar_stub --behaviour valid``, a separate process on 127.0.0.1) and times each part of the LLM
step on its own, on uvloop as the service runs:

- ``review``: ``LiveExecutor.review`` (breaker, bulkhead, deadline, the DSPy program, the
  verdict): what the service's "LLM step" (``timings_ms.llm``) measures;
- ``exchange``: the Jangar engine's ``complete`` on a ready ``lm15.Request`` (body build, httpx,
  the stub, SSE parsing), i.e. the HTTP exchange with no DSPy around it;
- ``raw_http``: the same request as pre-built bytes through the same ``httpx.AsyncClient``,
  every line read (the floor for httpx + stub);
- ``format`` / ``parse``: the review adapter's ``format`` (messages) and ``parse`` (the stub's
  completion), ``inputs`` / ``verdict``: ``program_inputs`` and ``to_verdict``.

``review - exchange`` is the DSPy call machinery plus format/parse plus ours. Per segment: wall
p50/p99 of a call and the process CPU per call (``time.process_time``: every thread of this
process, so DSPy's worker-thread hops count). The stub's own CPU per review is read from /proc.
Rounds alternate the segments so machine noise hits them alike; medians over rounds are
reported. Writes ``bench/results/live_cpu.json`` (or ``--out``) and prints a markdown table.

``--baseline REV`` exports that revision (``git archive``) to ``var/bench/live_cpu-<sha>/``,
copies this script into it, and runs it and this tree alternately (``--pairs`` each, every run
its own process and its own stub from its own tree); prints both sides' medians and writes
``bench/results/live_cpu_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

from bench.harness import (
    RESULTS_DIR,
    ROOT,
    WORK,
    log,
    pct,
    proc_cpu_s,
    rnd,
    running,
    start_stub,
)

Segment = Callable[[], Awaitable[object]]


def _demos(n: int) -> list[dict[str, Any]]:
    """``n`` labelled demos shaped like a LabeledFewShot artifact's (inputs and outputs)."""
    from app.review.program import program_inputs
    from app.review.schemas import ReviewRequest
    from jangar_stub import DEFAULT_ANSWER
    from tests.support.requests import base_request

    out: list[dict[str, Any]] = []
    for i in range(n):
        body = base_request(datetime(2026, 11, 2, 14, 30 + i, tzinfo=UTC))
        body["decision"]["qty"] = str(5 + i)
        inputs = program_inputs(ReviewRequest.model_validate(body))
        out.append({**inputs, **DEFAULT_ANSWER, "rationale": f"demo {i}: small liquid order."})
    return out


async def _measure(
    segments: dict[str, Segment], calls: int, rounds: int, stub_pid: int
) -> dict[str, Any]:
    walls: dict[str, list[list[float]]] = {name: [] for name in segments}
    cpus: dict[str, list[float]] = {name: [] for name in segments}
    stub_cpu: list[float] = []
    for _ in range(rounds):
        for name, segment in segments.items():
            times: list[float] = []
            s0 = proc_cpu_s(stub_pid)
            c0 = time.process_time()
            for _ in range(calls):
                t0 = time.perf_counter()
                await segment()
                times.append((time.perf_counter() - t0) * 1000)
            cpus[name].append((time.process_time() - c0) * 1000 / calls)
            walls[name].append(times)
            if name == "review":
                stub_cpu.append((proc_cpu_s(stub_pid) - s0) * 1000 / calls)
    out: dict[str, Any] = {}
    for name in segments:
        out[name] = {
            "wall_p50_ms": rnd(statistics.median(pct(w, 50) or 0.0 for w in walls[name])),
            "wall_p99_ms": rnd(statistics.median(pct(w, 99) or 0.0 for w in walls[name])),
            "cpu_per_call_ms": rnd(statistics.median(cpus[name])),
            "cpu_per_call_ms_rounds": [rnd(c) for c in cpus[name]],
        }
    out["stub_cpu_per_review_ms"] = rnd(statistics.median(stub_cpu))
    return out


async def _run(args: argparse.Namespace, stub_url: str, stub_pid: int) -> dict[str, Any]:
    from dspy import lm15  # pyright: ignore[reportMissingTypeStubs]

    from app.registry.artifact import Artifact
    from app.registry.states import ExecutorKind
    from app.review.live import LiveExecutor, to_verdict
    from app.review.program import new_program, program_inputs
    from app.review.schemas import ReviewRequest
    from app.settings import load_settings
    from jangar_stub import DEFAULT_ANSWER, chat_adapter_content
    from tests.support.requests import base_request

    settings = load_settings({}, jangar_base_url=stub_url)
    program = new_program()
    state: dict[str, Any] = program.dump_state()
    if args.demos:
        state["review"]["demos"] = _demos(args.demos)
    artifact = Artifact(
        "b" * 64,
        "trade-review",
        "v1",
        ExecutorKind.DSPY_LIVE,
        settings.llm_model,
        {},
        {"dspy": state},
    )
    request = ReviewRequest.model_validate(base_request(datetime.now(UTC)))
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(connect=2.0, read=None, write=5.0, pool=1.0),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
    ) as client:
        executor = LiveExecutor(settings, client)
        executor.prepare(artifact)
        entry = executor._programs[artifact.artifact_hash]  # pyright: ignore[reportPrivateUsage]
        # (program, ReviewCall) since the direct call; the program alone before it.
        predictor = (entry[0] if isinstance(entry, tuple) else entry).review
        adapter = executor._adapter  # pyright: ignore[reportPrivateUsage]
        engine = executor._lm._async_engine_spec  # pyright: ignore[reportPrivateUsage]
        signature, demos = predictor.signature, predictor.demos
        inputs = program_inputs(request)
        messages = adapter.format(signature, demos, inputs)
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        turns = tuple(
            lm15.Message.user(m["content"]) if m["role"] == "user"
            else lm15.Message.assistant(m["content"])
            for m in messages if m["role"] != "system"
        )  # fmt: skip
        lm_request = lm15.Request(model=settings.llm_model, messages=turns, system=system)
        completion = chat_adapter_content(DEFAULT_ANSWER)
        fields = dict(adapter.parse(signature, completion))
        raw_body = orjson.dumps(
            {
                "model": settings.llm_model,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True, "include_plan": False},
                "max_completion_tokens": settings.llm_max_completion_tokens,
            }
        )
        url = engine._url  # pyright: ignore[reportPrivateUsage]
        headers = {"content-type": "application/json", "accept": "text/event-stream"}

        async def review() -> object:
            result = await executor.review(request, artifact, {})
            if result.verdict is None:
                raise RuntimeError(f"live review fell back: {result.outcome}")
            return result

        async def exchange() -> object:
            return await engine.complete(lm_request)

        async def raw_http() -> object:
            async with client.stream("POST", url, content=raw_body, headers=headers) as resp:
                async for _ in resp.aiter_lines():  # to the body's end: the connection is reused
                    pass
            return None

        async def format_() -> object:
            return adapter.format(signature, demos, inputs)

        async def parse() -> object:
            return adapter.parse(signature, completion)

        async def inputs_() -> object:
            return program_inputs(request)

        async def verdict() -> object:
            return to_verdict(fields)

        segments: dict[str, Segment] = {
            "review": review,
            "exchange": exchange,
            "raw_http": raw_http,
            "format": format_,
            "parse": parse,
            "inputs": inputs_,
            "verdict": verdict,
        }
        for segment in segments.values():  # warm-up: caches, connections, pydantic schemas
            for _ in range(30):
                await segment()
        figures = await _measure(segments, args.calls, args.rounds, stub_pid)
    return {
        "demos": args.demos,
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "messages_chars": sum(len(m["content"]) for m in messages),
        "code": _revision(),
        **figures,
    }


def _revision() -> str:
    if not (ROOT / ".git").exists():  # an exported baseline tree (its caller labels it)
        return "exported tree"
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(result: dict[str, Any]) -> str:
    rows = [
        "| segment | wall p50 ms | wall p99 ms | CPU per call ms (rounds) |",
        "|---|---:|---:|---:|",
    ]
    for name in ("review", "exchange", "raw_http", "format", "parse", "inputs", "verdict"):
        seg = result[name]
        rounds = ", ".join(str(c) for c in seg["cpu_per_call_ms_rounds"])
        rows.append(
            f"| {name} | {seg['wall_p50_ms']} | {seg['wall_p99_ms']} | "
            f"{seg['cpu_per_call_ms']} ({rounds}) |"
        )
    machinery = (result["review"]["cpu_per_call_ms"] or 0) - (
        result["exchange"]["cpu_per_call_ms"] or 0
    )
    rows += [
        "",
        f"- code: `{result['code']}`; demos: {result['demos']}; prompt chars: "
        f"{result['messages_chars']}; {result['calls_per_round']} calls x "
        f"{result['rounds']} rounds",
        f"- review - exchange (DSPy machinery + format/parse + ours), CPU per call: "
        f"{rnd(machinery)} ms",
        f"- stub CPU per review (its own process): {result['stub_cpu_per_review_ms']} ms",
    ]
    return "\n".join(rows)


# ----------------------------------------------------------------------------- before/after

_FIGURES = (
    ("review", "wall_p50_ms", "LLM step wall p50 ms"),
    ("review", "wall_p99_ms", "LLM step wall p99 ms"),
    ("review", "cpu_per_call_ms", "LLM step CPU per call ms"),
    ("exchange", "cpu_per_call_ms", "exchange CPU per call ms"),
    ("raw_http", "cpu_per_call_ms", "raw httpx CPU per call ms"),
    ("format", "cpu_per_call_ms", "format CPU per call ms"),
    ("parse", "cpu_per_call_ms", "parse CPU per call ms"),
    ("stub_cpu_per_review_ms", None, "stub CPU per review ms"),
)


def _baseline_tree(rev: str) -> Path:
    """The code at ``rev`` (``git archive``) under var/bench, with this script copied in."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = WORK / f"live_cpu-{sha}"
    if not (tree / "app").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    shutil.copy(Path(__file__), tree / "bench" / "live_cpu.py")
    return tree


def compare(args: argparse.Namespace) -> None:
    """This tree and ``--baseline`` alternately (``--pairs`` times), each its own process and
    its own stub; medians per side."""
    sides = {"before": _baseline_tree(args.baseline), "after": ROOT}
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for pair in range(args.pairs):
        for side, tree in sides.items():
            out = WORK / f"live_cpu-{side}-{pair}.json"
            argv = [sys.executable, "-m", "bench.live_cpu", "--out", str(out)]
            argv += ["--calls", str(args.calls), "--rounds", str(args.rounds)]
            argv += ["--demos", str(args.demos)]
            log(f"pair {pair + 1}/{args.pairs}: {side} ({tree})")
            subprocess.run(argv, cwd=tree, check=True, stdout=subprocess.DEVNULL)
            results[side].append(json.loads(out.read_text()))
    rows = [
        f"before: `{args.baseline}` (git archive); after: `{results['after'][0]['code']}`",
        f"(demos {args.demos}; {args.pairs} alternating pairs of {args.calls} calls x "
        f"{args.rounds} rounds per segment; medians of the runs)",
        "",
        "| figure | before | after | runs before | runs after |",
        "|---|---:|---:|---|---|",
    ]
    summary: dict[str, Any] = {"baseline": args.baseline, "demos": args.demos, "figures": {}}
    for segment, key, label in _FIGURES:
        per_side: dict[str, list[float]] = {}
        for side, runs in results.items():
            values = [r[segment] if key is None else r[segment][key] for r in runs]
            per_side[side] = [float(v) for v in values if v is not None]
        before = rnd(statistics.median(per_side["before"]))
        after = rnd(statistics.median(per_side["after"]))
        summary["figures"][label] = {"before": per_side["before"], "after": per_side["after"]}
        rows.append(
            f"| {label} | {before} | {after} | {per_side['before']} | {per_side['after']} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_cpu", description=__doc__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--demos", type=int, default=0, help="labelled demos in the artifact")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "live_cpu.json")
    parser.add_argument(
        "--baseline", help="a git revision: run it and this tree alternately, print both"
    )
    parser.add_argument("--pairs", type=int, default=3, help="with --baseline: runs per side")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)  # the stub's log goes there
    if args.baseline:
        if args.out == RESULTS_DIR / "live_cpu.json":
            args.out = RESULTS_DIR / "live_cpu_compare.json"
        compare(args)
        return
    with running(start_stub("valid")) as stub:
        log(f"stub on {stub.url}; {args.calls} calls x {args.rounds} rounds per segment")
        result = uvloop.run(_run(args, stub.url, stub.proc.pid))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))


if __name__ == "__main__":
    main()
