"""The Knative Service renders to a revision named from the build, an image pinned by digest
and a traffic block tagged current/previous/candidate (a revision rollback is one command)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "BUILD_SHA": "c0ffee1234ab",
    "CURRENT_SHA": "beef5678cd90",
    "PREVIOUS_SHA": "abcdef012345",
    "IMAGE_DIGEST": "sha256:" + "a" * 64,
}


def render(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "render-service.sh")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
    )


def test_rendered_service_names_revisions_and_pins_the_image() -> None:
    proc = render(**ENV)
    assert proc.returncode == 0, proc.stderr
    svc = yaml.safe_load(proc.stdout)
    template = svc["spec"]["template"]
    assert template["metadata"]["name"] == "trade-review-c0ffee1234ab"
    image = template["spec"]["containers"][0]["image"]
    assert image.endswith("@sha256:" + "a" * 64) and ":latest" not in image
    traffic = {t["tag"]: t for t in svc["spec"]["traffic"]}
    assert set(traffic) == {"current", "previous", "candidate"}
    assert traffic["current"]["revisionName"] == "trade-review-beef5678cd90"
    assert traffic["previous"]["revisionName"] == "trade-review-abcdef012345"
    assert traffic["candidate"]["revisionName"] == "trade-review-c0ffee1234ab"
    assert sum(t["percent"] for t in traffic.values()) == 100
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env["IMAGE_DIGEST"] == ENV["IMAGE_DIGEST"]


def test_render_refuses_a_tag_or_a_missing_value() -> None:
    assert "IMAGE_DIGEST" in render(**{**ENV, "IMAGE_DIGEST": "latest"}).stderr
    missing = render(**{k: v for k, v in ENV.items() if k != "PREVIOUS_SHA"})
    assert missing.returncode != 0 and "PREVIOUS_SHA" in missing.stderr


def test_dockerfile_bakes_the_build_sha() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BUILD_SHA" in text and "ENV BUILD_SHA=${BUILD_SHA}" in text
