// Tokenizer oracle for the conformance test (tests/reference/tokenizer.sh): @huggingface/tokenizers
// (the pure-JS port of Hugging Face tokenizers) on a tokenizer.json + tokenizer_config.json, and
// the comparisons of loft's output against it.
//
//   node tok_ref.mjs encode   --tokenizer DIR --in CORPUS.jsonl --out PREFIX
//       writes PREFIX.plain.ids     ids of encode(x, add_special_tokens=false), one line per string,
//              PREFIX.special.ids   ids of encode(x, add_special_tokens=true),
//              PREFIX.plain.dec     decode(plain ids) as a JSON string per line,
//              PREFIX.special.dec   decode(special ids, skip_special_tokens=false),
//              PREFIX.skip.dec      decode(special ids, skip_special_tokens=true)
//       (ids separated by single spaces; an empty line for no ids; an empty id list decodes to "")
//   node tok_ref.mjs randids  --tokenizer DIR --count N --seed S --out PREFIX
//       PREFIX.ids: N random id sequences (byte tokens, special tokens and the whole vocabulary,
//       so decoders meet invalid UTF-8), PREFIX.dec and PREFIX.skip.dec: their reference decodes
//   node tok_ref.mjs compare  --kind ids|text|roundtrip --expected FILE --got FILE --label TEXT
//                             [--corpus CORPUS.jsonl] [--tags FILE] [--tokenizer DIR] [--show N]
//                             [--inputs FILE]
//       ids:       line i of got must hold exactly the ids of line i of expected
//       text:      line i of got, parsed as JSON, must equal the expected JSON string
//       roundtrip: expected is the reference decode of the reference ids; for every line where it
//                  equals the corpus string, got (loft's decode of loft's ids) must equal it too
//       prints one summary line; on failure the first --show (default 5) mismatches with the
//       string, expected and got (ids with their token strings when --tokenizer is given), and for
//       decodes the input ids (line i of --inputs); exit 1.
//
// The npm packages come from tools/fetch_npm.sh: set LOFT_NPM_DIR to the directory it prints.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

