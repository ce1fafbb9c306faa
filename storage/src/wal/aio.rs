//! One asynchronous direct write at a time, through Linux's native AIO
//! (`io_submit`, `io_getevents`): the journal's record goes to the device
//! while the writer's thread does other work, and the thread waits for the
//! write only after it. On a file opened `O_DIRECT | O_DSYNC` the write
//! completes once it is durable, exactly as the synchronous `pwrite` does.
//!
//! Native AIO, not io_uring: it needs no crate beyond `libc`, and container
//! runtimes' default system-call filters allow it (Docker's blocks
//! io_uring). Where it is missing or refused, [`Aio::new`] fails and the
//! caller writes synchronously.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `struct iocb` of `linux/aio_abi.h` (little-endian field order: built for
/// x86_64 and aarch64 only).
#[repr(C)]
#[derive(Default)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: i32,
    opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// `struct io_event`.
#[repr(C)]
#[derive(Default)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

const IOCB_CMD_PWRITE: u16 = 1;

/// An AIO context for one write in flight at a time.
#[derive(Debug)]
pub(super) struct Aio {
    ctx: libc::c_ulong,
}

impl Aio {
    /// A context, if the kernel gives one.
    ///
    /// # Errors
    /// The kernel has no native AIO or refuses it (a system-call filter,
    /// the system-wide limit on AIO requests reached).
    pub(super) fn new() -> io::Result<Aio> {
        let mut ctx: libc::c_ulong = 0;
        // SAFETY: io_setup writes one context id to the pointer, which is
        // valid for the call.
        let r = unsafe { libc::syscall(libc::SYS_io_setup, 1 as libc::c_long, &raw mut ctx) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Aio { ctx })
    }

    /// Writes `bytes` at `at` in `file` and calls `meanwhile` while the
    /// write is under way; returns once the write completed. `Ok(false)`
    /// if the kernel would not take the write (nothing was written, and
    /// `meanwhile` was not called): the caller writes it another way.
    ///
    /// # Errors
    /// The write failed (it may have landed in part), or waiting for it did.
    pub(super) fn write_while(
        &self,
        file: &File,
        bytes: &[u8],
        at: u64,
        meanwhile: &mut dyn FnMut(),
    ) -> io::Result<bool> {
        let (Ok(fildes), Ok(offset)) = (u32::try_from(file.as_raw_fd()), i64::try_from(at)) else {
            return Ok(false);
        };
        let mut iocb = Iocb {
            opcode: IOCB_CMD_PWRITE,
            fildes,
            buf: bytes.as_ptr() as u64,
            nbytes: bytes.len() as u64,
            offset,
            ..Iocb::default()
        };
        let mut list = [&raw mut iocb];
        // SAFETY: the kernel copies the control block at submission; the
        // buffer stays borrowed until the write has completed: `InFlight`
        // waits for it on every path out of this function, a panic in
        // `meanwhile` included. If waiting itself fails (not seen: only a
        // bad context or pointer makes `io_getevents` fail), the caller
        // drops this context before it reuses or frees the buffer, and
        // `io_destroy` waits for the write (see `disk.rs`).
        let submitted = unsafe {
            libc::syscall(
                libc::SYS_io_submit,
                self.ctx,
                1 as libc::c_long,
                list.as_mut_ptr(),
            )
        };
        if submitted != 1 {
            return Ok(false);
        }
        let in_flight = InFlight {
            aio: self,
            waited: false,
        };
        meanwhile();
        let written = match in_flight.wait() {
            // Interrupted before it wrote (a signal, on file systems that
            // allow it): written again, synchronously, all of it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            done => done?,
        };
        if written == bytes.len() {
            return Ok(true);
        }
        // A short or interrupted write: the rest, synchronously (`O_DSYNC`
        // all the same).
        let rest = bytes.get(written..).unwrap_or_default();
        std::os::unix::fs::FileExt::write_all_at(file, rest, at + written as u64)?;
        Ok(true)
    }

    /// Waits for the write in flight; its result in bytes.
    fn complete(&self) -> io::Result<usize> {
        let mut event = IoEvent::default();
        loop {
            // SAFETY: io_getevents writes at most one event to the pointer,
            // valid for the call; no timeout.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    self.ctx,
                    1 as libc::c_long,
                    1 as libc::c_long,
                    &raw mut event,
                    std::ptr::null_mut::<libc::timespec>(),
                )
            };
            if r == 1 {
                break;
            }
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
        if event.res < 0 {
            let code = i32::try_from(-event.res).unwrap_or(libc::EIO);
            return Err(io::Error::from_raw_os_error(code));
        }
        usize::try_from(event.res).map_err(|_| io::Error::other("a negative write size"))
    }
}

impl Drop for Aio {
    fn drop(&mut self) {
        // SAFETY: the context is ours. A write still in flight (only if
        // waiting for it failed) is waited for by `io_destroy` itself.
        unsafe {
            libc::syscall(libc::SYS_io_destroy, self.ctx);
        }
    }
}

/// A submitted write: waited for when dropped, if not before, so the
/// buffer and control block it uses outlive it.
struct InFlight<'a> {
    aio: &'a Aio,
    waited: bool,
}

impl InFlight<'_> {
    fn wait(mut self) -> io::Result<usize> {
        self.waited = true;
        self.aio.complete()
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.aio.complete();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

    use super::*;

    /// An aligned buffer of `n` blocks, as direct I/O wants.
    fn aligned(n: usize, fill: u8) -> (Vec<u8>, usize) {
        let v = vec![fill; (n + 1) * 4096];
        let skip = (4096 - v.as_ptr() as usize % 4096) % 4096;
        (v, skip)
    }

    #[test]
    fn a_direct_write_lands_and_meanwhile_runs_once() {
        let Ok(aio) = Aio::new() else {
            // No native AIO here (a system-call filter): nothing to test.
            return;
        };
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0u8; 4 * 4096]).expect("zeros");
        let Ok(file) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(&path)
        else {
            return;
        };
        let (buf, skip) = aligned(2, 0x5a);
        let bytes = &buf[skip..skip + 2 * 4096];
        let mut runs = 0;
        let taken = aio
            .write_while(&file, bytes, 4096, &mut || runs += 1)
            .expect("write");
        if taken {
            assert_eq!(runs, 1);
        } else {
            assert_eq!(runs, 0, "not taken: meanwhile is the caller's to run");
        }
        let back = std::fs::read(&path).expect("read");
        if taken {
            assert_eq!(&back[4096..3 * 4096], bytes);
        }
        assert_eq!(&back[..4096], &[0u8; 4096][..], "nothing before it");
    }

    #[test]
    fn a_write_the_kernel_refuses_at_once_is_left_to_the_caller() {
        let Ok(aio) = Aio::new() else {
            return;
        };
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 16]).expect("file");
        // Open for reading only: the kernel refuses the write at submission.
        let file = File::open(&path).expect("open");
        let mut runs = 0;
        let taken = aio
            .write_while(&file, b"data", 0, &mut || runs += 1)
            .expect("no error: refused");
        assert!(!taken);
        assert_eq!(runs, 0);
        let mut back = [0u8; 4];
        file.read_exact_at(&mut back, 0).expect("read");
        assert_eq!(back, [0u8; 4]);
    }
}
