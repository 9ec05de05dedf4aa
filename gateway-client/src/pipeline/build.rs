//! The gateway's parts, built once at start from its settings: the model API, the response
//! cache (and its embedder), content safety. The composition root calls [`parts`] or
//! [`shared_parts`] and hands them to [`super::Gateway::from_parts`]; tests build parts of
//! their own (a fake model API, a paused clock).

use std::sync::Arc;

use crate::{
    cache::ResponseCache,
    clock::Clock,
    config::{CacheSettings, EmbedderChoice, GatewayConfig, Prices},
    entra::EntraCredential,
    error::GatewayError,
    model_api::ModelApi,
    names::ModelLabels,
    policy::content_safety::ContentSafety,
    protocol::anthropic::MessagesApi,
    semantic::{BuiltinEmbedder, Embedder, SemanticCache, UpstreamEmbedder},
    shared::{RedisState, RedisStatsBoard, RedisStore, SharedCache},
    stats::{Stats, StatsBoard},
    store::StateStore,
    upstream::Upstream,
};

/// What a [`super::Gateway`] is made of besides its settings.
pub struct GatewayParts {
    pub model_api: Arc<dyn ModelApi>,
    /// Where `/v1/messages` calls go; `None`: translated to chat completions on `model_api`.
    pub messages_api: Option<Arc<dyn ModelApi>>,
    pub store: Arc<dyn StateStore>,
    pub cache: Option<Arc<dyn ResponseCache>>,
    pub clock: Clock,
    /// `None` when content safety is off.
    pub content_safety: Option<Arc<ContentSafety>>,
    /// The Microsoft Entra ID credential of the Azure backends without keys, if any.
    pub credential: Option<Arc<EntraCredential>>,
    /// This instance's per-minute figures; the model API counts its attempts in them.
    pub stats: Arc<Stats>,
    /// Where the figures are shared with other instances (Redis), if they are.
    pub stats_board: Option<Arc<dyn StatsBoard>>,
}

/// The parts `config` describes over `store`. The response cache is `cache` when given, else
/// the semantic cache of `config.cache` (shared through Redis when `shared` is given), else none.
pub fn parts(
    config: &GatewayConfig,
    store: Arc<dyn StateStore>,
    cache: Option<Arc<dyn ResponseCache>>,
    shared: Option<(Arc<RedisState>, String)>,
) -> Result<GatewayParts, GatewayError> {
    let clock = Clock::new();
    let credential = credential(config)?;
    let content_safety = ContentSafety::build(&config.content_safety, credential.clone())
        .map_err(|e| GatewayError::Startup(format!("content safety settings: {e}")))?
        .map(Arc::new);
    let stats = Arc::new(Stats::new(clock));
    let upstream = Arc::new(
        upstream_over(&config.backends, config)?
            .with_credential(credential.clone())
            .with_stats(stats.clone()),
    );
    let messages_api = if config.messages_backends.is_empty() {
        None
    } else {
        let native = upstream_over(&config.messages_backends, config)?;
        Some(Arc::new(MessagesApi::native(native)) as Arc<dyn ModelApi>)
    };
    let stats_board = shared.as_ref().map(|(redis, instance_id)| {
        Arc::new(RedisStatsBoard::new(redis.clone(), instance_id.clone())) as Arc<dyn StatsBoard>
    });
    let cache = match (cache, &config.cache) {
        (Some(cache), _) => Some(cache),
        (None, Some(settings)) => Some(response_cache(
            settings.clone(),
            &upstream,
            &config.embedding_model,
            clock,
            shared,
        )?),
        (None, None) => None,
    };
    Ok(GatewayParts {
        model_api: upstream,
        messages_api,
        store,
        cache,
        clock,
        content_safety,
        credential,
        stats,
        stats_board,
    })
}

/// The Microsoft Entra ID credential `config.entra` describes, if any.
pub fn credential(config: &GatewayConfig) -> Result<Option<Arc<EntraCredential>>, GatewayError> {
    config
        .entra
        .as_ref()
        .map(|entra| {
            EntraCredential::new(entra)
                .map(Arc::new)
                .map_err(|e| GatewayError::Startup(format!("Microsoft Entra ID settings: {e}")))
        })
        .transpose()
}

/// The parts of a gateway whose budgets, ledger and cache are shared through Redis with every
/// other instance using the same Redis (`instance_id` tells its cache entries apart); starts
/// its health probe.
pub fn shared_parts(
    config: &GatewayConfig,
    redis: Arc<RedisState>,
    instance_id: &str,
) -> Result<GatewayParts, GatewayError> {
    let _probe = redis.spawn_health_probe();
    let store: Arc<dyn StateStore> = Arc::new(RedisStore::new(redis.clone()));
    parts(config, store, None, Some((redis, instance_id.to_owned())))
}