function die(msg) {
  process.stderr.write(`tok_ref.mjs: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) {
      if (i + 1 >= argv.length) die(`${argv[i]} needs a value`);
      o[argv[i].slice(2)] = argv[++i];
    } else o._.push(argv[i]);
  }
  return o;
}

function npmRequire() {
  const dir = process.env.LOFT_NPM_DIR;
  if (!dir) die("LOFT_NPM_DIR is not set: run tools/fetch_npm.sh and set LOFT_NPM_DIR to the path it prints");
  return createRequire(join(dir, "package.json"));
}

// One correction to the oracle. tokenizers.js decodes a run of "<0xXX>" byte-fallback tokens with a
// lossy TextDecoder: one U+FFFD per maximal invalid subsequence, and a leading BOM dropped.
// Hugging Face tokenizers (Rust; decoders/byte_fallback.rs), which transformers uses and the JS
// port otherwise follows, keeps the run's bytes when the whole run is valid UTF-8 and otherwise
// emits one U+FFFD per byte token of the run. The two differ only when decoding invalid byte runs
// (never for decode(encode(x))), e.g. <0x8C><0x31>: JS "\uFFFD1", Rust "\uFFFD\uFFFD". loft
// follows Rust, so the reference does too; LOFT_TOKREF_JS_BYTEFALLBACK=1 keeps the JS behaviour.
function rustByteFallback(lib) {
  const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const isByte = (t) => t.length === 6 && t.startsWith("<0x") && t.endsWith(">") && /^[0-9A-Fa-f]{2}$/.test(t.slice(3, 5));
  lib.ByteFallbackDecoder.prototype.decode_chain = function (tokens) {
    const out = [];
    let run = [];
    const flush = () => {
      if (!run.length) return;
      try {
        out.push(strict.decode(Uint8Array.from(run)));
      } catch {
        for (let i = 0; i < run.length; i++) out.push("\ufffd");
      }
      run = [];
    };
    for (const t of tokens) {
      if (isByte(t)) run.push(parseInt(t.slice(3, 5), 16));
      else {
        flush();
        out.push(t);
      }
    }
    flush();
    return out;
  };
}

function loadTokenizer(dir) {
  const lib = npmRequire()("@huggingface/tokenizers");
  if (process.env.LOFT_TOKREF_JS_BYTEFALLBACK !== "1") rustByteFallback(lib);
  const { Tokenizer } = lib;
  const json = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
  let config = {};
  try {
    config = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
  } catch (e) {
    if (e.code !== "ENOENT") throw e;
  }
  return new Tokenizer(json, config);
}

// lines of a file without the final newline's empty tail
function readLines(path) {
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function decode(tok, ids, skip) {
  // tokenizers.js refuses an empty list; Hugging Face decodes it to ""
  return ids.length ? tok.decode(ids, { skip_special_tokens: skip }) : "";
}

function cmdEncode(o) {
  if (!o.tokenizer || !o.in || !o.out) die("encode needs --tokenizer DIR --in CORPUS --out PREFIX");
  const tok = loadTokenizer(o.tokenizer);
  const out = { plain: [], special: [], plainDec: [], specialDec: [], skipDec: [] };
  for (const line of readLines(o.in)) {
    const s = JSON.parse(line);
    const plain = tok.encode(s, { add_special_tokens: false }).ids;
    const special = tok.encode(s, { add_special_tokens: true }).ids;
    out.plain.push(plain.join(" "));
    out.special.push(special.join(" "));
    out.plainDec.push(JSON.stringify(decode(tok, plain, false)));
    out.specialDec.push(JSON.stringify(decode(tok, special, false)));
    out.skipDec.push(JSON.stringify(decode(tok, special, true)));
  }
  const w = (suffix, a) => writeFileSync(`${o.out}.${suffix}`, a.join("\n") + "\n");
  w("plain.ids", out.plain);
  w("special.ids", out.special);
  w("plain.dec", out.plainDec);
  w("special.dec", out.specialDec);
  w("skip.dec", out.skipDec);
}

function cmdRandIds(o) {
  if (!o.tokenizer || !o.out) die("randids needs --tokenizer DIR --out PREFIX [--count N] [--seed S]");
  const tok = loadTokenizer(o.tokenizer);
  const n = Number(o.vocab ?? tok.get_vocab(true).size);
  const specials = [...tok.get_added_tokens_decoder().keys()];
  let s = (Number(o.seed ?? 7) >>> 0) || 1;
  const u32 = () => { // xorshift32: deterministic, good enough to spread ids
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  const ids = [], dec = [], skip = [];
  for (let i = 0, count = Number(o.count ?? 500); i < count; i++) {
    const len = 1 + (u32() % 24);
    const a = [];
    for (let k = 0; k < len; k++) {
      const r = u32() % 10;
      // ids < 512 hold the byte tokens of both byte-level BPE and byte fallback (<0x00>..<0xFF>)
      if (r < 5) a.push(u32() % Math.min(512, n));
      else if (r < 6 && specials.length) a.push(specials[u32() % specials.length]);
      else a.push(u32() % n);
    }
    ids.push(a.join(" "));
    dec.push(JSON.stringify(decode(tok, a, false)));
    skip.push(JSON.stringify(decode(tok, a, true)));
  }
  writeFileSync(`${o.out}.ids`, ids.join("\n") + "\n");
  writeFileSync(`${o.out}.dec`, dec.join("\n") + "\n");
  writeFileSync(`${o.out}.skip.dec`, skip.join("\n") + "\n");
}

function clip(s, n = 300) {
  const j = JSON.stringify(s);
  return j.length > n ? j.slice(0, n) + `... (${s.length} chars)` : j;
}

function cmdCompare(o) {
  const kind = o.kind;
  if (!["ids", "text", "roundtrip"].includes(kind) || !o.expected || !o.got || !o.label)
    die("compare needs --kind ids|text|roundtrip --expected FILE --got FILE --label TEXT");
  const exp = readLines(o.expected), got = readLines(o.got);
  const corpus = o.corpus ? readLines(o.corpus).map((l) => JSON.parse(l)) : null;
  const tags = o.tags ? readLines(o.tags) : null;
  const inputs = o.inputs ? readLines(o.inputs) : null;
  if (kind === "roundtrip" && !corpus) die("roundtrip needs --corpus");
  const show = Number(o.show ?? 5);
  let tok = null;
  const tokens = (line) => {
    if (!o.tokenizer) return "";
    tok ??= loadTokenizer(o.tokenizer);
    const ids = line.split(" ").filter(Boolean).map(Number);
    return "  " + JSON.stringify(ids.map((id) => tok.id_to_token(id) ?? `<?${id}>`));
  };
  if (exp.length !== got.length) {
    process.stdout.write(`${o.label}: FAIL: ${got.length} output lines for ${exp.length} inputs\n`);
    process.exit(1);
  }
  const bad = [];
  let compared = 0;
  for (let i = 0; i < exp.length; i++) {
    let ok, e = exp[i], g = got[i];
    if (kind === "ids") {
      compared++;
      ok = e.trim().split(/ +/).join(" ") === g.trim().split(/ +/).join(" ") && !/[^0-9 ]/.test(g);
    } else {
      e = JSON.parse(e);
      if (kind === "roundtrip") {
        if (e !== corpus[i]) continue; // the reference itself does not round-trip this string
        e = corpus[i];
      }
      compared++;
      try {
        g = JSON.parse(g);
        ok = typeof g === "string" && g === e;
      } catch {
        ok = false;
      }
    }
    if (!ok) bad.push({ i, e, g });
  }
  const extra = kind === "roundtrip" ? ` (of ${exp.length}; the rest do not round-trip in the reference either)` : "";
  if (!bad.length) {
    process.stdout.write(`${o.label}: ${compared}/${compared} identical${extra}\n`);
    return;
  }
  process.stdout.write(`${o.label}: FAIL: ${bad.length} of ${compared} differ${extra}; first ${Math.min(show, bad.length)}:\n`);
  for (const { i, e, g } of bad.slice(0, show)) {
    const where = `line ${i + 1}${tags ? ` [${tags[i]}]` : ""}`;
    process.stdout.write(`  ${where}\n`);
    if (corpus) process.stdout.write(`    string:   ${clip(corpus[i])}\n`);
    if (inputs) process.stdout.write(`    ids:      ${inputs[i]}${tokens(inputs[i])}\n`);
    if (kind === "ids") {
      process.stdout.write(`    expected: ${e}${tokens(e)}\n    got:      ${g}${tokens(g)}\n`);
    } else {
      process.stdout.write(`    expected: ${clip(e)}\n    got:      ${typeof g === "string" ? clip(g) : "(not a JSON string) " + String(g).slice(0, 300)}\n`);
    }
  }
  if (tags) {
    const by = {};
    for (const { i } of bad) by[tags[i]] = (by[tags[i]] ?? 0) + 1;
    process.stdout.write(`  mismatches by category: ${JSON.stringify(by)}\n`);
  }
  process.exit(1);
}

const o = parseArgs(process.argv.slice(2));
const cmd = o._[0];
if (cmd === "encode") cmdEncode(o);
else if (cmd === "randids") cmdRandIds(o);
else if (cmd === "compare") cmdCompare(o);
else die("usage: tok_ref.mjs encode|randids|compare ... (see the comment at the top of this file)");
