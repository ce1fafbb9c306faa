//! A minimal HTTP/1.1 POST, as a payment gateway sends a notification: used
//! by `otcctl gateway pay` (the sandbox gateway), the end-to-end tests and
//! the notification bench. Plain `http://host:port/path` only: the sandbox
//! talks to a local `otcd`; real gateways bring their own clients.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer read back, in bytes.
const ANSWER_BYTES_MAX: u64 = 64 * 1024;

/// An HTTP answer: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

/// POSTs `body` with `headers` to `url` and reads the answer.
///
/// # Errors
/// A URL that is not `http://host:port/path`, or any I/O or protocol error,
/// in words.
pub async fn post(url: &str, headers: &[(String, String)], body: &[u8]) -> Result<Answer, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("host") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .take(ANSWER_BYTES_MAX)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no header end")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let body = &raw[end + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the answer has no status line")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    // Bytes first, text last: a chunk may end inside a character.
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Joins a chunked body's chunks (sizes in hex, perhaps with `;`
/// extensions, each line CRLF-ended).
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..line_end]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        let rest = &s[line_end + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_plain_and_chunked() {
        let a =
            parse_answer(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nsuccess").unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "success"));
        let a = parse_answer(
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n4\r\nfail\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((a.status, a.body.as_str()), (400, "fail"));
        assert!(parse_answer(b"garbage").is_err());
    }

    #[test]
    fn a_chunk_that_ends_inside_a_character_is_joined_not_cut() {
        // "成功" is E6 88 90 E5 8A 9F: the first chunk ends after two of
        // its bytes; the size line carries an extension.
        let a = parse_answer(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;x=1\r\n\xE6\x88\r\n4\r\n\x90\xE5\x8A\x9F\r\n0\r\n\r\n",
        )
        .expect("parsed");
        assert_eq!((a.status, a.body.as_str()), (200, "成功"));
    }
}