/// The semantic cache, alone or shared through Redis (then kept in sync by a task of its own).
fn response_cache(
    settings: CacheSettings,
    upstream: &Arc<Upstream>,
    embedding_model: &str,
    clock: Clock,
    shared: Option<(Arc<RedisState>, String)>,
) -> Result<Arc<dyn ResponseCache>, GatewayError> {
    let max_entries = settings.config.max_entries;
    let semantic = Arc::new(build_semantic_cache(
        settings,
        upstream,
        embedding_model,
        clock,
    )?);
    Ok(match shared {
        Some((redis, origin)) => {
            let shared = SharedCache::new(semantic, redis, origin, max_entries, clock);
            let _sync = shared.spawn_sync();
            shared as Arc<dyn ResponseCache>
        }
        None => semantic as Arc<dyn ResponseCache>,
    })
}

/// The semantic cache `config.cache` describes, built as the gateway builds its own, with an
/// upstream of its own for the `upstream` embedder: for measuring the cache offline
/// (`tollgate cache-eval`). `None` when the cache is off.
pub fn semantic_cache(config: &GatewayConfig) -> Result<Option<SemanticCache>, GatewayError> {
    let Some(settings) = &config.cache else {
        return Ok(None);
    };
    let upstream =
        Arc::new(upstream_over(&config.backends, config)?.with_credential(credential(config)?));
    build_semantic_cache(
        settings.clone(),
        &upstream,
        &config.embedding_model,
        Clock::new(),
    )
    .map(Some)
}

fn build_semantic_cache(
    settings: CacheSettings,
    upstream: &Arc<Upstream>,
    embedding_model: &str,
    clock: Clock,
) -> Result<SemanticCache, GatewayError> {
    let embedder = build_embedder(&settings.embedder, upstream, embedding_model)?;
    Ok(SemanticCache::new(embedder, settings.config, clock))
}

/// The embedder the cache settings ask for.
pub fn build_embedder(
    choice: &EmbedderChoice,
    upstream: &Arc<Upstream>,
    embedding_model: &str,
) -> Result<Arc<dyn Embedder>, GatewayError> {
    match choice {
        EmbedderChoice::Builtin => Ok(Arc::new(BuiltinEmbedder)),
        EmbedderChoice::Static => crate::semantic::StaticEmbedder::new()
            .map(|e| Arc::new(e) as Arc<dyn Embedder>)
            .map_err(|e| GatewayError::Startup(format!("cannot load the static model: {e}"))),
        EmbedderChoice::Upstream => Ok(Arc::new(UpstreamEmbedder::new(
            upstream.clone(),
            embedding_model.to_owned(),
        ))),
        #[cfg(feature = "minilm")]
        EmbedderChoice::MiniLm { model_dir } => {
            crate::semantic::minilm::MiniLmEmbedder::load(model_dir)
                .map(|e| Arc::new(e) as Arc<dyn Embedder>)
                .map_err(|e| GatewayError::Startup(format!("cannot load the MiniLM model: {e}")))
        }
        #[cfg(not(feature = "minilm"))]
        EmbedderChoice::MiniLm { .. } => Err(GatewayError::Startup(
            "CACHE_EMBEDDER=minilm needs tollgate built with `--features minilm`".to_owned(),
        )),
    }
}

/// The models configured (chat, embeddings, priced), checked against the backends at start.
pub(super) fn configured_models(
    [chat_model, embedding_model]: [&String; 2],
    prices: &Prices,
    model_api: &dyn ModelApi,
) -> Result<ModelLabels, GatewayError> {
    if model_api.is_configured() {
        for (setting, model) in [
            ("CHAT_MODEL", chat_model),
            ("EMBEDDING_MODEL", embedding_model),
        ] {
            model_api
                .check_model(model)
                .map_err(|error| GatewayError::Startup(format!("{setting} `{model}`: {error}")))?;
        }
    }
    Ok(ModelLabels::new(
        [chat_model, embedding_model]
            .into_iter()
            .chain(prices.0.keys())
            .cloned(),
    ))
}

/// The upstream over `backends`, with the gateway's retry, breaker and connection settings.
fn upstream_over(
    backends: &[crate::config::BackendConfig],
    config: &GatewayConfig,
) -> Result<Upstream, GatewayError> {
    let upstream = Upstream::new(backends.to_vec(), config.retry, config.breaker)?;
    Ok(match config.direct_plain_http {
        true => upstream,
        false => upstream.without_direct_connections(),
    })
}
