#!/usr/bin/env bash
# Start the radground MONAI Label server on 127.0.0.1 with the bundled default weights.
# Generates the synthetic studies first if the studies folder is empty.
#   PORT=8000 STUDIES=studies MODELS=all N_STUDIES=12 BODY=both scripts/serve.sh
# BODY=both writes an abdominal (synth_*) and a chest (chest_*) study per seed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
STUDIES=${STUDIES:-studies}
PORT=${PORT:-8000}
MODELS=${MODELS:-all}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python scripts/generate_studies.py --out "$STUDIES" --if-empty --n "${N_STUDIES:-12}" --preset "${PRESET:-default}" --split test --report-only-fraction 0.5 --body "${BODY:-both}"
exec .venv/bin/python -m monailabel.main start_server --app apps/radground --studies "$STUDIES" \
  --host 127.0.0.1 --port "$PORT" --conf models "$MODELS" "$@"
