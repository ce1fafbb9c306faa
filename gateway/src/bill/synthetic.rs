//! A valid hmac bill of any length, produced on the fly, for benches and the
//! streaming test: it costs a few KiB of memory however many rows it has.

use std::io::{self, BufRead, Read, Write as _};

/// Bytes produced per refill: a few hundred rows.
const CHUNK_BYTES: usize = 16 * 1024;
/// The synthetic bill's first lines.
const PREAMBLE: &[u8] = b"# synthetic hmac bill\nid,reference,amount,fee,status,paid_at\n";

/// A valid hmac bill with `lines` rows, produced lazily as it is read.
///
/// Row `i` has id `syn-{i:012}`, reference `otc-{i:012}`, an amount of
/// `i % 1_000_000 + 1` fen, a fee of 0.6 % of it rounded down to the fen,
/// status `refund` when `i % 20 == 19`, `closed` when `i % 20 == 18`, `paid`
/// otherwise, and a time on 2026-12-01 (UTC), `i % 86_400` seconds after
/// midnight.
pub fn synthetic_hmac_bill(lines: u64) -> impl BufRead {
    SyntheticHmacBill {
        next: 0,
        rows: lines,
        started: false,
        buf: Vec::with_capacity(CHUNK_BYTES + 128),
        pos: 0,
    }
}

/// The lazily produced bill.
struct SyntheticHmacBill {
    /// The next row to produce.
    next: u64,
    /// How many rows the bill has.
    rows: u64,
    /// Whether the preamble was produced.
    started: bool,
    /// Produced and not yet consumed: `buf[pos..]`.
    buf: Vec<u8>,
    /// How much of `buf` was consumed.
    pos: usize,
}

impl SyntheticHmacBill {
    /// Produces the next chunk once the last one is consumed.
    fn refill(&mut self) {
        if self.pos < self.buf.len() {
            return;
        }
        self.buf.clear();
        self.pos = 0;
        if !self.started {
            self.started = true;
            self.buf.extend_from_slice(PREAMBLE);
        }
        while self.buf.len() < CHUNK_BYTES && self.next < self.rows {
            write_row(&mut self.buf, self.next);
            self.next += 1;
        }
    }
}

/// Appends row `i`.
fn write_row(buf: &mut Vec<u8>, i: u64) {
    let fen = i % 1_000_000 + 1;
    // 0.6 %, rounded down to the fen.
    let fee_fen = fen * 6 / 1000;
    let status = match i % 20 {
        19 => "refund",
        18 => "closed",
        _ => "paid",
    };
    let secs = i % 86_400;
    // Writing to a Vec cannot fail.
    let _ = writeln!(
        buf,
        "syn-{i:012},otc-{i:012},{}.{:02},{}.{:02},{status},2026-12-01T{:02}:{:02}:{:02}Z",
        fen / 100,
        fen % 100,
        fee_fen / 100,
        fee_fen % 100,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
    );
}

impl Read for SyntheticHmacBill {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for SyntheticHmacBill {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill();
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.buf.len());
    }
}
