//! Process CPU time from `/proc/<pid>/stat` (Linux): user plus system time, load-independent
//! where wall-clock throughput on a shared machine is not.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// CPU time (`utime + stime`) process `pid` has used so far.
pub fn cpu_time(pid: &str) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {path}: is {pid} the relay's process id (see `pgrep dephy-relay`) and is it still running?"
        )
    })?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("{path} has no `(comm)` field: not a Linux /proc stat file?");
    };
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields.get(i - 3).and_then(|f| f.parse().ok()).with_context(|| format!("{path}: field {i} is not a tick count"))
    };
    let total = ticks(14)? + ticks(15)?;
    // SAFETY: `sysconf` only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_sec <= 0 {
        bail!("cannot read the clock tick rate (sysconf(_SC_CLK_TCK) returned {per_sec})");
    }
    Ok(Duration::from_secs_f64(total as f64 / per_sec as f64))
}
