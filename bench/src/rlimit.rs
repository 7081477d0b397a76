//! Open-file limit: the connection-heavy benchmarks need one descriptor per WebSocket, far more
//! than the usual soft limit of 1024, so the soft limit is raised to the hard limit at start.

use anyhow::{Result, bail};

/// Raise this process's `RLIMIT_NOFILE` soft limit to its hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` only writes into the struct we pass, which lives for the whole call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("cannot read the open-file limit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `setrlimit` only reads the struct we pass, which lives for the whole call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            bail!(
                "cannot raise the open-file limit to {}: {}; raise it with `ulimit -n` before running",
                limit.rlim_max,
                std::io::Error::last_os_error()
            );
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// Fail early, with the fix, when `needed` descriptors will not fit under `limit`.
pub fn ensure_fds(needed: usize, limit: u64) -> Result<()> {
    // Room for stdio, the runtime's own descriptors and /proc reads.
    const RESERVE: u64 = 64;
    let needed = needed as u64 + RESERVE;
    if needed > limit {
        bail!(
            "this run needs about {needed} open files but the limit is {limit}; raise the hard \
             limit (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE= in systemd) or ask for \
             fewer connections"
        );
    }
    Ok(())
}
