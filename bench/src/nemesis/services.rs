//! The backends and the balancer the nemesis owns: a redis-server, a
//! mariadbd and an nginx of its own, each on a free port of 127.0.0.1 with
//! its own directory, killed on drop. Never the shared services on 6379 and
//! 3306: this code only ever kills processes it started.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

/// How long a (re)started service may take to accept connections: InnoDB's
/// crash recovery is the slow one.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The bytes of a service's log quoted when it fails to start.
const LOG_TAIL_BYTES: usize = 2000;

/// Why a service could not be started.
#[derive(Debug)]
pub enum ServiceError {
    Io {
        what: String,
        error: io::Error,
    },
    /// It exited, or did not listen in time; the tail of its log.
    NotReady {
        what: String,
        log: String,
    },
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Io { what, error } => write!(f, "{what}: {error}"),
            ServiceError::NotReady { what, log } => write!(f, "{what} did not start; its log ends:\n{log}"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// The pids of the processes the campaign started and has not reaped. Drops
/// stop them on a normal end or an unwinding panic; release builds abort on
/// a panic instead (no drop runs), so [`kill_children_on_panic`] kills these.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Records a child for the panic hook; [`forget_child`] before reaping it,
/// so that the hook never signals a pid the kernel may have reused.
pub fn track_child(pid: u32) {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner).push(pid);
}

pub fn forget_child(pid: u32) {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner).retain(|&p| p != pid);
}

/// Installs (once) a panic hook that `kill -9`s every tracked child before
/// the previous hook runs.
pub fn kill_children_on_panic() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            for &pid in CHILDREN.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                // SAFETY: kill(2) takes no pointers; the pid is an unreaped child of ours.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            previous(info);
        }));
    });
}

/// A free port on 127.0.0.1 (free when asked; nothing holds it after).
pub fn free_port() -> io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")?.local_addr().map(|a| a.port())
}

/// A server process started from a fixed command line, restartable on the
/// same port and data, killed on drop.
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    program: String,
    args: Vec<String>,
    pub addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts it and waits until its port accepts connections.
    pub fn start(&mut self) -> Result<(), ServiceError> {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| ServiceError::Io { what: format!("starting {}", self.program), error })?;
        track_child(child.id());
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(self.addr).is_err() {
            let exited = self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() >= deadline {
                self.kill9();
                return Err(ServiceError::NotReady { what: self.name.to_string(), log: self.log_tail() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `kill -9` and reap (nothing when it is not running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            forget_child(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL_BYTES);
        let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text[start..].to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn daemon(name: &'static str, program: &str, args: Vec<String>, port: u16, log: PathBuf) -> Daemon {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Daemon { name, program: program.to_string(), args, addr, log, child: None }
}

/// A redis-server as a pure cache (no persistence: a crash forgets all,
/// which is the worst a cache may do), started.
pub fn redis(dir: &Path) -> Result<Daemon, ServiceError> {
    let port = free_port().map_err(|error| ServiceError::Io { what: "a port for Redis".into(), error })?;
    let log = dir.join("redis.log");
    let args = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
        "--logfile",
        &log.display().to_string(),
    ];
    let mut redis = daemon("redis-server", "redis-server", args.map(str::to_string).to_vec(), port, log);
    redis.start()?;
    Ok(redis)
}

/// A fresh MariaDB data directory and mariadbd on it, durable as the
/// contract requires (`innodb_flush_log_at_trx_commit=1`), started.
pub fn mariadb(dir: &Path) -> Result<Daemon, ServiceError> {
    let data = dir.join("mysql");
    let install = Command::new("mariadb-install-db")
        .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .map_err(|error| ServiceError::Io { what: "mariadb-install-db (tests/services installs it)".into(), error })?;
    if !install.status.success() {
        let log = String::from_utf8_lossy(&install.stderr).into_owned();
        return Err(ServiceError::NotReady { what: "mariadb-install-db".into(), log });
    }
    let port = free_port().map_err(|error| ServiceError::Io { what: "a port for MariaDB".into(), error })?;
    let log = dir.join("mysql.err");
    let args = vec![
        "--no-defaults".to_string(),
        "--user=root".into(),
        "--skip-grant-tables".into(),
        "--bind-address=127.0.0.1".into(),
        "--innodb-flush-log-at-trx-commit=1".into(),
        "--innodb-buffer-pool-size=64M".into(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", dir.join("mysql.sock").display()),
        format!("--pid-file={}", dir.join("mysql.pid").display()),
        format!("--log-error={}", log.display()),
        format!("--port={port}"),
    ];
    let mut db = daemon("mariadbd", "mariadbd", args, port, log);
    db.start()?;
    Ok(db)
}

/// nginx balancing round robin over `upstreams` on keep-alive connections,
/// as one process (no master): a kill on drop, or the campaign's own death,
/// leaves no orphaned worker behind.
/// A paused instance is waited for (reads time out after `read_timeout`),
/// and a failed one is not taken out of the rotation, so that every
/// instance keeps meeting buyers whatever the faults did.
pub fn nginx(dir: &Path, upstreams: &[SocketAddr], read_timeout: Duration) -> Result<Daemon, ServiceError> {
    let port = free_port().map_err(|error| ServiceError::Io { what: "a port for nginx".into(), error })?;
    let servers: String = upstreams.iter().map(|a| format!("    server {a} max_fails=0;\n")).collect();
    let root = dir.display();
    let read_s = read_timeout.as_secs().max(1);
    let conf = format!(
        "master_process off;\nworker_processes 1;\nerror_log {root}/error.log warn;\npid {root}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n\
         fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n\
         upstream seckill {{\n{servers}    keepalive 64;\n  }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://seckill;\n\
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
         proxy_connect_timeout 2s;\n      proxy_read_timeout {read_s}s;\n      proxy_send_timeout {read_s}s;\n\
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|error| ServiceError::Io { what: "writing nginx.conf".into(), error })?;
    let program = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let args = vec![
        "-p".to_string(),
        dir.display().to_string(),
        "-c".into(),
        conf_path.display().to_string(),
        "-g".into(),
        "daemon off;".into(),
    ];
    let mut nginx = daemon("nginx", program, args, port, dir.join("error.log"));
    nginx.start()?;
    Ok(nginx)
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("seckill-nemesis-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
