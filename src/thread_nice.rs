//! Thread niceness: threads whose work may be dropped (learned stages, gRPC subscribers) run
//! below the camera, the ingest, the recording writer and the API, so that when the CPU is
//! short they lose frames by their own counted policies instead of slowing the camera path.

/// Niceness of the thread that feeds one gRPC frame subscriber (encoding, copying): a slow
/// or numerous audience loses its own frames, counted, before the camera path gives way.
pub const SUBSCRIBER_NICE: i32 = 15;

/// Lower the calling thread's priority to `nice` (0-19). Linux niceness is per thread, and
/// lowering it needs no privilege. On other systems the thread keeps its priority. `what`
/// names the thread in the warning logged when the system refuses.
pub fn lower_current_thread(what: &str, nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls about the calling thread's own id; no memory is shared.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if result != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(thread = what, nice, %error, "cannot lower the thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::debug!(thread = what, nice, "thread niceness is only set on Linux");
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
