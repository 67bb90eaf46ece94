//! Throwaway `redis-server`s, to stop and restart without touching the shared one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, unique_name};

/// A throwaway `redis-server` on a free port.
///
/// With [`RedisServer::durable`] it keeps its data in an append-only file that is written on
/// every command, so that a stop and restart keeps the queue, as a production Redis with
/// persistence does.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    dir: Option<PathBuf>,
    child: Option<Child>,
}

impl RedisServer {
    /// In memory only: a stop loses everything.
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            dir: None,
            child: None,
        };
        server.restart();
        server
    }

    /// With an append-only file, fsynced on every write.
    pub fn durable() -> Self {
        let dir = std::env::temp_dir().join(unique_name("redis"));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut server = Self {
            port: free_port(),
            dir: Some(dir),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash or a network cut would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (and data) and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null());
        match &self.dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        self.child = Some(
            command
                .spawn()
                .expect("redis-server must be installed (make services)"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0_u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
