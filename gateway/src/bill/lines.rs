//! The bottom of the bill reader: bounded lines of bytes (hashed as they are
//! read), decoded to text, split into cells. Each part reuses one buffer, so
//! memory stays bounded by [`LINE_BYTES_MAX`] whatever the size of the file.

use std::io::{BufRead, ErrorKind};
use std::ops::Range;

use encoding_rs::{DecoderResult, GBK};
use sha2::{Digest, Sha256};

use super::BillError;

/// Longest line accepted, in bytes, without its line ending. Real bill lines
/// are well under 2 KiB; the bound is what keeps memory bounded.
pub const LINE_BYTES_MAX: usize = 64 * 1024;
/// The UTF-8 byte order mark some exports start with.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines of bytes from the input: counts them, hashes every byte read and
/// enforces the size limits.
pub(super) struct LineSource<R> {
    /// Where the bytes come from.
    input: R,
    /// The current line, without its line ending; reused.
    raw: Vec<u8>,
    /// SHA-256 of every byte consumed so far, line endings included.
    hasher: Sha256,
    /// Bytes consumed so far.
    bytes_read: u64,
    /// The limit on `bytes_read`.
    bytes_max: u64,
    /// 1-based number of the current line; 0 before the first.
    line: u64,
}

impl<R: BufRead> LineSource<R> {
    /// A source reading `input`, refusing it past `bytes_max` bytes.
    pub(super) fn new(input: R, bytes_max: u64) -> Self {
        LineSource {
            input,
            raw: Vec::new(),
            hasher: Sha256::new(),
            bytes_read: 0,
            bytes_max,
            line: 0,
        }
    }

    /// The number of the line last returned (0 before the first).
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// SHA-256 of every byte read so far.
    pub(super) fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// The next line's number and bytes without its `\n` or `\r\n`, or
    /// `None` at the end.
    ///
    /// # Errors
    /// A read error, more than `bytes_max` bytes in all, or a line longer
    /// than [`LINE_BYTES_MAX`].
    pub(super) fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, BillError> {
        self.raw.clear();
        let line = self.line + 1;
        let mut ended = false;
        while !ended {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(BillError::at(line, format!("reading failed: {}", e.kind()))),
            };
            if chunk.is_empty() {
                break;
            }
            let take = match chunk.iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    ended = true;
                    newline + 1
                }
                None => chunk.len(),
            };
            self.bytes_read = self.bytes_read.saturating_add(take as u64);
            if self.bytes_read > self.bytes_max {
                let why = format!(
                    "the bill is larger than the configured limit of {} bytes",
                    self.bytes_max
                );
                return Err(BillError::at(line, why));
            }
            // Room for the line ending on top of the longest line.
            if self.raw.len() + take > LINE_BYTES_MAX + 2 {
                return Err(too_long(line));
            }
            self.hasher.update(&chunk[..take]);
            self.raw.extend_from_slice(&chunk[..take]);
            self.input.consume(take);
        }
        if self.raw.is_empty() {
            return Ok(None);
        }
        self.line = line;
        if self.raw.last() == Some(&b'\n') {
            self.raw.pop();
            if self.raw.last() == Some(&b'\r') {
                self.raw.pop();
            }
        }
        if self.raw.len() > LINE_BYTES_MAX {
            return Err(too_long(line));
        }
        Ok(Some((line, &self.raw)))
    }
}

fn too_long(line: u64) -> BillError {
    BillError::at(
        line,
        format!("the line is longer than {LINE_BYTES_MAX} bytes"),
    )
}

/// The text encoding of a bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// UTF-8 (WeChat Pay, hmac, and Alipay exports that start with a BOM).
    Utf8,
    /// GBK (Alipay's downloads).
    Gbk,
}

/// Decodes lines to text, reusing one buffer for GBK.
pub(super) struct Decoder {
    /// What the lines are encoded in; a BOM on line 1 switches it to UTF-8.
    encoding: Encoding,
    /// The last GBK line decoded; reused.
    decoded: String,
}

impl Decoder {
    /// A decoder for lines in `encoding` (until a BOM says otherwise).
    pub(super) fn new(encoding: Encoding) -> Self {
        Decoder {
            encoding,
            decoded: String::new(),
        }
    }

