//! Where there is no native AIO to use (`aio.rs` is built for Linux on
//! x86_64 and aarch64): every direct write is synchronous.

use std::fs::File;
use std::io;

/// No AIO context is ever made.
#[derive(Debug)]
pub(super) struct Aio;

impl Aio {
    /// Never a context here.
    ///
    /// # Errors
    /// Always: unsupported.
    pub(super) fn new() -> io::Result<Aio> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Never takes a write.
    ///
    /// # Errors
    /// None.
    pub(super) fn write_while(
        &self,
        _file: &File,
        _bytes: &[u8],
        _at: u64,
        _meanwhile: &mut dyn FnMut(),
    ) -> io::Result<bool> {
        Ok(false)
    }
}
