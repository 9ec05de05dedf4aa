#!/usr/bin/env python3
"""Validates the semantic-cache evaluation sets and prints their counts.

Run from anywhere: python3 tests/data/check_sets.py
Exits non-zero on any error (format, labels, duplicates, tune/held-out overlap).
"""

import collections
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
DEV, TUNE, HELDOUT = "cache-dev-set.tsv", "cache-tune.tsv", "cache-heldout.tsv"
HELDOUT_V2 = "cache-heldout-v2.tsv"
HELDOUT_V3 = "cache-heldout-v3.tsv"

PARAPHRASE = [
    "synonym", "phrasal-verb", "morphology", "spelling", "hyphen-spacing",
    "conversion", "reorder", "politeness", "question-form", "case-punctuation",
]
NEAR_MISS = [
    "referent", "relative-time", "number", "entity", "unit-direction",
    "negation", "antonym", "swapped-word", "quantifier", "comparison",
]
KINDS = {f"paraphrase/{c}": "hit" for c in PARAPHRASE}
KINDS.update({f"near-miss/{c}": "miss" for c in NEAR_MISS})
KINDS["unrelated"] = "miss"
# The dev set predates the top/class kinds; its bare kinds are accepted there only.
DEV_KINDS = {"paraphrase": "hit", "near-miss": "miss", "unrelated": "miss"}

MIN_WORDS, MAX_WORDS = 3, 25
errors = []


def error(msg):
    errors.append(msg)


def load(name, kinds, check_words=True):
    rows = []
    for number, line in enumerate((HERE / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        cols = line.split("\t")
        if len(cols) != 4:
            error(f"{where}: {len(cols)} columns, expected 4")
            continue
        kind, cached, query, expect = cols
        if expect not in ("hit", "miss"):
            error(f"{where}: expect {expect!r} is not hit/miss")
        if kind not in kinds:
            error(f"{where}: unknown kind {kind!r}")
        elif kinds[kind] != expect:
            error(f"{where}: kind {kind} must be {kinds[kind]}, found {expect}")
        for text in (cached, query):
            if text != text.strip() or not text:
                error(f"{where}: empty field or leading/trailing space in {text!r}")
            words = len(text.split())
            if check_words and not MIN_WORDS <= words <= MAX_WORDS:
                error(f"{where}: {words} words in {text!r}")
        if cached == query:
            error(f"{where}: query identical to cached")
        if re.search(r"[^\x20-\x7e]", cached + query):
            print(f"note: {where}: non-ASCII text", file=sys.stderr)
        rows.append((kind, cached, query, expect, where))
    seen = {}
    for kind, cached, query, _, where in rows:
        if (cached, query) in seen:
            error(f"{where}: duplicate pair, first at {seen[(cached, query)]}")
        seen.setdefault((cached, query), where)
    return rows


def report(name, rows):
    by_kind = collections.Counter(r[0] for r in rows)
    by_top = collections.Counter(r[0].split("/")[0] for r in rows)
    total = len(rows)
    cached = {r[1] for r in rows}
    print(f"{name}: {total} rows, {len(cached)} cached prompts, "
          f"hit {sum(r[3] == 'hit' for r in rows)}, miss {sum(r[3] == 'miss' for r in rows)}")
    for top in ("paraphrase", "near-miss", "unrelated"):
        if by_top[top]:
            print(f"  {top:<28}{by_top[top]:>4}  ({100 * by_top[top] / total:.0f}%)")
    for kind in (k for k in KINDS if "/" in k and by_kind[k]):
        print(f"    {kind:<30}{by_kind[kind]:>4}")


def main():
    dev = load(DEV, DEV_KINDS)
    tune = load(TUNE, KINDS)
    heldout = load(HELDOUT, KINDS)

    dev_pairs = {(r[1], r[2]) for r in dev}
    for rows in (tune, heldout):
        for _, cached, query, _, where in rows:
            if (cached, query) in dev_pairs:
                error(f"{where}: repeats a dev-set row")

    heldout_v2 = load(HELDOUT_V2, KINDS)
    heldout_v3 = load(HELDOUT_V3, KINDS)
    for _, cached, query, _, where in heldout_v2 + heldout_v3:
        if (cached, query) in dev_pairs:
            error(f"{where}: repeats a dev-set row")

    # A held-out file shares no cached prompt and no sentence with the files written before it.
    earlier = [(TUNE, tune)]
    held_out_sets = ((HELDOUT, heldout), (HELDOUT_V2, heldout_v2), (HELDOUT_V3, heldout_v3))
    for held_name, held in held_out_sets:
        for name, rows in earlier:
            cached_there = {r[1] for r in rows}
            texts_there = {t for r in rows for t in (r[1], r[2])}
            for _, cached, query, _, where in held:
                if cached in cached_there:
                    error(f"{where}: cached prompt also cached in {name}: {cached!r}")
                for text in (cached, query):
                    if text in texts_there:
                        error(f"{where}: text also appears in {name}: {text!r}")
        earlier.append((held_name, held))

    all_sets = ((DEV, dev), (TUNE, tune)) + held_out_sets
    for name, rows in all_sets:
        report(name, rows)
    for name, rows in all_sets[1:]:
        if len(rows) < 260:
            error(f"{name}: only {len(rows)} rows, expected at least 260")
        missing = [k for k in KINDS if not any(r[0] == k for r in rows)]
        if missing:
            error(f"{name}: no rows of kind {', '.join(missing)}")

    for msg in errors:
        print(f"ERROR {msg}", file=sys.stderr)
    if errors:
        sys.exit(f"{len(errors)} error(s)")
    print("ok")


if __name__ == "__main__":
    main()
