#!/usr/bin/env python3
"""Writes datasets/checkable/{train,eval}.jsonl: a small instruction set whose answers are checked by exact match
(loft eval), made for the quickstart's tiny model. Deterministic (seeded); the files are committed, this script
documents how they were made. Tasks:
  add     "What is 3 + 4?" -> "7"                      single digits: 100 sums
  recall  "What is the capital of Zorvia?" -> "Plimt"  24 invented facts (made up here: no model knows them)
  reverse "Reverse: 3 1 4" -> "4 1 3"                 3 to 4 digits separated by spaces
The eval file draws from the same task distributions (add has only 100 sums and recall 24 facts, so eval
questions were also seen in training: the quickstart measures that the adapter learned them, not
generalisation)."""
import json
import os
import random

rnd = random.Random(2026)
syll = ["zor", "vi", "pla", "mek", "tu", "ran", "qui", "bel", "dro", "sa", "lum", "fen", "ko", "tar", "wix", "nu"]


def word(n):
    return "".join(rnd.choice(syll) for _ in range(n)).capitalize()


places = sorted({word(2) for _ in range(40)})[:24]
capitals = [word(2) for _ in places]
facts = list(zip(places, capitals))
system = "You answer with the answer only."


def ex(task, q, a):
    return {"task": task, "messages": [{"role": "system", "content": system}, {"role": "user", "content": q},
                                       {"role": "assistant", "content": a}]}


def add():
    a, b = rnd.randrange(10), rnd.randrange(10)
    return ex("add", "What is %d + %d?" % (a, b), str(a + b))


def recall():
    p, c = rnd.choice(facts)
    return ex("recall", "What is the capital of %s?" % p, c)


def reverse():
    xs = [str(rnd.randrange(10)) for _ in range(rnd.choice((3, 4)))]
    return ex("reverse", "Reverse: %s" % " ".join(xs), " ".join(reversed(xs)))


def make(n_add, n_recall, n_rev):
    rows = [add() for _ in range(n_add)] + [recall() for _ in range(n_recall)] + [reverse() for _ in range(n_rev)]
    rnd.shuffle(rows)
    return rows


here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "datasets", "checkable")
for name, rows in (("train", make(400, 240, 160)), ("eval", make(20, 20, 20))):
    with open(os.path.join(here, name + ".jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
