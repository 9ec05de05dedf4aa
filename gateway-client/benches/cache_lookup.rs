//! Semantic cache lookups at 10k and 100k entries in one partition.
//!
//! `cargo bench -p gateway-client --bench cache_lookup`
//!
//! The cache is filled with varied synthetic prompts: sixteen question templates, each slot filled
//! from a vocabulary of 3,000 words drawn with Zipf-like frequencies (a few words are very common,
//! most are rare), so posting lists have the skew of real traffic. A lookup is what the gateway
//! does per chat call: prompt analysis (`SemanticCache::prompt`), then `find` (exact match, embed,
//! inverted-index search, similarity, verification). Three kinds of query:
//! - `exact`: a stored prompt asked again (the exact-match map answers);
//! - `paraphrase`: a stored prompt in its template's other wording (embed, search, verify);
//! - `new`: a prompt never asked word for word, from the same templates and vocabulary (most
//!   miss; with Zipf-drawn words some are near-duplicates of a stored prompt and hit).
//!
//! Criterion reports means; a manual loop then prints p50/p99/max per kind, in wall time and in
//! the thread's on-CPU time (on a busy machine, wall-time tails are mostly preemptions), the hit rate each
//! kind actually got, a phase breakdown at the largest size (analysis, embedding, candidate
//! gathering on a twin `Index`, posting entries walked, whether the stored original made the
//! candidate list), and the memory per entry (`Entry::approximate_bytes`, the RSS growth while
//! filling, and what a response costs as a `serde_json::Value`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark: setup failures should stop it, and its report goes to stdout"
)]

use std::{
    collections::{HashMap, HashSet},
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use cpu_time::ThreadTime;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use gateway_client::{
    Api, CallContext,
    clock::Clock,
    semantic::{CacheConfig, Embedder, Index, Limits, SemanticCache, StaticEmbedder},
};
use serde_json::{Map, Value, json};

const MODEL: &str = "gpt-4o-mini";
const SIZES: [usize; 2] = [10_000, 100_000];
const VOCABULARY: usize = 3_000;
/// Distinct queries per kind; lookups cycle through them.
const QUERIES: usize = 2_000;
/// How many candidates a lookup compares by embedding: `semantic::index::CANDIDATES`, which the
/// crate does not export.
const CANDIDATES: usize = 16;
/// Lookups timed one by one for the percentiles, per kind and size.
const TIMED_LOOKUPS: usize = 20_000;

/// (canonical wording, paraphrase). `{0}`–`{2}` are vocabulary words, `{n}` a number.
const TEMPLATES: [(&str, &str); 16] = [
    (
        "How do I {0} the {1} in {2}?",
        "How can I {0} the {1} in {2}?",
    ),
    (
        "What is the difference between {0} and {1}?",
        "What's the difference between {0} and {1}?",
    ),
    (
        "Explain how the {0} {1} works.",
        "Please explain how the {0} {1} works.",
    ),
    (
        "Why does my {0} {1} fail after {2}?",
        "Why does my {0} {1} fail after the {2}?",
    ),
    (
        "Give me three tips for {0} {1}.",
        "Can you give me three tips for {0} {1}?",
    ),
    ("What causes {0} in a {1}?", "What causes {0} in the {1}?"),
    (
        "Compare {0} and {1} for {2}.",
        "Please compare {0} and {1} for {2}.",
    ),
    (
        "How long does a {0} {1} stay valid?",
        "How long does a {0} {1} remain valid?",
    ),
    (
        "Show me how to create a {0} for {1}.",
        "How do I create a {0} for {1}?",
    ),
    (
        "Tell me the default {0} of the {1} server.",
        "What is the default {0} of the {1} server?",
    ),
    (
        "Summarize the {0} of {1} and {2}.",
        "Please summarize the {0} of {1} and {2}.",
    ),
    (
        "Is it safe to {0} the {1} during {2}?",
        "Is it safe to {0} the {1} during the {2}?",
    ),
    (
        "Set the {0} limit to {n} per {1}.",
        "Please set the {0} limit to {n} per {1}.",
    ),
    (
        "What are the advantages of using {0} with {1}?",
        "What are the benefits of using {0} with {1}?",
    ),
    (
        "How should I configure {0} for the {1} {2}?",
        "How do I configure {0} for the {1} {2}?",
    ),
    (
        "Translate {0} {1} into {2}.",
        "Please translate {0} {1} into {2}.",
    ),
];

/// Real words first (they take the most frequent ranks), then made-up ones to fill the
/// vocabulary.
const COMMON_WORDS: &str = "server cache token budget gateway model prompt request response \
    deployment slot instance scaling region container database index query latency throughput \
    subscription key quota limit policy metric log trace alert dashboard backend frontend proxy \
    certificate domain network firewall storage queue topic stream event function app service \
    cluster node pod volume secret identity role permission user group tenant account billing \
    invoice report export import backup restore snapshot replica shard partition schema table \
    column row document collection bucket object file folder path route endpoint header cookie \
    session timeout retry breaker failover health probe startup shutdown restart upgrade rollback \
    release build pipeline test coverage lint format compile bundle package registry image tag \
    version branch commit merge review issue ticket sprint roadmap feature flag experiment cohort \
    segment funnel conversion retention churn revenue cost price discount coupon order cart \
    payment refund shipment warehouse inventory supplier vendor contract invoice ledger journal \
    python rust java kotlin swift golang typescript javascript ruby scala haskell elixir erlang \
    kafka redis postgres mysql sqlite mongodb cassandra elastic nginx envoy traefik caddy docker \
    kubernetes terraform ansible helm grafana prometheus jaeger sentry datadog splunk okta auth0 \
    oauth saml jwt tls dns http grpc websocket graphql rest soap json yaml toml csv parquet avro";

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mir", "ven", "tor", "sa", "bel", "qui", "dra", "nu", "pex", "zo", "ri", "fan",
    "gol", "hue", "jas", "ker", "lum", "mo", "nev", "ost", "pra", "wil",
];

