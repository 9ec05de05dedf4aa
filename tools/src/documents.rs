//! The built-in documents, as whole texts: the same knowledge base `summarize` summarizes (and
//! `lookup_fact` answers from), offered for reading in full. Each document has a stable name
//! made from its topic (`app-service-scaling`), which servers can put in a URI.

use std::sync::LazyLock;

use crate::corpus::DOCS;

/// One built-in document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The stable name: the topic, lowercase, words joined by `-` (`deployment-slots`).
    pub name: String,
    /// The topic as `summarize` knows it (`deployment slots`).
    pub topic: &'static str,
    /// A title for people (`Deployment slots`).
    pub title: String,
    /// The document's first sentence: what it is about.
    pub description: &'static str,
    /// The document as Markdown: its title as a heading, then its text.
    pub markdown: String,
}

static DOCUMENTS: LazyLock<Vec<Document>> = LazyLock::new(|| {
    DOCS.iter()
        .map(|doc| {
            let title = title_of(doc.topic);
            Document {
                name: doc.topic.replace(' ', "-"),
                topic: doc.topic,
                description: doc.text.lines().next().unwrap_or_default(),
                markdown: format!("# {title}\n\n{}\n", doc.text),
                title,
            }
        })
        .collect()
});

/// Every built-in document, in the knowledge base's order.
pub fn documents() -> &'static [Document] {
    &DOCUMENTS
}

/// The document with this exact name, if there is one.
pub fn document(name: &str) -> Option<&'static Document> {
    documents().iter().find(|doc| doc.name == name)
}

/// `mcp` → `MCP`, `app service scaling` → `App service scaling`.
fn title_of(topic: &str) -> String {
    if topic.len() <= 3 {
        return topic.to_uppercase();
    }
    let mut chars = topic.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_summarizable_topic_is_a_document_with_a_stable_name() {
        let names: Vec<&str> = documents().iter().map(|doc| doc.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "app-service-scaling",
                "deployment-slots",
                "gateway-policies",
                "mcp",
                "tollgate-overview"
            ]
        );
        let slots = document("deployment-slots").unwrap();
        assert_eq!(slots.title, "Deployment slots");
        assert!(
            slots
                .markdown
                .starts_with("# Deployment slots\n\nA deployment slot")
        );
        assert!(slots.description.ends_with("host name."));
        assert_eq!(document("mcp").unwrap().title, "MCP");
        assert!(document("Deployment-Slots").is_none());
        assert!(document("../etc/passwd").is_none());
    }

    #[test]
    fn documents_hold_what_summarize_reads() {
        for doc in documents() {
            let summary = crate::call(
                &crate::Instance::new(Some("t".into()), None, None, None),
                "summarize",
                serde_json::json!({"topic": doc.topic, "max_sentences": 1})
                    .as_object()
                    .cloned(),
            )
            .unwrap();
            let sentence = summary["sentences"][0].as_str().unwrap();
            assert!(doc.markdown.contains(sentence), "{}: {sentence}", doc.name);
        }
    }
}
