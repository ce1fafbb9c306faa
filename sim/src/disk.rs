//! A faulty disk under the journal, in memory, driven by the run's seed.
//!
//! Every file keeps what reads see (the page cache) apart from what would
//! survive a power cut (the platter), and every directory keeps its entries
//! apart from its durable entries. A [`SimDisk::crash`] keeps only the
//! durable side, except that writes not yet `fdatasync`ed may have reached
//! the platter in part: a random prefix of them, the last one torn at any
//! byte. Faults the run arms: the power goes off after a number of
//! operations (the operation in flight fails, a write torn), an `fdatasync`
//! fails (its writes reached the platter or not, and a retry would succeed
//! as on Linux), and a read returns one flipped bit.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use otc_storage::wal::{Bug, Disk, DiskFile};

use crate::rng::Rng;

/// What the disk did to the run (reported with a failing seed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Simulated power cuts.
    pub crashes: u64,
    /// Writes that reached the platter only in part at a crash.
    pub torn: u64,
    /// Unsynced writes lost at a crash.
    pub lost: u64,
    /// `fdatasync`s that failed.
    pub sync_failures: u64,
    /// Reads that returned a flipped bit.
    pub flips: u64,
}

#[derive(Debug, Default)]
struct Node {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Writes since the last sync, in order.
    pending: Vec<(u64, Vec<u8>)>,
}

#[derive(Debug)]
struct Inner {
    rng: Rng,
    nodes: BTreeMap<u64, Node>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_node: u64,
    /// Operations (writes and syncs) until the power goes off.
    power_off_in: Option<u64>,
    /// The power is off: every operation fails until [`SimDisk::crash`].
    off: bool,
    fail_next_sync: bool,
    flip_next_read: bool,
    bug: Option<Bug>,
    stats: DiskStats,
}

/// The simulated disk (shared: the journal holds it as `Arc<dyn Disk>`).
#[derive(Debug)]
pub struct SimDisk(Mutex<Inner>);

fn off() -> io::Error {
    io::Error::other("the power is off (simulated crash)")
}

fn missing(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn write_into(buf: &mut Vec<u8>, at: u64, bytes: &[u8]) {
    let at = usize::try_from(at).unwrap_or(usize::MAX);
    let end = at.saturating_add(bytes.len());
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[at..end].copy_from_slice(bytes);
}

impl Inner {
    /// Counts an operation; `true` when the power goes off on it.
    fn tick(&mut self) -> bool {
        if let Some(n) = self.power_off_in.as_mut() {
            if *n == 0 {
                self.off = true;
                self.power_off_in = None;
                return true;
            }
            *n -= 1;
        }
        false
    }

    fn node(&mut self, id: u64) -> io::Result<&mut Node> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("a file handle outlived its file"))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| missing(path))
    }
}

