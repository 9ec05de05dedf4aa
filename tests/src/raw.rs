//! Raw HTTP/1.1 over TCP, for what a client library would not send as written: dot segments and
//! odd paths (`..`, `//`, `%2E%2E`), and connection-level behaviour (trickled headers, idle
//! keep-alive sockets).

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// No raw exchange in the tests takes anywhere near this long.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// An answer as read off the socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    /// The body, de-chunked when it was chunked.
    pub body: String,
}

impl RawResponse {
    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_str(&self.body) {
            Ok(value) => value,
            Err(error) => panic!("the body is not JSON ({error}): {}", self.body),
        }
    }

    /// A header's value (the first, name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// A request with `Connection: close`, written as is: `method path`, the headers, and `body`
/// (with its length).
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        text.push_str("Content-Type: application/json\r\n");
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// Sends `request` (which should ask for `Connection: close`) and reads the answer to its end.
///
/// # Panics
/// When the server cannot be reached, does not answer in time or answers no HTTP.
pub async fn exchange(addr: SocketAddr, request: &str) -> RawResponse {
    let read = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await?;
        Ok::<_, std::io::Error>(bytes)
    };
    let bytes = match tokio::time::timeout(EXCHANGE_TIMEOUT, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => panic!("raw exchange with {addr} failed: {error}"),
        Err(_) => panic!("raw exchange with {addr} timed out"),
    };
    parse(&String::from_utf8_lossy(&bytes))
}

/// Parses one HTTP/1.1 answer.
///
/// # Panics
/// When it has no status line.
pub fn parse(text: &str) -> RawResponse {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok());
    let Some(status) = status else {
        panic!("not an HTTP answer: {text:?}");
    };
    let mut response = RawResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    };
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        response.body = dechunk(body);
    }
    response
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_plain_and_chunked() {
        let plain = parse("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n{}");
        assert_eq!(plain.status, 400);
        assert_eq!(plain.header("Content-Type"), Some("application/json"));
        assert_eq!(plain.body, "{}");
        let chunked = parse(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(chunked.body, "abcde");
    }
}
