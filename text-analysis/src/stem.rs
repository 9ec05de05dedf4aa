//! Light, conservative stemmers: enough to equate inflected forms, never merging different words.

/// A light suffix-stripping stemmer for lowercase words: equates plural, tense and comparison
/// forms ("starts"/"start", "supported"/"support", "caching"/"cache").
pub fn stem(word: &str) -> String {
    let mut w = word.to_owned();
    if w.len() <= 3 {
        return w;
    }
    for (suffix, replacement) in [
        ("ies", "y"),
        ("sses", "ss"),
        ("xes", "x"),
        ("ches", "ch"),
        ("shes", "sh"),
    ] {
        if w.ends_with(suffix) && w.len() > suffix.len() + 2 {
            w.truncate(w.len() - suffix.len());
            w.push_str(replacement);
            return finish_stem(w);
        }
    }
    if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.pop();
    }
    for suffix in ["ing", "ed"] {
        if w.ends_with(suffix) && w.len() > suffix.len() + 2 {
            w.truncate(w.len() - suffix.len());
            // "stopp(ed)" → "stop", "plann(ing)" → "plan"
            let bytes = w.as_bytes();
            let n = bytes.len();
            if n >= 2 && bytes[n - 1] == bytes[n - 2] && !matches!(bytes[n - 1], b'l' | b's' | b'z')
            {
                w.pop();
            }
            break;
        }
    }
    finish_stem(w)
}

/// Drops a final silent `e` so "cache"/"caching", "configure"/"configured" agree.
fn finish_stem(mut w: String) -> String {
    if w.len() > 4 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// A plural stripper only: "slots" → "slot", "policies" → "policy". Applied to both sides of a
/// comparison, so its mistakes ("redis" → "redi") cancel out.
pub fn singular(word: &str) -> String {
    let chars = word.chars().count();
    if chars > 4
        && let Some(stem) = word.strip_suffix("ies")
    {
        return format!("{stem}y");
    }
    if chars > 3
        && !word.ends_with("ss")
        && let Some(stem) = word.strip_suffix('s')
    {
        return stem.to_owned();
    }
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_equate_inflections() {
        for (a, b) in [
            ("starts", "start"),
            ("supported", "support"),
            ("caching", "cache"),
            ("stopped", "stop"),
            ("policies", "policy"),
            ("prefixes", "prefix"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        assert_ne!(stem("status"), stem("state"));
        assert_eq!(stem("bus"), "bus");
    }

    #[test]
    fn singular_strips_plurals_only() {
        assert_eq!(singular("slots"), "slot");
        assert_eq!(singular("policies"), "policy");
        assert_eq!(singular("class"), "class");
        assert_eq!(singular("ties"), "tie");
        assert_eq!(singular("caching"), "caching");
        assert_eq!(singular("its"), "its");
    }
}
