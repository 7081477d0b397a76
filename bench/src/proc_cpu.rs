//! Process CPU time from `/proc/<pid>/stat` (Linux): user plus system time, the load-independent
//! measure of what a piece of work cost a process (wall clock is noisy on a shared machine).

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// CPU time (utime + stime) process `pid` has used so far.
pub fn cpu_time(pid: impl std::fmt::Display) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {path}: is {pid} the relay's process id (see `pgrep dephy-relay`) and is it still running?"
        )
    })?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("{path} has no `(comm)` field: not a Linux /proc stat file");
    };
    // After the name: state (field 3) ... utime (field 14), stime (field 15).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).with_context(|| format!("{path}: field {} is not a number", i + 3))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks_per_sec() as f64))
}

/// Context switches (voluntary and not) of all of process `pid`'s live threads, from
/// `/proc/<pid>/task/*/status`. A thread that exited between two readings takes its count
/// with it, so a difference is a lower bound. Each switch is a thread that blocked (a hand-off
/// to another thread, a wait on a lock or a full queue) or was preempted: what a pipeline
/// stage costs beyond its own work.
pub fn context_switches(pid: impl std::fmt::Display) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir).with_context(|| {
        format!("cannot list {dir}: is {pid} the relay's process id (see `pgrep dephy-relay`) and is it still running?")
    })?;
    let mut total = 0;
    for task in tasks {
        // A thread may exit while we read: skip it.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else { continue };
        total += switches_in(&status);
    }
    Ok(total)
}

/// Voluntary plus involuntary context switches in one thread's `/proc/.../status` text.
fn switches_in(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|line| {
            let value = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))?;
            value.trim().parse::<u64>().ok()
        })
        .sum()
}

/// The kernel's clock ticks per second (`USER_HZ`), the unit of utime and stime.
fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let pid = std::process::id();
        let before = cpu_time(pid).unwrap();
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_time(pid).unwrap() > before, "50 ms of spinning left utime+stime unchanged");
    }

    /// Counted on this thread: the process-wide sum loses the counts of threads that exit
    /// meanwhile (other tests running in parallel), so its difference can come out short.
    #[test]
    fn context_switches_count_a_thread_that_blocks() {
        let own = || switches_in(&std::fs::read_to_string("/proc/thread-self/status").unwrap());
        let before = own();
        // Each sleep blocks the thread: at least one voluntary switch apiece.
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let after = own();
        assert!(after >= before + 20, "20 sleeps counted {} switches", after - before);
        // The process's sum covers every live thread, this one included.
        assert!(context_switches(std::process::id()).unwrap() >= after);
    }
}
