//! The TLS crypto provider behind every HTTP client tollgate builds.
//!
//! reqwest is built with `rustls-no-provider`, so the tree compiles one provider (ring) instead
//! of two (ring and aws-lc-rs). reqwest then panics when a client is built with no process-wide
//! provider installed, so everything that builds a client goes through this module first.

/// Installs ring as the process-wide rustls crypto provider, unless one is already installed
/// (an embedding program's choice wins). Cheap and idempotent: call it before building any client.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A `reqwest::ClientBuilder` that can build: the crypto provider is installed first.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_for_https_upstreams_can_be_built() -> Result<(), reqwest::Error> {
        let client = client_builder().https_only(true).build()?;
        // Building a request exercises nothing on the network; the client itself holding a TLS
        // config is what this test is about (reqwest panics without a provider).
        let request = client.get("https://example.invalid/v1/models").build()?;
        assert_eq!(request.url().scheme(), "https");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        Ok(())
    }

    #[test]
    fn installing_twice_is_harmless() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