impl SimDisk {
    /// An empty disk whose faults and tears follow `seed`.
    pub fn new(seed: u64) -> Arc<SimDisk> {
        Arc::new(SimDisk(Mutex::new(Inner {
            rng: Rng::new(seed ^ 0xd15c),
            nodes: BTreeMap::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dirs: BTreeSet::new(),
            next_node: 1,
            power_off_in: None,
            off: false,
            fail_next_sync: false,
            flip_next_read: false,
            bug: None,
            stats: DiskStats::default(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The power goes off on the `n`-th write or sync from now (0: the next).
    pub fn power_off_after(&self, n: u64) {
        self.lock().power_off_in = Some(n);
    }

    /// Whether the power went off (an armed cut happened).
    pub fn is_off(&self) -> bool {
        self.lock().off
    }

    /// The next `fdatasync` fails.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// A coming read of a non-empty file (each one, until it happens, by a
    /// coin toss) returns one flipped bit.
    pub fn flip_next_read(&self) {
        self.lock().flip_next_read = true;
    }

    /// Makes the journal behave with `bug` from now on.
    pub fn inject(&self, bug: Option<Bug>) {
        self.lock().bug = bug;
    }

    /// What the disk did so far.
    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// A power cut: directories keep their durable entries, files their
    /// durable bytes, plus a random prefix of the writes not yet synced (the
    /// last of them torn at a random byte). Armed write and sync faults are
    /// disarmed; an armed flip waits for the restart's reads.
    pub fn crash(&self) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.stats.crashes += 1;
        inner.names = inner.durable_names.clone();
        let live: BTreeSet<u64> = inner.names.values().copied().collect();
        inner.nodes.retain(|id, _| live.contains(id));
        for node in inner.nodes.values_mut() {
            let pending = std::mem::take(&mut node.pending);
            let n = pending.len() as u64;
            let reached = inner.rng.below(n + 1);
            for (i, (at, bytes)) in pending.iter().enumerate() {
                let i = i as u64;
                if i + 1 < reached {
                    write_into(&mut node.durable, *at, bytes);
                } else if i + 1 == reached {
                    let keep = inner.rng.below(bytes.len() as u64 + 1) as usize;
                    if keep < bytes.len() {
                        inner.stats.torn += 1;
                    }
                    write_into(&mut node.durable, *at, &bytes[..keep]);
                } else {
                    inner.stats.lost += 1;
                }
            }
            node.data = node.durable.clone();
        }
        inner.power_off_in = None;
        inner.off = false;
        inner.fail_next_sync = false;
        // An armed flip stays: the restart's reads are what it is for.
    }
}

/// A file of the simulated disk.
#[derive(Debug)]
struct SimFile {
    disk: Arc<SimDisk>,
    node: u64,
}

impl DiskFile for SimFile {
    fn write_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        let mut inner = self.disk.lock();
        if inner.off {
            return Err(off());
        }
        if inner.tick() {
            // The write in flight reaches the cache in part; the crash
            // decides how much of it reaches the platter.
            let keep = inner.rng.below(bytes.len() as u64 + 1) as usize;
            let node = inner.node(self.node)?;
            write_into(&mut node.data, at, &bytes[..keep]);
            node.pending.push((at, bytes[..keep].to_vec()));
            return Err(off());
        }
        let node = inner.node(self.node)?;
        write_into(&mut node.data, at, bytes);
        node.pending.push((at, bytes.to_vec()));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut inner = self.disk.lock();
        if inner.off || inner.tick() {
            return Err(off());
        }
        if std::mem::take(&mut inner.fail_next_sync) {
            // As Linux: the error is reported once and the pages are marked
            // clean, whether or not they reached the platter; a retry then
            // succeeds with nothing to write.
            inner.stats.sync_failures += 1;
            let reached = inner.rng.below(2) == 0;
            let node = inner.node(self.node)?;
            for (at, bytes) in std::mem::take(&mut node.pending) {
                if reached {
                    write_into(&mut node.durable, at, &bytes);
                }
            }
            return Err(io::Error::other("fdatasync failed (simulated EIO)"));
        }
        // Only what was written since the last sync: pages a failed sync
        // marked clean are never written again.
        let node = inner.node(self.node)?;
        for (at, bytes) in std::mem::take(&mut node.pending) {
            write_into(&mut node.durable, at, &bytes);
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut inner = self.disk.lock();
        Ok(inner.node(self.node)?.data.len() as u64)
    }
}

/// The handle type the journal holds.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<SimDisk>);

impl Disk for Shared {
    fn injects(&self, bug: Bug) -> bool {
        self.0.lock().bug == Some(bug)
    }

    fn salt(&self) -> u64 {
        self.0.lock().rng.next_u64()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        if inner.off {
            return Err(off());
        }
        inner.dirs.insert(dir.to_owned());
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let inner = self.0.lock();
        if inner.off {
            return Err(off());
        }
        Ok(inner
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn read_at(&self, path: &Path, at: u64, len: usize) -> io::Result<Vec<u8>> {
        let all = self.read(path)?;
        let from = usize::try_from(at).unwrap_or(usize::MAX).min(all.len());
        let to = from.saturating_add(len).min(all.len());
        Ok(all[from..to].to_vec())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut inner = self.0.lock();
        if inner.off {
            return Err(off());
        }
        let id = inner.lookup(path)?;
        let mut bytes = inner.node(id)?.data.clone();
        // An armed flip hits this read or a later one.
        if inner.flip_next_read && !bytes.is_empty() && inner.rng.below(2) == 0 {
            inner.flip_next_read = false;
            inner.stats.flips += 1;
            // Somewhere in what was written (or anywhere, in a zeroed file);
            // half the time near its end, where a torn write would be.
            let end = bytes
                .iter()
                .rposition(|&b| b != 0)
                .map_or(bytes.len(), |p| p + 1);
            let from = if inner.rng.below(2) == 0 {
                end.saturating_sub(32)
            } else {
                0
            };
            let at = from + inner.rng.below((end - from) as u64) as usize;
            let bit = inner.rng.below(8) as u32;
            bytes[at] ^= 1 << bit;
        }
        Ok(bytes)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        let mut inner = self.0.lock();
        let id = inner.lookup(path)?;
        Ok(inner.node(id)?.data.len() as u64)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let inner = self.0.lock();
        if inner.off {
            return Err(off());
        }
        let node = inner.lookup(path)?;
        Ok(Arc::new(SimFile {
            disk: Arc::clone(&self.0),
            node,
        }))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let mut inner = self.0.lock();
        if inner.off || inner.tick() {
            return Err(off());
        }
        if inner.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let node = inner.next_node;
        inner.next_node += 1;
        inner.nodes.insert(node, Node::default());
        inner.names.insert(path.to_owned(), node);
        Ok(Arc::new(SimFile {
            disk: Arc::clone(&self.0),
            node,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        if inner.off || inner.tick() {
            return Err(off());
        }
        let node = inner.names.remove(from).ok_or_else(|| missing(from))?;
        inner.names.insert(to.to_owned(), node);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        if inner.off || inner.tick() {
            return Err(off());
        }
        inner.names.remove(path).ok_or_else(|| missing(path))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        if inner.off || inner.tick() {
            return Err(off());
        }
        let inner = &mut *inner;
        inner.durable_names.retain(|p, _| p.parent() != Some(dir));
        for (p, id) in &inner.names {
            if p.parent() == Some(dir) {
                inner.durable_names.insert(p.clone(), *id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> (Arc<SimDisk>, Shared) {
        let d = SimDisk::new(7);
        (Arc::clone(&d), Shared(d))
    }

    #[test]
    fn synced_data_and_entries_survive_a_crash_and_the_rest_may_not() {
        let (sim, disk) = disk();
        let dir = Path::new("/j");
        let f = disk.create_new(&dir.join("a")).expect("create");
        f.write_at(b"hello", 0).expect("write");
        f.sync_data().expect("sync");
        // The name was never made durable: the file is gone.
        sim.crash();
        assert!(disk.read(&dir.join("a")).is_err());
        let f = disk.create_new(&dir.join("b")).expect("create");
        f.write_at(b"hello", 0).expect("write");
        f.sync_data().expect("sync");
        disk.sync_dir(dir).expect("sync dir");
        f.write_at(b"world", 5).expect("write");
        sim.crash();
        let got = disk.read(&dir.join("b")).expect("read");
        assert!(got.starts_with(b"hello"), "synced bytes survive");
        assert!(
            b"helloworld".starts_with(&got),
            "at most a prefix of the rest"
        );
    }

    #[test]
    fn a_failed_sync_is_reported_once_and_a_retry_succeeds_with_nothing_written() {
        let mut lost = 0;
        for seed in 0..40 {
            let sim = SimDisk::new(seed);
            let disk = Shared(Arc::clone(&sim));
            let f = disk.create_new(Path::new("/j/a")).expect("create");
            disk.sync_dir(Path::new("/j")).expect("sync dir");
            f.write_at(b"data", 0).expect("write");
            sim.fail_next_sync();
            assert!(f.sync_data().is_err());
            assert!(f.sync_data().is_ok(), "the retry 'succeeds'");
            sim.crash();
            if disk.read(Path::new("/j/a")).expect("read").is_empty() {
                lost += 1;
            }
        }
        assert!(lost > 0, "some failed syncs lost their data");
    }

    #[test]
    fn the_power_goes_off_mid_write_and_everything_after_fails() {
        let (sim, disk) = disk();
        let f = disk.create_new(Path::new("/j/a")).expect("create");
        sim.power_off_after(1);
        f.write_at(b"one", 0).expect("first write");
        assert!(f.write_at(b"two", 3).is_err());
        assert!(sim.is_off());
        assert!(f.sync_data().is_err());
        sim.crash();
        assert!(!sim.is_off());
    }

    #[test]
    fn a_flipped_read_differs_in_one_bit() {
        let (sim, disk) = disk();
        let f = disk.create_new(Path::new("/j/a")).expect("create");
        f.write_at(&[0x55; 64], 0).expect("write");
        sim.flip_next_read();
        let bad = disk.read(Path::new("/j/a")).expect("read");
        let good = disk.read(Path::new("/j/a")).expect("read");
        let bits: u32 = bad
            .iter()
            .zip(&good)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(bits, 1);
    }
}
