//! In-memory [`Storage`] with fault injection, for cheap crash tests.
//!
//! It models what a power loss keeps: a file's bytes are durable up to its
//! last `sync`, and the directory (which names exist, what they point to) as
//! of the last `sync_dir`. [`MemStorage::crash`] throws away everything else;
//! [`MemStorage::crash_torn`] also keeps a prefix of each file's unsynced bytes
//! (pages the kernel happened to write). [`MemStorage::fail_after`] makes every
//! mutating call after the next `n` fail, as if the process died there.
//! [`MemStorage::truncate_file`] and [`MemStorage::flip_bit`] damage files.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::storage::{Storage, WriteFile};

#[derive(Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Default)]
struct Fs {
    inodes: BTreeMap<u64, Inode>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    next_inode: u64,
    /// Mutating calls still allowed (None = unlimited).
    budget: Option<u64>,
    fail_sync: bool,
    sync_delay: Duration,
    syncs: u64,
}

impl Fs {
    fn spend(&mut self) -> io::Result<()> {
        match &mut self.budget {
            None => Ok(()),
            Some(0) => Err(io::Error::other("injected fault: the process is gone")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
        }
    }

    fn inode(&self, name: &str) -> io::Result<u64> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {name}")))
    }
}

/// In-memory storage; clones share the same files.
#[derive(Clone, Default)]
pub struct MemStorage {
    fs: Arc<Mutex<Fs>>,
}

struct MemFile {
    fs: Arc<Mutex<Fs>>,
    inode: u64,
}

impl WriteFile for MemFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.spend()?;
        if let Some(i) = fs.inodes.get_mut(&self.inode) {
            i.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let delay = self.fs.lock().sync_delay;
        if !delay.is_zero() {
            // Models the latency of a disk flush (not a wait for a condition).
            std::thread::sleep(delay);
        }
        let mut fs = self.fs.lock();
        fs.spend()?;
        if fs.fail_sync {
            return Err(io::Error::other("injected fault: fsync failed"));
        }
        fs.syncs += 1;
        if let Some(i) = fs.inodes.get_mut(&self.inode) {
            i.durable.clone_from(&i.data);
        }
        Ok(())
    }
}

impl MemStorage {
    /// Empty storage.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Power loss: only synced bytes and synced directory entries remain.
    /// Faults armed with [`Self::fail_after`] are cleared.
    pub fn crash(&self) {
        self.crash_keeping(|_, _| 0);
    }

    /// Power loss during writes: each file keeps its synced bytes plus the
    /// first `keep(name, unsynced_len)` of its unsynced ones.
    pub fn crash_torn(&self, mut keep: impl FnMut(&str, usize) -> usize) {
        self.crash_keeping(&mut keep);
    }

    fn crash_keeping(&self, mut keep: impl FnMut(&str, usize) -> usize) {
        let mut fs = self.fs.lock();
        fs.budget = None;
        fs.fail_sync = false;
        let names = fs.durable_names.clone();
        let mut inodes = BTreeMap::new();
        for (name, ino) in &names {
            if let Some(i) = fs.inodes.get(ino) {
                let mut data = i.durable.clone();
                if i.data.len() > data.len() && i.data.starts_with(&data) {
                    let extra = i.data.len() - data.len();
                    let k = keep(name, extra).min(extra);
                    data.extend_from_slice(&i.data[i.durable.len()..i.durable.len() + k]);
                }
                inodes.insert(
                    *ino,
                    Inode {
                        durable: data.clone(),
                        data,
                    },
                );
            }
        }
        fs.inodes = inodes;
        fs.names = names;
    }

    /// After `n` more mutating calls (append, sync, create, rename, remove,
    /// truncate, sync_dir), every mutating call fails.
    pub fn fail_after(&self, n: u64) {
        self.fs.lock().budget = Some(n);
    }

    /// Makes every `sync` fail (or succeed again).
    pub fn fail_sync(&self, on: bool) {
        self.fs.lock().fail_sync = on;
    }

    /// Makes every file `sync` take this long, like a real disk flush.
    pub fn set_sync_delay(&self, delay: Duration) {
        self.fs.lock().sync_delay = delay;
    }

    /// An independent copy of every file and its durable state.
    #[must_use]
    pub fn deep_copy(&self) -> MemStorage {
        let fs = self.fs.lock();
        MemStorage {
            fs: Arc::new(Mutex::new(Fs {
                inodes: fs.inodes.clone(),
                names: fs.names.clone(),
                durable_names: fs.durable_names.clone(),
                next_inode: fs.next_inode,
                budget: None,
                fail_sync: false,
                sync_delay: Duration::ZERO,
                syncs: 0,
            })),
        }
    }

