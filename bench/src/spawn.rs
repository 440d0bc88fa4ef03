//! A `seckill` server started by the bench on the embedded default, for
//! `sale` and `compare` without `--target`: its own temporary data
//! directory, port 0 (the chosen port is read from its `listening on` line),
//! an admin token generated here, and a graceful stop (SIGTERM, then kill)
//! when done. It is still a black box: the bench only runs the binary.

use crate::target::Target;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the server may take to print `listening on`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM'd server may take to exit before it is killed (the
/// server's own `shutdown_grace_ms` default is 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The bytes of the server's log quoted when it fails to start.
const LOG_TAIL_BYTES: usize = 2000;

/// Settings the bench gives every server it starts, before the user's own
/// (`--server-set`, which win): all the load comes from one address, so the
/// per-address limit would measure nothing but itself; paths must outlive the run.
pub const BENCH_SETTINGS: &[&str] = &["limits.per_ip_rps=0", "sale.path_ttl_ms=3600000"];

/// Why the server could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// No binary at the given or the default place.
    NoBinary(String),
    Io(&'static str, io::Error),
    /// It exited, or printed no `listening on` line in time; the log's tail.
    NotListening(String),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoBinary(what) => f.write_str(what),
            SpawnError::Io(what, e) => write!(f, "{what}: {e}"),
            SpawnError::NotListening(log) => write!(f, "seckill did not start listening; its log ends:\n{log}"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// The `seckill` binary: `explicit` (`--seckill`), else `$SECKILL`, else the
/// `seckill` next to this executable (`cargo build` puts both in one folder).
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, SpawnError> {
    if let Some(path) = explicit.map(Path::to_path_buf).or_else(|| std::env::var_os("SECKILL").map(PathBuf::from)) {
        return if path.is_file() {
            // Absolute: servers are started with their own working directory.
            std::fs::canonicalize(&path).map_err(|e| SpawnError::Io("the seckill binary's path", e))
        } else {
            Err(SpawnError::NoBinary(format!("no seckill binary at {}", path.display())))
        };
    }
    let exe = std::env::current_exe().map_err(|e| SpawnError::Io("the bench's own path", e))?;
    let sibling = exe.with_file_name("seckill");
    if sibling.is_file() {
        return Ok(sibling);
    }
    Err(SpawnError::NoBinary(format!(
        "no seckill binary at {} (build it with `cargo build --release -p seckill`, or give --seckill PATH or $SECKILL)",
        sibling.display()
    )))
}

/// A running server, stopped and its directory removed on drop.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    dir: PathBuf,
    pub target: Target,
    pub admin_token: String,
    pub binary: PathBuf,
    /// The `--set` assignments it was started with, in order.
    pub settings: Vec<String>,
}

impl SpawnedServer {
    /// Starts `binary` with the bench's settings and then `sets` (`key=value`
    /// each), on a port of its choosing and with an admin token of its own.
    pub fn start(binary: &Path, sets: &[String]) -> Result<SpawnedServer, SpawnError> {
        let admin_token = random_token().map_err(|e| SpawnError::Io("reading /dev/urandom", e))?;
        SpawnedServer::start_on(binary, "127.0.0.1:0", &admin_token, sets)
    }

    /// [`SpawnedServer::start`] on the address `listen` with `admin_token`:
    /// instances behind a balancer share a token, and one restarted after a
    /// crash must come back on its port.
    pub fn start_on(
        binary: &Path,
        listen: &str,
        admin_token: &str,
        sets: &[String],
    ) -> Result<SpawnedServer, SpawnError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("seckill-bench-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).map_err(|e| SpawnError::Io("creating the data directory", e))?;
        let log = File::create(dir.join("seckill.log")).map_err(|e| SpawnError::Io("creating the log", e))?;
        let mut settings: Vec<String> = vec![format!("server.data_dir={}", dir.join("data").display())];
        settings.extend(BENCH_SETTINGS.iter().map(|s| s.to_string()));
        settings.extend(sets.iter().cloned());
        let mut command = Command::new(binary);
        command.current_dir(&dir).args(["--listen", listen]);
        for set in &settings {
            command.arg("--set").arg(set);
        }
        // Through the environment rather than argv, where `ps` would show it.
        command.env("SECKILL_AUTH_ADMIN_TOKEN", admin_token).env_remove("SECKILL");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| SpawnError::Io("starting seckill", e))?;
        let mut server = SpawnedServer {
            child,
            dir,
            target: Target::parse("http://127.0.0.1/").expect("a constant URL"),
            admin_token: admin_token.to_string(),
            binary: binary.to_path_buf(),
            settings,
        };
        let url = server.wait_listening()?;
        server.target = Target::parse(&url).map_err(|e| SpawnError::NotListening(format!("{url}: {e}")))?;
        Ok(server)
    }

    /// Reads stdout until `listening on URL`; a thread keeps draining it after.
    fn wait_listening(&mut self) -> Result<String, SpawnError> {
        let stdout = self.child.stdout.take().ok_or_else(|| SpawnError::NotListening("no stdout".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    // The receiver is gone only if start-up was abandoned.
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => Ok(url),
            Err(_) => Err(SpawnError::NotListening(self.log_tail())),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of the server's log (stderr).
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = File::open(self.dir.join("seckill.log")).and_then(|mut f| f.read_to_string(&mut text));
        let start = text.len().saturating_sub(LOG_TAIL_BYTES);
        let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text[start..].to_string()
    }

    /// SIGTERM, and a kill if it has not exited in [`STOP_TIMEOUT`]. Returns
    /// whether it exited cleanly (status 0) on its own.
    pub fn stop(mut self) -> bool {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        // SAFETY: kill(2) takes no pointers; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop_inner();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 32 hexadecimal characters from the kernel's random source.
pub fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_missing_binary_is_named() {
        let err = find_binary(Some(Path::new("/nonexistent/seckill"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/seckill"), "{err}");
    }
}
