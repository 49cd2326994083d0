// Peer for tools/bench/tokenize.sh: @huggingface/tokenizers (pure JS) encoding one text file, timed
// the same way as bench_tokenize (see tools/bench/tokenize.c): lines (each non-empty line one
// encode, without its newline) or whole (one encode); load once, one timed first pass, then the
// best of RUNS passes.
//
//   LOFT_NPM_DIR=$(tools/fetch_npm.sh) node tokenize_peer.mjs TOKENIZER_DIR TEXT_FILE [runs=5] [lines|whole]
// prints: tokenize_peer: bytes=B tokens=T calls=C first_s=F best_s=S mb_per_s=M tokens_per_s=K
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

const [dir, file, runsArg, mode = "lines"] = process.argv.slice(2);
if (!dir || !file || !process.env.LOFT_NPM_DIR || !["lines", "whole"].includes(mode)) {
  process.stderr.write("usage: LOFT_NPM_DIR=$(tools/fetch_npm.sh) node tokenize_peer.mjs TOKENIZER_DIR TEXT_FILE [runs=5] [lines|whole]\n");
  process.exit(2);
}
const runs = Number(runsArg ?? 5);
const { Tokenizer } = createRequire(join(process.env.LOFT_NPM_DIR, "package.json"))("@huggingface/tokenizers");
const tok = new Tokenizer(JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
  JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")));
const bytes = readFileSync(file);
const text = bytes.toString("utf8");
const pieces = mode === "whole" ? [text] : text.split("\n").filter((l) => l.length > 0);

function once() {
  const t0 = performance.now();
  let n = 0;
  for (const p of pieces) n += tok.encode(p, { add_special_tokens: false }).ids.length;
  return [n, (performance.now() - t0) / 1000];
}
const [tokens, first] = once();
let best = Infinity;
for (let r = 0; r < runs; r++) {
  const [n, dt] = once();
  if (n !== tokens) throw new Error(`run ${r + 1} gave ${n} tokens, the first ${tokens}`);
  best = Math.min(best, dt);
}
process.stdout.write(`tokenize_peer: bytes=${bytes.length} tokens=${tokens} calls=${pieces.length} first_s=${first.toFixed(4)} ` +
  `best_s=${best.toFixed(4)} mb_per_s=${(bytes.length / best / 1e6).toFixed(2)} tokens_per_s=${(tokens / best).toFixed(0)}\n`);