    /// Whether an armed [`Self::fail_after`] has run out.
    #[must_use]
    pub fn faulted(&self) -> bool {
        self.fs.lock().budget == Some(0)
    }

    /// File syncs done so far.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.fs.lock().syncs
    }

    /// Cuts a file to `len` bytes (durably): damage injection.
    ///
    /// # Panics
    /// The file does not exist (a test bug).
    pub fn truncate_file(&self, name: &str, len: usize) {
        let mut fs = self.fs.lock();
        let ino = fs.names[name];
        let i = fs.inodes.get_mut(&ino).expect("inode");
        i.data.truncate(len);
        i.durable.clone_from(&i.data);
    }

    /// Flips one bit of a file (durably): damage injection.
    ///
    /// # Panics
    /// The file or byte does not exist (a test bug).
    pub fn flip_bit(&self, name: &str, byte: usize, bit: u8) {
        let mut fs = self.fs.lock();
        let ino = fs.names[name];
        let i = fs.inodes.get_mut(&ino).expect("inode");
        i.data[byte] ^= 1 << bit;
        i.durable.clone_from(&i.data);
    }

    /// A file's current bytes (for tests).
    #[must_use]
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let fs = self.fs.lock();
        fs.names.get(name).map(|i| fs.inodes[i].data.clone())
    }
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.fs.lock().names.keys().cloned().collect())
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn WriteFile>> {
        let mut fs = self.fs.lock();
        fs.spend()?;
        fs.next_inode += 1;
        let ino = fs.next_inode;
        fs.inodes.insert(ino, Inode::default());
        fs.names.insert(name.to_string(), ino);
        Ok(Arc::new(MemFile {
            fs: self.fs.clone(),
            inode: ino,
        }))
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let fs = self.fs.lock();
        let ino = fs.inode(name)?;
        Ok(fs.inodes[&ino].data.clone())
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let fs = self.fs.lock();
        let ino = fs.inode(name)?;
        let d = &fs.inodes[&ino].data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(d.len());
        let end = start.saturating_add(len).min(d.len());
        Ok(d[start..end].to_vec())
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        let fs = self.fs.lock();
        let ino = fs.inode(name)?;
        Ok(fs.inodes[&ino].data.len() as u64)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.spend()?;
        let ino = fs.inode(name)?;
        if let Some(i) = fs.inodes.get_mut(&ino) {
            i.data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            i.durable.clone_from(&i.data);
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.spend()?;
        let ino = fs.inode(from)?;
        fs.names.remove(from);
        fs.names.insert(to.to_string(), ino);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.spend()?;
        fs.inode(name)?;
        fs.names.remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.spend()?;
        if fs.fail_sync {
            return Err(io::Error::other("injected fault: directory fsync failed"));
        }
        fs.durable_names = fs.names.clone();
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_synced_state() {
        let s = MemStorage::new();
        let a = s.create("a").unwrap();
        a.append(b"durable").unwrap();
        a.sync().unwrap();
        s.sync_dir().unwrap();
        a.append(b" lost").unwrap();
        let b = s.create("b").unwrap();
        b.append(b"x").unwrap();
        b.sync().unwrap(); // synced data, but the name never was
        s.crash();
        assert_eq!(s.read("a").unwrap(), b"durable");
        assert!(s.read("b").is_err());
    }

    #[test]
    fn rename_is_durable_only_after_sync_dir() {
        let s = MemStorage::new();
        let a = s.create("tmp").unwrap();
        a.append(b"x").unwrap();
        a.sync().unwrap();
        s.sync_dir().unwrap();
        s.rename("tmp", "final").unwrap();
        s.crash();
        assert_eq!(s.list().unwrap(), vec!["tmp".to_string()]);
        s.rename("tmp", "final").unwrap();
        s.sync_dir().unwrap();
        s.crash();
        assert_eq!(s.list().unwrap(), vec!["final".to_string()]);
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_unsynced_bytes() {
        let s = MemStorage::new();
        let a = s.create("a").unwrap();
        s.sync_dir().unwrap();
        a.append(b"abc").unwrap();
        a.sync().unwrap();
        a.append(b"defgh").unwrap();
        s.crash_torn(|_, n| n / 2);
        assert_eq!(s.read("a").unwrap(), b"abcde");
    }

    #[test]
    fn fail_after_stops_every_later_mutation() {
        let s = MemStorage::new();
        let a = s.create("a").unwrap();
        s.fail_after(1);
        a.append(b"1").unwrap();
        assert!(a.append(b"2").is_err());
        assert!(s.sync_dir().is_err());
        assert!(s.faulted());
        assert_eq!(s.read("a").unwrap(), b"1");
    }
}
