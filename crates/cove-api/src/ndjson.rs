//! NDJSON framing for streams (`API.md` §5): one compact JSON object per
//! `\n`-terminated line, with U+2028, U+2029 and U+0085 escaped (the Python
//! SDK splits lines on them with `str.splitlines`), and a UTF-8 decoder that
//! holds back a multi-byte sequence split across chunks so a character is
//! never turned into two U+FFFD.

use serde::Serialize;

/// Serialises `frame` as one NDJSON line (with the trailing `\n`).
pub fn encode_line<T: Serialize>(frame: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(frame)?;
    let mut out = escape_line_separators(&json);
    out.push('\n');
    Ok(out)
}

/// Replaces raw U+2028, U+2029 and U+0085 by their `\uXXXX` escapes. In
/// serde_json output these characters can only occur inside strings, where
/// the escape means the same character.
pub fn escape_line_separators(json: &str) -> String {
    if !json.contains(['\u{2028}', '\u{2029}', '\u{0085}']) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            '\u{0085}' => out.push_str("\\u0085"),
            other => out.push(other),
        }
    }
    out
}

/// Turns a byte stream into UTF-8 text chunk by chunk: invalid bytes become
/// U+FFFD, and an incomplete sequence at the end of a chunk waits for the next.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Decodes `chunk` after whatever was held back.
    pub fn push(&mut self, chunk: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(chunk);
        let mut out = String::with_capacity(buf.len());
        let mut rest: &[u8] = &buf;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // `valid_up_to` bytes are valid UTF-8 by contract, so this never falls back.
                    out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            rest = &rest[valid + bad..];
                        }
                        None => {
                            self.pending = rest[valid..].to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Whatever is still held back at the end of the stream (lossy).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::ExecStreamFrame;

    #[test]
    fn line_separators_are_escaped() {
        let frame = ExecStreamFrame {
            stdout: Some("a\u{2028}b\u{2029}c\u{85}d".into()),
            ..Default::default()
        };
        let line = encode_line(&frame).unwrap();
        assert_eq!(line, "{\"stdout\":\"a\\u2028b\\u2029c\\u0085d\"}\n");
        let back: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(back["stdout"], "a\u{2028}b\u{2029}c\u{85}d");
        // Exactly one line by Python's splitlines rules.
        assert_eq!(line.trim_end().lines().count(), 1);
        assert!(!line
            .trim_end()
            .contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']));
    }

    #[test]
    fn split_multibyte_sequence_is_held_back() {
        let mut d = Utf8Decoder::default();
        let bytes = "é€😀".as_bytes();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&d.push(&[*b]));
        }
        out.push_str(&d.finish());
        assert_eq!(out, "é€😀");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut d = Utf8Decoder::default();
        assert_eq!(d.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(d.push(b"\xe2\x82"), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
