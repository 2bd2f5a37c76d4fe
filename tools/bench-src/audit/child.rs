//! Runs a child process (`authledger export ...`) with its stdout counted and discarded.
//! Peak memory is the child's `VmHWM` (peak resident set of its own address space, which
//! `exec` starts afresh), polled from `/proc/<pid>/status` every 10 ms until it exits; the
//! child is reaped with `wait4` for its CPU time. (`ru_maxrss` is not used: Linux carries
//! the high-water mark of the pre-`exec` address space, here the bench process's, into it.)

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// `struct rusage` of Linux on 64-bit targets: two `timeval`s, then 14 `long`s.
#[repr(C)]
#[derive(Default)]
struct RUsage {
    utime: [i64; 2],
    stime: [i64; 2],
    /// `ru_maxrss` and the 13 fields after it (unused).
    rest: [i64; 14],
}

extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut RUsage) -> i32;
}

pub struct ChildRun {
    pub seconds: f64,
    pub bytes: u64,
    pub lines: u64,
    /// The last line of stdout (a JSONL export's footer).
    pub last_line: String,
    /// Peak resident set (VmHWM) of the child, KiB.
    pub max_rss_kib: u64,
    pub user_seconds: f64,
    pub system_seconds: f64,
}

/// `VmHWM` of a live process, KiB (`None` once it has exited).
fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn reap(pid: i32) -> anyhow::Result<(i32, RUsage)> {
    let mut status = 0i32;
    let mut usage = RUsage::default();
    loop {
        // SAFETY: `status` and `usage` are valid for writes and have the C layout wait4
        // expects; the pid is our own unreaped child.
        let r = unsafe { wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4({pid}): {err}");
        }
    }
}

/// Runs `cmd` to completion (blocking), stdout read and counted, stderr to `stderr_path`.
pub fn run(mut cmd: Command, stderr_path: &std::path::Path) -> anyhow::Result<ChildRun> {
    let stderr = std::fs::File::create(stderr_path)
        .with_context(|| format!("create {}", stderr_path.display()))?;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    let pid = i32::try_from(child.id()).context("pid")?;
    let Some(mut out) = child.stdout.take() else {
        bail!("child has no stdout");
    };
    let reader = std::thread::spawn(move || -> std::io::Result<(u64, u64, Vec<u8>)> {
        let mut buf = vec![0u8; 1 << 20];
        let (mut bytes, mut lines) = (0u64, 0u64);
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = out.read(&mut buf)?;
            if n == 0 {
                return Ok((bytes, lines, tail));
            }
            let chunk = &buf[..n];
            bytes += n as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            tail.extend_from_slice(chunk);
            if tail.len() > 256 * 1024 {
                tail.drain(..tail.len() - 64 * 1024);
            }
        }
    });
    let exited = Arc::new(AtomicBool::new(false));
    let poller = {
        let exited = exited.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !exited.load(Ordering::Relaxed) {
                match vm_hwm_kib(pid) {
                    Some(kib) => peak = peak.max(kib),
                    None => break,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    // `child` is reaped here, not by `Child::wait`, so wait4 reports its own CPU time.
    let reaped = reap(pid);
    exited.store(true, Ordering::Relaxed);
    let (status, usage) = reaped?;
    let max_rss_kib = poller.join().unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    let (bytes, lines, tail) = match reader.join() {
        Ok(r) => r.context("read child stdout")?,
        Err(_) => bail!("stdout reader thread failed"),
    };
    let exited_ok = (status & 0x7f) == 0 && ((status >> 8) & 0xff) == 0;
    if !exited_ok {
        let log = std::fs::read_to_string(stderr_path).unwrap_or_default();
        bail!(
            "{cmd:?} failed (wait status {status:#x}); stderr:\n{}",
            log.chars()
                .rev()
                .take(4000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        );
    }
    let text = String::from_utf8_lossy(&tail);
    let last_line = text
        .trim_end_matches(['\n', '\r'])
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .to_string();
    let tv = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    Ok(ChildRun {
        seconds,
        bytes,
        lines,
        last_line,
        max_rss_kib,
        user_seconds: tv(usage.utime),
        system_seconds: tv(usage.stime),
    })
}
