//! A small incremental parser for server-sent events, enough for OpenAI-style streams.

use bytes::{Buf, BytesMut};

/// Accumulates bytes and yields the `data` of each complete event.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: BytesMut,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event's data (multi-line data joined by `\n`), if one has arrived.
    /// Events without data (comments, keep-alives) are skipped.
    pub fn next_data(&mut self) -> Option<String> {
        loop {
            let (end, separator) = find_event_end(&self.buffer)?;
            let event = self.buffer.split_to(end);
            self.buffer.advance(separator);
            let text = String::from_utf8_lossy(&event);
            let mut data: Option<String> = None;
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("data:") {
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match &mut data {
                        Some(existing) => {
                            existing.push('\n');
                            existing.push_str(value);
                        }
                        None => data = Some(value.to_owned()),
                    }
                }
            }
            if data.is_some() {
                return data;
            }
        }
    }
}

/// Position and length of the first blank-line separator (`\n\n` or `\r\n\r\n`).
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_are_reassembled() {
        let mut parser = SseParser::default();
        parser.push(b"data: {\"a\":");
        assert_eq!(parser.next_data(), None);
        parser.push(b"1}\n\n: keep-alive\n\ndata: [DONE]\r\n\r\n");
        assert_eq!(parser.next_data().as_deref(), Some("{\"a\":1}"));
        assert_eq!(parser.next_data().as_deref(), Some("[DONE]"));
        assert_eq!(parser.next_data(), None);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut parser = SseParser::default();
        parser.push(b"event: x\ndata: one\ndata:two\n\n");
        assert_eq!(parser.next_data().as_deref(), Some("one\ntwo"));
    }
}
