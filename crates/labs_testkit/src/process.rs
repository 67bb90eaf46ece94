//! Child processes (signals, bounded waits) and a TCP server that never answers.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends `signal` (`TERM`, `KILL`, `INT`, ...) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits for `child` to exit, failing the test after `timeout`.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP server that accepts connections and never answers: a dependency that hangs.
#[derive(Debug)]
pub struct BlackHole {
    pub port: u16,
}

impl BlackHole {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("a bound port").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Self { port }
    }
}
