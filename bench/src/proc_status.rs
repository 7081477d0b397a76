//! Process memory from `/proc/<pid>/status` (Linux): resident set and its high-water mark.

use std::fmt;

use anyhow::{Context, Result};

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: highest resident so far.
    pub hwm: u64,
    /// `RssAnon`: resident anonymous memory (heap, stacks): what the relay itself holds.
    pub anon: u64,
    /// `RssFile`: resident file-backed pages (binary, memory-mapped files).
    pub file: u64,
}

impl Memory {
    /// Memory of process `pid` ("self" for this one).
    pub fn of(pid: &str) -> Result<Self> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {path}: is {pid} the relay's process id (see `pgrep dephy-relay`) and is it still running?"
            )
        })?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().strip_suffix(" kB")?.trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
                .with_context(|| format!("{path} has no {name} line in kB"))
        };
        Ok(Self {
            rss: field("VmRSS")?,
            hwm: field("VmHWM")?,
            anon: field("RssAnon").unwrap_or(0),
            file: field("RssFile").unwrap_or(0),
        })
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB (anon {:.1}, file {:.1}), VmHWM {:.1} MiB",
            mib(self.rss),
            mib(self.anon),
            mib(self.file),
            mib(self.hwm)
        )
    }
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
