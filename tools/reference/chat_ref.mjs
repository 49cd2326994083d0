// Chat-template oracle for tests/reference/chat_template.sh: renders conversations with
// @huggingface/jinja exactly as `loft template` is specified to (the context holds messages,
// bos_token, eos_token, add_generation_prompt and, only when given, enable_thinking).
//
//   node chat_ref.mjs cases --conversations FILE --tokenizer DIR --out DIR
//                           [--template NAME] [--thinking] [--agp both|true|false]
//       For every conversation x add_generation_prompt (false, true; --agp picks) x enable_thinking
//       (with --thinking: unset, false, true; else unset only) writes into --out:
//         NNN.messages.json   the messages (a JSON list), loft's stdin
//         NNN.args            loft's extra arguments, one line
//         NNN.ref             the reference rendering, exact bytes (absent when it raised)
//         NNN.err             the reference's exception message (only when it raised)
//       and cases.tsv: NNN <tab> conversation name <tab> args, one line per case.
//       The template is tokenizer_config.json's chat_template, or with --template NAME the one
//       stored under "templates" in the conversations file (also written to --out/NAME.jinja, to
//       give loft as --template FILE).
//   node chat_ref.mjs diff --expected FILE --got FILE
//       prints where two renderings first differ (byte offset, both sides as JSON around it).
//
// The npm packages come from tools/fetch_npm.sh: set LOFT_NPM_DIR to the directory it prints.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

function die(msg) {
  process.stderr.write(`chat_ref.mjs: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--thinking") o.thinking = true;
    else if (argv[i].startsWith("--")) {
      if (i + 1 >= argv.length) die(`${argv[i]} needs a value`);
      o[argv[i].slice(2)] = argv[++i];
    } else o._.push(argv[i]);
  }
  return o;
}

// bos_token / eos_token in tokenizer_config.json: a string, an AddedToken object, or null/absent
function tokenText(v) {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof v.content === "string") return v.content;
  return undefined;
}

function cmdCases(o) {
  if (!o.conversations || !o.tokenizer || !o.out) die("cases needs --conversations FILE --tokenizer DIR --out DIR");
  const dir = process.env.LOFT_NPM_DIR;
  if (!dir) die("LOFT_NPM_DIR is not set: run tools/fetch_npm.sh and set LOFT_NPM_DIR to the path it prints");
  const { Template } = createRequire(join(dir, "package.json"))("@huggingface/jinja");
  const doc = JSON.parse(readFileSync(o.conversations, "utf8"));
  if (doc.magic !== "loft-chat-conversations" || doc.version !== 1)
    die(`${o.conversations}: expected magic "loft-chat-conversations" version 1`);
  const config = JSON.parse(readFileSync(join(o.tokenizer, "tokenizer_config.json"), "utf8"));
  mkdirSync(o.out, { recursive: true });
  let source = config.chat_template, templateArgs = "";
  if (o.template) {
    source = doc.templates?.[o.template];
    if (typeof source !== "string") die(`${o.conversations}: no template named "${o.template}"`);
    const file = join(o.out, `${o.template}.jinja`);
    writeFileSync(file, source);
    templateArgs = ` --template ${file}`;
  }
  if (Array.isArray(source)) source = source.find((t) => t.name === "default")?.template;
  if (typeof source !== "string") die(`${o.tokenizer}/tokenizer_config.json has no chat_template`);
  const template = new Template(source);
  const bos = tokenText(config.bos_token), eos = tokenText(config.eos_token);

  const agps = { both: [false, true], true: [true], false: [false] }[o.agp ?? "both"];
  if (!agps) die("--agp must be both, true or false");
  const thinkings = o.thinking ? [undefined, false, true] : [undefined];
  const rows = [];
  let n = 0;
  for (const conv of doc.conversations) {
    for (const agp of agps) {
      for (const thinking of thinkings) {
        const id = String(n++).padStart(3, "0");
        const ctx = { messages: conv.messages, add_generation_prompt: agp };
        if (bos !== undefined) ctx.bos_token = bos;
        if (eos !== undefined) ctx.eos_token = eos;
        if (thinking !== undefined) ctx.enable_thinking = thinking;
        let args = templateArgs.trim();
        if (agp) args += " --add-generation-prompt";
        if (thinking !== undefined) args += ` --enable-thinking ${thinking}`;
        writeFileSync(join(o.out, `${id}.messages.json`), JSON.stringify(conv.messages) + "\n");
        writeFileSync(join(o.out, `${id}.args`), args.trim() + "\n");
        try {
          writeFileSync(join(o.out, `${id}.ref`), template.render(ctx));
        } catch (e) {
          writeFileSync(join(o.out, `${id}.err`), String(e?.message ?? e) + "\n");
        }
        rows.push(`${id}\t${conv.name}\t${args.trim()}`);
      }
    }
  }
  writeFileSync(join(o.out, "cases.tsv"), rows.join("\n") + "\n");
}

function cmdDiff(o) {
  if (!o.expected || !o.got) die("diff needs --expected FILE --got FILE");
  const a = readFileSync(o.expected), b = readFileSync(o.got);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const show = (buf) => {
    const from = Math.max(0, i - 60);
    return JSON.stringify(buf.subarray(from, i + 60).toString("utf8"));
  };
  process.stdout.write(`    first difference at byte ${i} (expected ${a.length} bytes, got ${b.length})\n`);
  process.stdout.write(`    expected: ...${show(a)}...\n    got:      ...${show(b)}...\n`);
}

const o = parseArgs(process.argv.slice(2));
if (o._[0] === "cases") cmdCases(o);
else if (o._[0] === "diff") cmdDiff(o);
else die("usage: chat_ref.mjs cases|diff ... (see the comment at the top of this file)");
