#!/usr/bin/env bash
# Render knative/service.yaml for one build: revision named from the build SHA, image pinned by
# digest, traffic tags current/previous/candidate. Every placeholder must be given.
#   BUILD_SHA=<new sha> IMAGE_DIGEST=sha256:<...> CURRENT_SHA=<serving sha> \
#   PREVIOUS_SHA=<sha before it> scripts/render-service.sh > /tmp/service.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - knative/service.yaml <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
names = sorted(set(re.findall(r"\$\{([A-Z_]+)\}", text)))
missing = [n for n in names if not os.environ.get(n)]
if missing:
    sys.exit(f"render-service: set {', '.join(missing)}")
digest = os.environ["IMAGE_DIGEST"]
if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
    sys.exit("render-service: IMAGE_DIGEST must be sha256:<64 hex> (images by digest, not tag)")
for name in ("BUILD_SHA", "CURRENT_SHA", "PREVIOUS_SHA"):
    if not re.fullmatch(r"[0-9a-f]{7,40}", os.environ[name]):
        sys.exit(f"render-service: {name} must be a git SHA (7-40 hex)")
sys.stdout.write(re.sub(r"\$\{([A-Z_]+)\}", lambda m: os.environ[m.group(1)], text))
PY
