//! Peak resident set size of this process (client and embedded cluster alike).
//!
//! Linux only: the peak is `VmHWM` in `/proc/self/status`, and writing `5` to
//! `/proc/self/clear_refs` resets it to the current RSS (proc(5), "clear_refs"), so that each
//! scenario reports its own peak rather than the largest one so far. Elsewhere both say
//! "unknown".

/// The process's peak RSS in bytes since start or since the last [`reset_peak`]; `None` where
/// it cannot be read.
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_vm_hwm(&status)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Resets the peak to the current RSS; false when the kernel refused (or not on Linux), in
/// which case [`peak_rss_bytes`] keeps the peak since the process started.
pub fn reset_peak() -> bool {
    #[cfg(target_os = "linux")]
    {
        std::fs::write("/proc/self/clear_refs", b"5").is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The `VmHWM:   1234 kB` line of a `/proc/<pid>/status` text, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut fields = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_peak_line_in_kibibytes() {
        let status = "Name:\tmictlanx\nVmPeak:\t  99999 kB\nVmHWM:\t   13592 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(13_592 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS:\t 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t x kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process_peak() {
        assert!(peak_rss_bytes().is_some_and(|b| b > 0));
    }
}
