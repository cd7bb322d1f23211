//! `WrittenChunks`: chunk files leave the page cache a few chunks after the writer wrote them.
//!
//! A recording is written once and not read back while it runs. Left in the page cache, a
//! recording longer than RAM fills it, and from then on the kernel reclaims memory (kswapd)
//! on the same cores as the camera. So each chunk file's writeback starts as soon as it is
//! written (`sync_file_range`, which does not wait), and [`WrittenChunks::LAG`] chunks later,
//! when that writeback is done or nearly so, the file's pages are dropped from the cache
//! (`posix_fadvise(DONTNEED)`). Both are hints: a failure changes nothing but the cache.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// The chunk files written lately whose pages are still cached.
#[derive(Debug, Default)]
pub(super) struct WrittenChunks {
    pending: VecDeque<PathBuf>,
}

impl WrittenChunks {
    /// Chunks whose pages stay cached while their writeback runs.
    pub const LAG: usize = 8;

    /// `path` was just written: start its writeback, and drop the pages of the chunk written
    /// [`Self::LAG`] chunks before it.
    pub fn written(&mut self, path: PathBuf) {
        start_writeback(&path);
        self.pending.push_back(path);
        if self.pending.len() > Self::LAG
            && let Some(old) = self.pending.pop_front()
        {
            drop_from_page_cache(&old);
        }
    }
}

impl Drop for WrittenChunks {
    /// At the end of a recording, the last chunks leave the cache too.
    fn drop(&mut self) {
        for path in self.pending.drain(..) {
            drop_from_page_cache(&path);
        }
    }
}

/// Ask the kernel to start writing `path`'s dirty pages to disk, without waiting.
fn start_writeback(path: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(file) = std::fs::File::open(path) {
        use std::os::fd::AsRawFd;
        // SAFETY: a system call on a file descriptor that `file` keeps open for its duration.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}

/// Wait for `path`'s writeback, then drop its pages from the page cache.
fn drop_from_page_cache(path: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(file) = std::fs::File::open(path) {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: system calls on a file descriptor that `file` keeps open for their duration.
        unsafe {
            libc::sync_file_range(
                fd,
                0,
                0,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            );
            libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Pages of `path` in the page cache (`mincore` on a read-only mapping).
    fn cached_pages(path: &Path) -> usize {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let page = 4096;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: a private read-only mapping of `len` bytes of an open file, unmapped before
        // returning; `vec` has one byte per page of it, as mincore requires.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(addr, libc::MAP_FAILED);
            assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
            libc::munmap(addr, len);
        }
        vec.iter().filter(|b| *b & 1 == 1).count()
    }

    fn is_tmpfs(path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: statfs fills the zeroed struct it is given; `c` is a valid C string.
        unsafe {
            let mut s: libc::statfs = std::mem::zeroed();
            libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type == libc::TMPFS_MAGIC
        }
    }

    #[test]
    fn chunks_leave_the_page_cache_lag_chunks_after_they_are_written_and_all_at_the_end() {
        let dir =
            std::env::temp_dir().join(format!("scopepilot-page-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<PathBuf> = (0..WrittenChunks::LAG + 2)
            .map(|i| dir.join(format!("chunk{i}")))
            .collect();
        let mut chunks = WrittenChunks::default();
        for p in &paths {
            std::fs::write(p, vec![7u8; 1 << 20]).unwrap();
            assert!(cached_pages(p) > 0, "a file just written is cached");
            chunks.written(p.clone());
        }
        // On tmpfs the pages are the file itself and stay; everywhere else they go.
        if !is_tmpfs(&dir) {
            assert_eq!(cached_pages(&paths[0]), 0, "dropped LAG chunks later");
            assert_eq!(cached_pages(&paths[1]), 0);
            assert!(cached_pages(&paths[2]) > 0, "still within the lag");
            drop(chunks);
            assert!(
                paths.iter().all(|p| cached_pages(p) == 0),
                "all dropped at the end"
            );
        }
        // The data is intact.
        assert!(
            paths
                .iter()
                .all(|p| std::fs::read(p).unwrap() == vec![7u8; 1 << 20])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
