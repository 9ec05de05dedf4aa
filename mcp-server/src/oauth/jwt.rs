//! A compact JWS access token, taken apart and checked: RS256 and ES256 only.
//!
//! Nothing in a token is trusted before its signature is checked with a key from its issuer's
//! JWKS; the unverified claims are read only to find that issuer.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::TokenError;

/// Longest token accepted, in bytes. Entra ID's are 1–3 KB; anything far larger is not a token.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The signature algorithms accepted. `none`, HMAC and everything else are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
}

impl Algorithm {
    fn from_name(name: &str) -> Result<Self, TokenError> {
        match name {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            _ => Err(TokenError::UnsupportedAlgorithm),
        }
    }
}

/// A public key from a JWKS, ready to check signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyingKey {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A P-256 point, uncompressed (`04 || x || y`).
    P256 { point: Vec<u8> },
}

impl VerifyingKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rsa { .. } => Algorithm::Rs256,
            Self::P256 { .. } => Algorithm::Es256,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Self::P256 { point } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the token says must be understood: we understand none.
    #[serde(default)]
    crit: Option<Value>,
}

/// A token split into its parts, its signature not yet checked.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    pub algorithm: Algorithm,
    pub key_id: Option<String>,
    pub claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> UnverifiedToken<'a> {
    /// Splits and decodes `token`; a refusal for anything that is not a well-formed RS256 or
    /// ES256 JWS with a JSON object as its payload.
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        let header: Header = decode_json(header)?;
        if header.crit.is_some() {
            return Err(TokenError::Malformed);
        }
        let algorithm = Algorithm::from_name(&header.alg)?;
        let claims: Map<String, Value> = decode_json(payload)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        Ok(Self {
            algorithm,
            key_id: header.kid,
            claims,
            signing_input,
            signature,
        })
    }

    /// The `iss` claim, unverified: which issuer's keys to check the signature with.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// Whether `key` (of the token's algorithm) signed this token.
    pub fn is_signed_by(&self, key: &VerifyingKey) -> bool {
        key.algorithm() == self.algorithm
            && key.verify(self.signing_input.as_bytes(), &self.signature)
    }
}

/// Whether a presented credential has the shape of a JWS (three base64url parts, the first a
/// JSON object): cheap, so subscription keys are told apart from tokens without decoding.
pub fn looks_like_jwt(value: &str) -> bool {
    value.starts_with("eyJ") && value.bytes().filter(|b| *b == b'.').count() == 2
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Decodes a JWK's base64url member (`n`, `e`, `x`, `y`).
pub fn decode_member(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ring::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
    };

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    fn es256_key() -> (EcdsaKeyPair, VerifyingKey) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref().to_vec();
        (pair, VerifyingKey::P256 { point })
    }

    fn signed(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", encode(header), encode(claims));
        let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_only() {
        let (pair, key) = es256_key();
        let (_, other) = es256_key();
        let token = signed(
            &pair,
            &serde_json::json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
            &serde_json::json!({"iss": "https://idp", "sub": "x"}),
        );
        assert!(looks_like_jwt(&token));
        let parsed = UnverifiedToken::parse(&token).unwrap();
        assert_eq!(parsed.key_id.as_deref(), Some("k1"));
        assert_eq!(parsed.issuer(), Some("https://idp"));
        assert!(parsed.is_signed_by(&key));
        assert!(!parsed.is_signed_by(&other));
        // The same signature over altered claims fails.
        let (_, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged = format!(
            "{}.{}.{signature}",
            encode(&serde_json::json!({"alg": "ES256", "kid": "k1"})),
            encode(&serde_json::json!({"iss": "https://idp", "sub": "admin"}))
        );
        assert!(!UnverifiedToken::parse(&forged).unwrap().is_signed_by(&key));
    }

    #[test]
    fn other_algorithms_and_shapes_are_refused() {
        let claims = encode(&serde_json::json!({"iss": "https://idp"}));
        for alg in ["none", "HS256", "RS512", "PS256", "ES384"] {
            let token = format!("{}.{claims}.", encode(&serde_json::json!({"alg": alg})));
            assert!(
                matches!(
                    UnverifiedToken::parse(&token),
                    Err(TokenError::UnsupportedAlgorithm)
                ),
                "{alg}"
            );
        }
        let with_crit = format!(
            "{}.{claims}.c2ln",
            encode(&serde_json::json!({"alg": "RS256", "crit": ["exp"]}))
        );
        for garbage in [
            "garbage",
            "a.b",
            "eyJ.eyJ.x",
            "a.b.c.d.e",
            with_crit.as_str(),
            &format!(
                "{}.bm90IGpzb24.sig",
                encode(&serde_json::json!({"alg": "RS256"}))
            ),
        ] {
            assert!(
                matches!(UnverifiedToken::parse(garbage), Err(TokenError::Malformed)),
                "{garbage}"
            );
        }
        assert!(!looks_like_jwt("sk-key-123"));
        assert!(!looks_like_jwt("eyJhbGc.only-one-dot"));
        let huge = format!("eyJ{}.a.b", "a".repeat(MAX_TOKEN_BYTES));
        assert!(matches!(
            UnverifiedToken::parse(&huge),
            Err(TokenError::Malformed)
        ));
    }
}
