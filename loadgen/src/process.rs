//! CPU time and resident memory of a process, read from `/proc` (Linux only). The generator
//! samples the server's and its own, so a saturated generator is never mistaken for a
//! saturated server.

use anyhow::Context;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// User plus system CPU seconds, all threads, since the process started.
    pub cpu_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// The anonymous part of it (`RssAnon`: heap, stacks), KiB: what the process allocated,
    /// without the pages of its executable and libraries it has touched so far.
    pub anon_kib: u64,
}

/// Read `/proc/{pid}` (`self` for this process).
pub fn sample(pid: Option<u32>) -> anyhow::Result<Sample> {
    let dir = pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"));
    let stat = std::fs::read_to_string(format!("{dir}/stat"))
        .with_context(|| format!("reading {dir}/stat"))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))
        .with_context(|| format!("reading {dir}/status"))?;
    let ticks = cpu_ticks(&stat).context("parsing stat")?;
    Ok(Sample {
        cpu_s: ticks as f64 / clock_ticks_per_s(),
        rss_kib: status_kib(&status, "VmRSS:").context("no VmRSS in status")?,
        anon_kib: status_kib(&status, "RssAnon:").context("no RssAnon in status")?,
    })
}

/// utime + stime, in clock ticks, from a `/proc/PID/stat` line.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // Fields 14 and 15 of the line are the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A field of `/proc/PID/status` given in kB, such as `VmRSS:`.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let stat = "4242 (tokio (x) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 987654 3210";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn parses_vm_rss_and_rss_anon() {
        let status = "Name:\troundtable\nVmPeak:\t  99 kB\nVmRSS:\t   51234 kB\n\
                      RssAnon:\t    4321 kB\nRssFile:\t   46913 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(51234));
        assert_eq!(status_kib(status, "RssAnon:"), Some(4321));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = sample(None).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.anon_kib > 0 && s.anon_kib <= s.rss_kib);
        assert!(sample(Some(std::process::id())).unwrap().rss_kib > 0);
    }
}
