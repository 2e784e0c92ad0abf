//! Storage I/O behind a small trait, so the repository runs the same on a
//! directory ([`DirStorage`]) and in memory with injected faults
//! ([`crate::MemStorage`]).
//!
//! The repository lives in one flat directory of named files. Durability is
//! explicit: appended bytes survive power loss only after [`WriteFile::sync`],
//! and a create, rename or remove only after [`Storage::sync_dir`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file open for appending.
pub trait WriteFile: Send + Sync {
    /// Appends all of `buf`.
    ///
    /// # Errors
    /// The write failed (the file's length is then unknown).
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    ///
    /// # Errors
    /// The data may not be on disk: the caller must not carry on.
    fn sync(&self) -> io::Result<()>;
}

/// A flat directory of files.
pub trait Storage: Send + Sync {
    /// Names of the regular files.
    ///
    /// # Errors
    /// The directory cannot be read.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates `name` empty (replacing any file of that name) for appending.
    ///
    /// # Errors
    /// The file cannot be created.
    fn create(&self, name: &str) -> io::Result<Arc<dyn WriteFile>>;
    /// The whole file.
    ///
    /// # Errors
    /// It cannot be read.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// `len` bytes at `offset` (fewer if the file ends first).
    ///
    /// # Errors
    /// It cannot be read.
    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Its length.
    ///
    /// # Errors
    /// It does not exist or cannot be examined.
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Cuts the file to `len` bytes and makes that durable.
    ///
    /// # Errors
    /// It cannot be truncated or synced.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`.
    ///
    /// # Errors
    /// The rename failed.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name`.
    ///
    /// # Errors
    /// The removal failed.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creates, renames and removals durable.
    ///
    /// # Errors
    /// The directory could not be synced: the caller must not carry on.
    fn sync_dir(&self) -> io::Result<()>;
    /// A description for messages (the directory path).
    fn describe(&self) -> String;
    /// Gives up exclusive use of the repository (it was closed); reads may
    /// still happen.
    fn release(&self) {}
}

/// A repository directory on disk. Holds an exclusive lock on `LOCK` in the
/// directory while it lives, so two processes never share a repository.
pub struct DirStorage {
    dir: PathBuf,
    lock: parking_lot::Mutex<Option<File>>,
}

/// Name of the lock file; not a repository file.
pub const LOCK_FILE: &str = "LOCK";

impl DirStorage {
    /// Opens (creating if needed) `dir` and takes its lock.
    ///
    /// # Errors
    /// The directory cannot be created, or another process holds the lock.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("repository {} is in use by another process", dir.display()),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            lock: parking_lot::Mutex::new(Some(lock)),
        })
    }

    /// Opens `dir` without locking it, for reading only (`sluice repo check`
    /// and `dump` work on a repository a running flow holds).
    ///
    /// # Errors
    /// The directory does not exist.
    pub fn open_read_only(dir: &Path) -> io::Result<Self> {
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            lock: parking_lot::Mutex::new(None),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

struct DiskFile(File);

impl WriteFile for DiskFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for DirStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            if e.file_type()?.is_file()
                && let Some(n) = e.file_name().to_str()
                && n != LOCK_FILE
            {
                out.push(n.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn WriteFile>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(self.path(name))?;
        Ok(Arc::new(DiskFile(f)))
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        File::open(self.path(name))?.read_to_end(&mut v)?;
        Ok(v)
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = File::open(self.path(name))?;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = f.read_at(&mut buf[got..], offset + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(buf)
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.path(name))?.len())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(name))?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn release(&self) {
        self.lock.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = DirStorage::open(d.path()).unwrap();
        let err = DirStorage::open(d.path())
            .err()
            .expect("second open refused");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(a);
        assert!(DirStorage::open(d.path()).is_ok());
    }

    #[test]
    fn files_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let s = DirStorage::open(d.path()).unwrap();
        let f = s.create("a").unwrap();
        f.append(b"hello ").unwrap();
        f.append(b"world").unwrap();
        f.sync().unwrap();
        assert_eq!(s.read("a").unwrap(), b"hello world");
        assert_eq!(s.read_at("a", 6, 100).unwrap(), b"world");
        s.truncate("a", 5).unwrap();
        assert_eq!(s.len("a").unwrap(), 5);
        s.rename("a", "b").unwrap();
        s.sync_dir().unwrap();
        assert_eq!(s.list().unwrap(), vec!["b".to_string()]);
        s.remove("b").unwrap();
        assert!(s.list().unwrap().is_empty());
    }
}
