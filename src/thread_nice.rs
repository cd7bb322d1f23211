//! Thread niceness: the camera path (the camera thread, the ingest thread and the recording
//! writer) runs above everything else when the system allows it, and threads whose work may be
//! dropped (learned stages, gRPC subscribers) run below the API, so that when the CPU is short
//! they lose frames by their own counted policies instead of slowing the camera or the
//! recording.

/// Niceness of the thread that feeds one gRPC frame subscriber (encoding, copying): a slow
/// or numerous audience loses its own frames, counted, before the camera path gives way.
pub const SUBSCRIBER_NICE: i32 = 15;

/// Niceness the camera thread asks for: above everything, the recording writer included. The
/// camera has a few buffers at most (a simulated camera none: it misses its slot), while the
/// writer has a memory budget to catch up from. On Linux a negative niceness needs
/// `CAP_SYS_NICE` or an `RLIMIT_NICE` (systemd `LimitNICE=`); without either the camera path
/// runs at 0, like the API, and the log says so once. Measured on two cores with 50
/// full-frame gRPC clients of a 512x512 @ 100 fps simulated camera: 90 frames/s at niceness
/// 0, 99 at -5 (`scripts/fanout_load.py`). In the soak, with the recording writer at the
/// camera's niceness, the camera missed five times more slots than with the writer below it.
pub const CAMERA_NICE: i32 = -10;

/// Niceness the rest of the camera path asks for: the ingest thread (ring to the `raw` stream
/// and the recording taps) and the recording writer, which must not lose frames either. In
/// the soak, the writer at 0 fell 383 frames behind its budget during a 50-client burst.
pub const CAMERA_PATH_NICE: i32 = -5;

/// Set the calling thread's niceness (Linux niceness is per thread).
fn set_current_thread(nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls about the calling thread's own id; no memory is shared.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "thread niceness is only set on Linux",
    ))
}

/// Lower the calling thread's priority to `nice` (0-19), which needs no privilege. `what`
/// names the thread in the warning logged when the system refuses.
pub fn lower_current_thread(what: &str, nice: i32) {
    if nice == 0 {
        return;
    }
    if let Err(error) = set_current_thread(nice) {
        tracing::warn!(thread = what, nice, %error, "cannot lower the thread's priority");
    }
}

/// Raise the calling thread's priority to `nice` (below 0) if the process may. Otherwise the
/// thread keeps its niceness, and the first refusal in the process is logged as an info line
/// (not a warning: most users run unprivileged) saying what would allow it. Returns whether
/// it was raised.
pub fn raise_current_thread(what: &str, nice: i32) -> bool {
    static REFUSAL_LOGGED: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    match set_current_thread(nice) {
        Ok(()) => {
            tracing::debug!(thread = what, nice, "thread priority raised");
            true
        }
        Err(error) => {
            if !REFUSAL_LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::info!(
                    thread = what,
                    nice,
                    %error,
                    "the camera path keeps normal priority (raising it needs CAP_SYS_NICE or \
                     RLIMIT_NICE, e.g. systemd LimitNICE=-10)"
                );
            }
            false
        }
    }
}

/// Whether this process may raise a thread's priority to `nice`, tried on a scratch thread.
/// For tests and diagnostics.
pub fn may_raise_to(nice: i32) -> bool {
    std::thread::spawn(move || set_current_thread(nice).is_ok())
        .join()
        .unwrap_or(false)
}

/// The niceness of every thread of this process whose name starts with `prefix`, read from
/// `/proc/self/task` (Linux; empty elsewhere). For tests and diagnostics.
pub fn of_threads_named(prefix: &str) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if !comm.trim_end().starts_with(prefix) {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the ")" that ends the name: state is field 3, nice field 19.
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()
        })
        .collect()
}