/// A small deterministic generator (xorshift64*), so every run builds the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Vocabulary {
    words: Vec<String>,
    /// Cumulative Zipf (s = 1) weights by rank.
    cdf: Vec<f64>,
}

impl Vocabulary {
    fn new() -> Self {
        let mut words: Vec<String> = Vec::with_capacity(VOCABULARY);
        for word in COMMON_WORDS.split_whitespace() {
            if !words.iter().any(|w| w == word) {
                words.push(word.to_owned());
            }
        }
        let mut rng = Rng(0x5eed_0001);
        while words.len() < VOCABULARY {
            let syllables = 2 + rng.below(3);
            let word: String = (0..syllables)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect();
            if !words.contains(&word) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cdf = (1..=words.len())
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { words, cdf }
    }

    fn pick(&self, rng: &mut Rng) -> &str {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let target = rng.unit() * total;
        let rank = self.cdf.partition_point(|c| *c < target);
        &self.words[rank.min(self.words.len() - 1)]
    }
}

/// One generated question: its template and slot values, so both wordings can be rendered.
struct Spec {
    template: usize,
    slots: [String; 3],
    number: u32,
}

impl Spec {
    fn random(vocabulary: &Vocabulary, rng: &mut Rng) -> Self {
        Self {
            template: rng.below(TEMPLATES.len()),
            slots: [
                vocabulary.pick(rng).to_owned(),
                vocabulary.pick(rng).to_owned(),
                vocabulary.pick(rng).to_owned(),
            ],
            number: 10 * (1 + rng.below(500) as u32),
        }
    }

    fn render(&self, paraphrase: bool) -> String {
        let (canonical, other) = TEMPLATES[self.template];
        let template = if paraphrase { other } else { canonical };
        template
            .replace("{0}", &self.slots[0])
            .replace("{1}", &self.slots[1])
            .replace("{2}", &self.slots[2])
            .replace("{n}", &self.number.to_string())
    }
}

fn request(text: &str) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for App Service operators."},
            {"role": "user", "content": text},
        ],
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