    /// Line `line` as text. On line 1 a UTF-8 BOM is dropped and makes the
    /// rest of the file UTF-8.
    ///
    /// # Errors
    /// The bytes are not valid in the file's encoding.
    pub(super) fn decode<'a>(&'a mut self, raw: &'a [u8], line: u64) -> Result<&'a str, BillError> {
        let mut raw = raw;
        if line == 1
            && let Some(rest) = raw.strip_prefix(UTF8_BOM)
        {
            self.encoding = Encoding::Utf8;
            raw = rest;
        }
        // ASCII reads the same in both encodings.
        if self.encoding == Encoding::Utf8 || raw.is_ascii() {
            return std::str::from_utf8(raw).map_err(|_| BillError::at(line, "not valid UTF-8"));
        }
        self.decoded.clear();
        let mut decoder = GBK.new_decoder_without_bom_handling();
        let needed = decoder
            .max_utf8_buffer_length_without_replacement(raw.len())
            .ok_or_else(|| BillError::at(line, "not valid GBK"))?;
        self.decoded.reserve(needed);
        let (result, read) =
            decoder.decode_to_string_without_replacement(raw, &mut self.decoded, true);
        if result != DecoderResult::InputEmpty || read != raw.len() {
            return Err(BillError::at(line, "not valid GBK"));
        }
        Ok(&self.decoded)
    }
}

/// The cells of one line: unquoted, trimmed of spaces and tabs, and for
/// WeChat Pay stripped of one leading backtick. Reused line after line.
#[derive(Default)]
pub(super) struct Cells {
    /// The cells' text, one after another.
    text: String,
    /// Where each cell is in `text`.
    bounds: Vec<Range<usize>>,
}

/// Where the splitter is within a line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    /// At the start of a cell, before anything but blanks.
    Start,
    /// In a cell that did not start with a quote.
    Plain,
    /// Inside a quoted cell.
    Quoted,
    /// After a quote inside a quoted cell: `"` again is an escaped quote.
    Quote,
    /// After a quoted cell's closing quote: only blanks and `,` may follow.
    Closed,
}

impl Cells {
    /// Splits `line` at commas outside double quotes; `""` inside quotes is
    /// one quote. A quoted cell cannot span lines. With `strip_backtick`
    /// (WeChat Pay, which quotes nothing and starts each data cell with a
    /// backtick), a comma inside a cell that started with a backtick ends it
    /// only when a backtick follows: a product name or attach with a comma
    /// stays one cell.
    ///
    /// # Errors
    /// An unterminated quote, or text after a closing quote.
    pub(super) fn split(&mut self, line: &str, strip_backtick: bool) -> Result<(), &'static str> {
        self.text.clear();
        self.bounds.clear();
        let mut state = Split::Start;
        let mut start = 0;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ','
                && strip_backtick
                && state == Split::Plain
                && self.text[start..].starts_with('`')
                && chars.peek() != Some(&'`')
            {
                self.text.push(c);
                continue;
            }
            state = match (state, c) {
                (Split::Quoted, '"') => Split::Quote,
                (Split::Quoted, c) | (Split::Quote, c @ '"') => {
                    self.text.push(c);
                    Split::Quoted
                }
                (Split::Start, '"') => Split::Quoted,
                (Split::Start | Split::Plain | Split::Quote | Split::Closed, ',') => {
                    self.end_cell(start, strip_backtick);
                    start = self.text.len();
                    Split::Start
                }
                (Split::Quote | Split::Closed, ' ' | '\t') => Split::Closed,
                (Split::Quote | Split::Closed, _) => return Err("text after a closing quote"),
                (Split::Start, ' ' | '\t') => Split::Start,
                (Split::Start | Split::Plain, c) => {
                    self.text.push(c);
                    Split::Plain
                }
            };
        }
        if state == Split::Quoted {
            return Err("a quoted cell does not end on its line");
        }
        self.end_cell(start, strip_backtick);
        debug_assert!(!self.bounds.is_empty());
        Ok(())
    }

    /// Records the cell that started at `start`, trimmed.
    fn end_cell(&mut self, start: usize, strip_backtick: bool) {
        let mut range = trimmed(&self.text, start..self.text.len());
        if strip_backtick && self.text[range.clone()].starts_with('`') {
            range = trimmed(&self.text, range.start + 1..range.end);
        }
        self.bounds.push(range);
    }

    /// How many cells the line has.
    pub(super) fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Cell `index`, or `""` past the end.
    pub(super) fn get(&self, index: usize) -> &str {
        self.bounds
            .get(index)
            .and_then(|range| self.text.get(range.clone()))
            .unwrap_or("")
    }
}

/// `range` of `text` without the whitespace at either end.
fn trimmed(text: &str, range: Range<usize>) -> Range<usize> {
    let cell = &text[range.clone()];
    let start = range.start + (cell.len() - cell.trim_start().len());
    let end = range.end - (cell.len() - cell.trim_end().len());
    start..end.max(start)
}
