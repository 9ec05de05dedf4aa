//! The prompts a run sends: a built-in pool of semantically similar questions, or a file.
//!
//! The built-in pool is made of groups of paraphrases (same question, different words), in the
//! style a semantic cache should serve from one answer: App Service scaling, deployment slots,
//! MCP, token budgets, semantic caching, health probes, circuit breakers and rate limits. It is
//! ordered round by round (every group's first wording, then every group's second wording…) so
//! a paraphrase is sent after its group's first wording had time to be answered and cached.
//! Runs cycle through the pool in order, so every prompt after the first cycle is also an exact
//! repeat.

use std::{io, path::Path};

/// Groups of paraphrases; the first wording of each group is the "canonical" one.
const GROUPS: &[&[&str]] = &[
    &[
        "How does App Service horizontally scale an MCP server?",
        "How does App Service scale an MCP server horizontally?",
        "How can App Service horizontally scale an MCP server?",
        "Explain how App Service horizontally scales an MCP server.",
    ],
    &[
        "How do deployment slots work in App Service?",
        "How do App Service deployment slots work?",
        "Explain how deployment slots work in App Service.",
        "Can you explain how deployment slots work in App Service?",
    ],
    &[
        "What is an MCP server used for?",
        "What's an MCP server used for?",
        "Tell me what an MCP server is used for.",
        "What is an MCP server used for?",
    ],
    &[
        "Explain what a token budget is.",
        "Please explain what a token budget is.",
        "Can you explain what a token budget is?",
        "Explain what a token budget is, please.",
    ],
    &[
        "How long does a cached answer stay valid?",
        "How long does a cached answer remain valid?",
        "How long do cached answers stay valid?",
        "How long does a cached answer stay valid?",
    ],
    &[
        "How does semantic caching reduce the cost of model calls?",
        "Please explain how semantic caching reduces the cost of model calls.",
        "How can semantic caching reduce the cost of model calls?",
        "Explain how semantic caching reduces the cost of model calls.",
    ],
    &[
        "What does the App Service health probe check?",
        "What does the health probe of App Service check?",
        "What is checked by the App Service health probe?",
        "What does the App Service health probe check?",
    ],
    &[
        "What does the circuit breaker do when a backend keeps failing?",
        "What does the circuit breaker do if a backend keeps failing?",
        "Can you tell me what the circuit breaker does when a backend keeps failing?",
        "What does the circuit breaker do when a backend keeps failing?",
    ],
    &[
        "Why does the gateway answer 429 when the token limit is reached?",
        "Why does the gateway answer with 429 when the token limit is reached?",
        "Please explain why the gateway answers 429 when the token limit is reached.",
        "Why does the gateway answer 429 when the token limit is reached?",
    ],
];

/// The built-in pool's groups of paraphrases; the first wording of each is the canonical one.
pub fn groups() -> &'static [&'static [&'static str]] {
    GROUPS
}

/// The built-in pool, round by round (see the module docs).
pub fn builtin() -> Vec<String> {
    let rounds = GROUPS.iter().map(|group| group.len()).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| GROUPS.iter().filter_map(move |group| group.get(round)))
        .map(|prompt| (*prompt).to_owned())
        .collect()
}

/// Prompts from a file: one per line; blank lines and `#` comments are ignored.
pub fn load(path: &Path) -> io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    let prompts = parse(&text);
    if prompts.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no prompt", path.display()),
        ));
    }
    Ok(prompts)
}

/// The prompts of a prompts file's text.
pub fn parse(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pool_is_ordered_round_by_round() {
        let pool = builtin();
        let total: usize = GROUPS.iter().map(|group| group.len()).sum();
        assert_eq!(pool.len(), total);
        // Every group's first wording comes before any second wording.
        assert_eq!(pool[0], GROUPS[0][0]);
        assert_eq!(pool[1], GROUPS[1][0]);
        assert_eq!(pool[GROUPS.len()], GROUPS[0][1]);
        assert!(pool.iter().all(|prompt| !prompt.trim().is_empty()));
    }

    #[test]
    fn files_skip_blanks_and_comments() {
        let text = "# a comment\n\n  first prompt  \n#another\nsecond prompt\n   \n";
        assert_eq!(parse(text), ["first prompt", "second prompt"]);
        assert!(parse("# only comments\n\n").is_empty());
    }

    #[test]
    fn an_empty_file_is_refused() -> io::Result<()> {
        let path =
            std::env::temp_dir().join(format!("loadtest-prompts-{}.txt", std::process::id()));
        std::fs::write(&path, "# nothing\n")?;
        let result = load(&path);
        std::fs::remove_file(&path)?;
        assert_eq!(
            result.err().map(|error| error.kind()),
            Some(io::ErrorKind::InvalidData)
        );
        Ok(())
    }
}
