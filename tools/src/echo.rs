//! `echo`: returns the message unchanged, a cheap way to test the tool path end to end.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Instance, ToolError};

pub const NAME: &str = "echo";
pub const TITLE: &str = "Echo";
pub const DESCRIPTION: &str = "Return the given message unchanged, with its length in characters \
and the id of the instance that answered. Use it to test connectivity or the tool-calling path; \
messages are limited to 64 KiB.";

/// The longest accepted message, in bytes of UTF-8 (64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Arguments for `echo`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// The text to send back, up to 65,536 bytes of UTF-8.
    pub message: String,
}

/// The message, sent back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EchoResult {
    /// The message exactly as received.
    pub message: String,
    /// Length of the message in Unicode characters (not bytes).
    pub length: usize,
    /// Identity of the instance that answered.
    pub instance_id: String,
}

/// Send `args.message` back, refusing messages over [`MAX_MESSAGE_BYTES`].
pub fn echo(instance: &Instance, args: EchoArgs) -> Result<EchoResult, ToolError> {
    let bytes = args.message.len();
    if bytes > MAX_MESSAGE_BYTES {
        return Err(ToolError::Failed(format!(
            "message is too long: {bytes} bytes given, the limit is {MAX_MESSAGE_BYTES} bytes (64 KiB)"
        )));
    }
    Ok(EchoResult {
        length: args.message.chars().count(),
        message: args.message,
        instance_id: instance.id.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn instance() -> Instance {
        Instance::new(Some("i-echo".into()), None, None, None)
    }

    #[test]
    fn echoes_and_counts_characters() {
        let result = echo(
            &instance(),
            EchoArgs {
                message: "héllo ✓".into(),
            },
        )
        .unwrap();
        assert_eq!(result.message, "héllo ✓");
        assert_eq!(result.length, 7);
        assert_eq!(result.instance_id, "i-echo");
    }

    #[test]
    fn empty_message_is_fine() {
        let result = echo(
            &instance(),
            EchoArgs {
                message: String::new(),
            },
        )
        .unwrap();
        assert_eq!(result.length, 0);
    }

    #[test]
    fn accepts_exactly_the_limit() {
        let message = "a".repeat(65_536);
        let result = echo(&instance(), EchoArgs { message }).unwrap();
        assert_eq!(result.length, 65_536);
    }

    #[test]
    fn refuses_one_byte_over_the_limit() {
        let message = "a".repeat(65_537);
        let err = echo(&instance(), EchoArgs { message }).unwrap_err();
        let ToolError::Failed(text) = err else {
            panic!("expected Failed, got {err:?}");
        };
        assert!(text.contains("65537"), "{text}");
        assert!(text.contains("65536"), "{text}");
    }

    #[test]
    fn limit_counts_bytes_not_characters() {
        // 16,385 four-byte characters are 65,540 bytes.
        let message = "😀".repeat(16_385);
        assert!(echo(&instance(), EchoArgs { message }).is_err());
        let message = "😀".repeat(16_384);
        assert_eq!(
            echo(&instance(), EchoArgs { message }).unwrap().length,
            16_384
        );
    }
}