fn response(index: usize, text: &str) -> Value {
    json!({
        "id": format!("chatcmpl-bench{index}"),
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": format!("Here is an answer to \"{text}\": check the settings, apply the change, then verify it in the logs. Entry {index}."),
            },
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 40, "completion_tokens": 30, "total_tokens": 70},
    })
}

fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

struct Kind {
    name: &'static str,
    queries: Vec<Map<String, Value>>,
    /// The exact-match hash of the stored prompt each query should find (none for misses).
    origins: Vec<Option<u64>>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

fn cache_lookup(c: &mut Criterion) {
    // First, before the heap holds anything else.
    let (response_line, _responses) = response_memory();
    let vocabulary = Vocabulary::new();
    let context = CallContext::for_subscription("bench", Api::OpenAi);
    // The default embedder, as the server builds it.
    let embedder = StaticEmbedder::new().unwrap();
    let cache = SemanticCache::new(
        Arc::new(embedder),
        CacheConfig {
            max_entries: 200_000,
            max_bytes: usize::MAX,
            ..CacheConfig::default()
        },
        Clock::new(),
    );
    let mut rng = Rng(0x0ca0_4e5e_ed00_0001);
    let mut stored: Vec<Spec> = Vec::new();
    let mut stored_texts: HashSet<String> = HashSet::new();
    let mut memory_lines = Vec::new();
    let mut breakdown_lines = Vec::new();
    let mut percentile_lines = Vec::new();

    for size in SIZES {
        let before = rss_kb();
        let fill_started = Instant::now();
        let from = stored.len();
        while cache.len() < size {
            let spec = Spec::random(&vocabulary, &mut rng);
            let text = spec.render(false);
            // The gateway stores a prompt after a miss only: a repeat would be an exact hit.
            if !stored_texts.insert(text.clone()) {
                continue;
            }
            let prompt = cache.prompt(&context, MODEL, &request(&text)).unwrap();
            block_on(cache.keep(prompt, &response(stored.len(), &text)));
            stored.push(spec);
        }
        let after = rss_kb();
        let added = cache.len().saturating_sub(from.min(cache.len()));
        if let (Some(before), Some(after)) = (before, after) {
            memory_lines.push(format!(
                "{size:>7} entries: filled {} prompts in {:.1} s; RSS grew {:.1} MiB, {:.0} bytes per added entry",
                stored.len() - from,
                fill_started.elapsed().as_secs_f64(),
                (after.saturating_sub(before)) as f64 / 1024.0,
                (after.saturating_sub(before) * 1024) as f64 / added.max(1) as f64,
            ));
        }

        // Queries: stored prompts again, their paraphrases, and new prompts (never asked
        // before word for word; they may still be near-duplicates of a stored one).
        let mut pick = Rng(0xfeed_0000 + size as u64);
        let sample: Vec<&Spec> = (0..QUERIES)
            .map(|_| &stored[pick.below(stored.len())])
            .collect();
        let origins: Vec<Option<u64>> = sample
            .iter()
            .map(|spec| {
                cache
                    .prompt(&context, MODEL, &request(&spec.render(false)))
                    .map(|prompt| prompt.exact)
            })
            .collect();
        let mut fresh = Rng(0xbad0_0000 + size as u64);
        let mut new_prompts = Vec::with_capacity(QUERIES);
        while new_prompts.len() < QUERIES {
            let text = Spec::random(&vocabulary, &mut fresh).render(false);
            if !stored_texts.contains(&text) {
                new_prompts.push(request(&text));
            }
        }
        let kinds = [
            Kind {
                name: "exact",
                queries: sample.iter().map(|s| request(&s.render(false))).collect(),
                origins: origins.clone(),
            },
            Kind {
                name: "paraphrase",
                queries: sample.iter().map(|s| request(&s.render(true))).collect(),
                origins,
            },
            Kind {
                name: "new",
                queries: new_prompts,
                origins: vec![None; QUERIES],
            },
        ];

        let mut group = c.benchmark_group(format!("cache_lookup/{size}"));
        group
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for kind in &kinds {
            let mut next = 0;
            group.bench_function(kind.name, |b| {
                b.iter(|| {
                    next = (next + 1) % kind.queries.len();
                    let prompt = cache.prompt(&context, MODEL, &kind.queries[next]);
                    black_box(prompt.map(|prompt| block_on(cache.find(&prompt))))
                });
            });
        }
        group.finish();

        for kind in &kinds {
            let mut wall = Vec::with_capacity(TIMED_LOOKUPS);
            let mut on_cpu = Vec::with_capacity(TIMED_LOOKUPS);
            let mut hits = 0;
            for i in 0..TIMED_LOOKUPS {
                let query = &kind.queries[i % kind.queries.len()];
                let cpu_started = ThreadTime::now();
                let started = Instant::now();
                let found = cache
                    .prompt(&context, MODEL, query)
                    .and_then(|prompt| block_on(cache.find(&prompt)));
                wall.push(started.elapsed());
                on_cpu.push(cpu_started.elapsed());
                hits += usize::from(found.is_some());
            }
            wall.sort_unstable();
            on_cpu.sort_unstable();
            percentile_lines.push(format!(
                "{size:>7} entries, {:<10}: wall p50 {:>9} p99 {:>9} max {:>9} | on-CPU p50 {:>9} p99 {:>9} max {:>9} | hit rate {:.1}%",
                kind.name,
                micros(percentile(&wall, 0.50)),
                micros(percentile(&wall, 0.99)),
                micros(percentile(&wall, 1.0)),
                micros(percentile(&on_cpu, 0.50)),
                micros(percentile(&on_cpu, 0.99)),
                micros(percentile(&on_cpu, 1.0)),
                100.0 * hits as f64 / TIMED_LOOKUPS as f64,
            ));
        }

        if size == SIZES[SIZES.len() - 1] {
            breakdown_lines = phase_breakdown(&cache, &context, &stored, &kinds);
            breakdown_lines.extend(restore_experiment(&cache, &context, &stored, &kinds[1]));
            let sizes: Vec<usize> = stored
                .iter()
                .take(2_000)
                .enumerate()
                .filter_map(|(i, spec)| {
                    let text = spec.render(false);
                    let prompt = cache.prompt(&context, MODEL, &request(&text))?;
                    block_on(cache.entry_for(&prompt, &response(i, &text)))
                })
                .map(|entry| entry.approximate_bytes())
                .collect();
            let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
            memory_lines.push(format!(
                "Entry::approximate_bytes: {mean:.0} bytes on average over {} entries",
                sizes.len()
            ));
        }
    }

    memory_lines.extend(response_line);
    println!(
        "\nsemantic cache lookup, one partition, static embedder (the default) (manual loop, {TIMED_LOOKUPS} lookups per line)"
    );
    for line in percentile_lines
        .iter()
        .chain(&breakdown_lines)
        .chain(&memory_lines)
    {
        println!("{line}");
    }
}

/// Where a lookup's time goes at the largest size: prompt analysis, embedding, and candidate
/// gathering measured on a twin `Index` holding the same entries; the rest of `find` (exact
/// check, similarity, sorting, verification) is the remainder.
fn phase_breakdown(
    cache: &SemanticCache,
    context: &CallContext,
    stored: &[Spec],
    kinds: &[Kind],
) -> Vec<String> {
    let mut twin = Index::new(Limits::entries(usize::MAX));
    let mut partition = 0;
    // The entries holding each key: the twin's posting lists, rebuilt here to count things.
    let mut postings: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut ids = 0u32;
    for (i, spec) in stored.iter().enumerate() {
        let text = spec.render(false);
        let Some(prompt) = cache.prompt(context, MODEL, &request(&text)) else {
            continue;
        };
        partition = prompt.partition;
        if let Some(entry) = block_on(cache.entry_for(&prompt, &response(i, &text))) {
            if twin.exact(partition, entry.exact, 0).is_none() {
                for key in &entry.keys {
                    postings.entry(*key).or_default().push(ids);
                }
                ids += 1;
            }
            twin.insert(prompt.partition, entry, 0);
        }
    }
    let live = twin.len();
    let mut lines = vec![format!(
        "phase breakdown at {live} entries (means per lookup; candidates gathered on a twin index):"
    )];
    for kind in kinds.iter().filter(|k| k.name != "exact") {
        let (mut analysis, mut embed, mut candidates, mut total) = (
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        let mut gathered = 0usize;
        let mut gathering = Vec::with_capacity(kind.queries.len());
        let mut gathering_cpu = Vec::with_capacity(kind.queries.len());
        let mut scanned = Vec::with_capacity(kind.queries.len());
        let mut tied = Vec::with_capacity(kind.queries.len());
        let (mut expected, mut among) = (0usize, 0usize);
        for (query, origin) in kind.queries.iter().zip(&kind.origins) {
            let started = Instant::now();
            let Some(prompt) = cache.prompt(context, MODEL, query) else {
                continue;
            };
            let analysed = Instant::now();
            let embedding = block_on(
                StaticEmbedder::new()
                    .unwrap()
                    .embed(&prompt.text, &prompt.tokens),
            )
            .unwrap();
            let embedded = Instant::now();
            let cpu_started = ThreadTime::now();
            let found = twin.candidates(partition, &prompt.keys, 0);
            gathering_cpu.push(cpu_started.elapsed());
            let gathered_at = Instant::now();
            gathered += found.len();
            if let Some(origin) = origin {
                expected += 1;
                among += usize::from(found.iter().any(|entry| entry.exact == *origin));
            }
            black_box((&embedding, &found));
            drop(found);
            let lookup_started = Instant::now();
            black_box(block_on(cache.find(&prompt)));
            total += lookup_started.elapsed() + (analysed - started);
            analysis += analysed - started;
            embed += embedded - analysed;
            candidates += gathered_at - embedded;
            gathering.push(gathered_at - embedded);
            // The posting entries the gathering walks: every list of at most live/2 entries
            // (or all of them when none is that short), as `Index::candidates` does.
            let lists: Vec<&Vec<u32>> = prompt
                .keys
                .iter()
                .filter_map(|key| postings.get(key))
                .collect();
            let lengths: Vec<usize> = lists.iter().map(|list| list.len()).collect();
            // Entries holding every indexed key of the query: all tie for the best score.
            if let Some((shortest, rest)) = lists
                .iter()
                .min_by_key(|list| list.len())
                .map(|shortest| (shortest, &lists))
            {
                let sets: Vec<HashSet<u32>> = rest
                    .iter()
                    .filter(|list| !std::ptr::eq(**list, *shortest))
                    .map(|list| list.iter().copied().collect())
                    .collect();
                let full = shortest
                    .iter()
                    .filter(|id| sets.iter().all(|set| set.contains(id)))
                    .count();
                tied.push(full);
            }
            let informative: usize = lengths.iter().filter(|l| **l * 2 <= live).sum();
            scanned.push(if informative > 0 {
                informative
            } else {
                lengths.iter().sum()
            });
        }
        gathering.sort_unstable();
        gathering_cpu.sort_unstable();
        scanned.sort_unstable();
        tied.sort_unstable();
        let over_cap = tied.iter().filter(|t| **t > CANDIDATES).count();
        let n = kind.queries.len().max(1) as u32;
        let mean_scanned = scanned.iter().sum::<usize>() as f64 / f64::from(n);
        lines.push(format!(
            "  {:<10}: analysis {}  embed {}  candidates {} (p99 wall {}, on-CPU {})  rest of find {}  total {}",
            kind.name,
            micros(analysis / n),
            micros(embed / n),
            micros(candidates / n),
            micros(percentile(&gathering, 0.99)),
            micros(percentile(&gathering_cpu, 0.99)),
            micros((total.saturating_sub(analysis + embed + candidates)) / n),
            micros(total / n),
        ));
        lines.push(format!(
            "  {:<10}  entries holding every indexed word of the query (tied for the best score): median {}, p90 {}; more than {CANDIDATES} for {:.1}% of queries",
            "",
            tied.get(tied.len() / 2).copied().unwrap_or(0),
            tied.get(tied.len() * 9 / 10).copied().unwrap_or(0),
            100.0 * over_cap as f64 / tied.len().max(1) as f64,
        ));
        lines.push(format!(
            "  {:<10}  posting entries walked per lookup: mean {:.0}, p99 {}; {:.1} candidates kept; {:.2} ns per posting entry{}",
            "",
            mean_scanned,
            scanned
                .get(scanned.len().saturating_sub(1).min(scanned.len() * 99 / 100))
                .copied()
                .unwrap_or(0),
            gathered as f64 / f64::from(n),
            candidates.as_secs_f64() * 1e9 / (mean_scanned * f64::from(n)).max(1.0),
            if expected > 0 {
                format!(
                    "; the stored original is among the candidates for {:.1}% of queries",
                    100.0 * among as f64 / expected as f64
                )
            } else {
                String::new()
            },
        ));
    }
    lines
}

/// Bytes a response takes in memory as a `serde_json::Value` tree, against its serialized size.
/// What happens when prompts already cached are stored again (concurrent misses of the same
/// prompt, or a store after expiry): the same paraphrase queries, before and after re-keeping
/// 200 stored prompts 50 times each.
fn restore_experiment(
    cache: &SemanticCache,
    context: &CallContext,
    stored: &[Spec],
    paraphrases: &Kind,
) -> Vec<String> {
    let hit_rate = |cache: &SemanticCache| {
        let hits = paraphrases
            .queries
            .iter()
            .filter(|query| {
                cache
                    .prompt(context, MODEL, query)
                    .and_then(|prompt| block_on(cache.find(&prompt)))
                    .is_some()
            })
            .count();
        100.0 * hits as f64 / paraphrases.queries.len().max(1) as f64
    };
    let before = hit_rate(cache);
    let mut rng = Rng(0x0dd5_0000);
    let hot: Vec<&Spec> = (0..200).map(|_| &stored[rng.below(stored.len())]).collect();
    for round in 0..50 {
        for (i, spec) in hot.iter().enumerate() {
            let text = spec.render(false);
            if let Some(prompt) = cache.prompt(context, MODEL, &request(&text)) {
                block_on(cache.keep(prompt, &response(round * 1000 + i, &text)));
            }
        }
    }
    let after = hit_rate(cache);
    vec![format!(
        "re-storing 200 cached prompts 50 times each (same entries, {} in the cache): paraphrase hit rate {before:.1}% -> {after:.1}%",
        cache.len()
    )]
}

/// The values are returned so they stay allocated while the cache is filled (otherwise the fill
/// would reuse their memory and the RSS growth would understate it).
fn response_memory() -> (Option<String>, Vec<Arc<Value>>) {
    const COUNT: usize = 20_000;
    let before = rss_kb();
    let values: Vec<Arc<Value>> = (0..COUNT)
        .map(|i| Arc::new(response(i, "How do I restart the server in production?")))
        .collect();
    let after = rss_kb();
    let serialized = values.first().map_or(0, |v| v.to_string().len());
    let line = before.zip(after).map(|(before, after)| format!(
        "a cached response: {serialized} bytes serialized, about {:.0} bytes in memory as a serde_json::Value (RSS over {COUNT})",
        (after.saturating_sub(before) * 1024) as f64 / COUNT as f64
    ));
    (line, values)
}

criterion_group!(benches, cache_lookup);
criterion_main!(benches);
