//! The system under attack, every part a real process the nemesis owns:
//! redis-server and mariadbd on their own ports, `seckill` instances on
//! Redis + MySQL each through its own two [`Proxy`]s, nginx round robin in
//! front. The faults act on it here, one at a time per part (a lock each:
//! a MariaDB still recovering from one crash is not crashed again).

use super::faults::{Backend, Fault, FaultKind};
use super::proxy::Proxy;
use super::services::{self, Daemon, ServiceError, TempDir, forget_child, free_port, track_child};
use crate::client::Client;
use crate::spawn::{SpawnError, SpawnedServer, random_token};
use crate::target::Target;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest a crashed part may take to come back (MariaDB's recovery, or an
/// instance whose store is itself down at that moment), and the longest
/// the cluster may take to be ready again at rest.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(90);
/// Between two tries of a restart that failed.
const RESTART_RETRY: Duration = Duration::from_millis(250);
/// The database every instance shares.
const DATABASE: &str = "seckill_nemesis";

/// Why the cluster could not be started or brought back.
#[derive(Debug)]
pub enum ClusterError {
    Service(ServiceError),
    Spawn(SpawnError),
    Io(&'static str, io::Error),
    /// A part did not come back within [`RECOVERY_TIMEOUT`].
    NotRecovered(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Service(e) => write!(f, "{e}"),
            ClusterError::Spawn(e) => write!(f, "{e}"),
            ClusterError::Io(what, e) => write!(f, "{what}: {e}"),
            ClusterError::NotRecovered(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for ClusterError {}

impl From<ServiceError> for ClusterError {
    fn from(e: ServiceError) -> Self {
        ClusterError::Service(e)
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub instances: usize,
    pub seckill: PathBuf,
    /// `key=value` settings every instance gets after the nemesis's own.
    pub server_sets: Vec<String>,
    /// How long nginx waits for an instance's answer (a paused one included).
    pub upstream_read_timeout: Duration,
}

/// One `seckill` instance: its fixed address (nginx's upstream) and the
/// process, absent while it is down.
#[derive(Debug)]
struct Instance {
    listen: SocketAddr,
    sets: Vec<String>,
    server: Option<SpawnedServer>,
}

/// An instance's two proxies.
#[derive(Debug)]
struct Proxies {
    redis: Proxy,
    mariadb: Proxy,
}

#[derive(Debug)]
pub struct Cluster {
    instances: Vec<Mutex<Instance>>,
    nginx: Daemon,
    proxies: Vec<Proxies>,
    redis: Mutex<Daemon>,
    mariadb: Mutex<Daemon>,
    seckill: PathBuf,
    pub admin_token: String,
    /// nginx, where buyers and the admin go.
    pub front: Target,
    /// Declared last: removed after every process in it is gone.
    _dir: TempDir,
}

/// A poisoned lock means a fault thread panicked, which the campaign
/// reports anyway; the process handle inside is still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Cluster {
    pub fn start(settings: &ClusterSettings) -> Result<Cluster, ClusterError> {
        let dir = TempDir::new("cluster").map_err(|e| ClusterError::Io("creating the campaign's directory", e))?;
        let sub = |name: &str| -> Result<PathBuf, ClusterError> {
            let path = dir.path().join(name);
            std::fs::create_dir_all(&path).map_err(|e| ClusterError::Io("creating a service's directory", e))?;
            Ok(path)
        };
        let redis = services::redis(&sub("redis")?)?;
        let mariadb = services::mariadb(&sub("mariadb")?)?;
        let admin_token = random_token().map_err(|e| ClusterError::Io("reading /dev/urandom", e))?;
        let secret = random_token().map_err(|e| ClusterError::Io("reading /dev/urandom", e))?;
        let mut proxies = Vec::with_capacity(settings.instances);
        let mut instances = Vec::with_capacity(settings.instances);
        for _ in 0..settings.instances {
            let proxy = |addr| Proxy::start(addr).map_err(|e| ClusterError::Io("starting a proxy", e));
            let pair = Proxies { redis: proxy(redis.addr)?, mariadb: proxy(mariadb.addr)? };
            let port = free_port().map_err(|e| ClusterError::Io("a port for an instance", e))?;
            let mut sets = vec![
                format!("store.url=mysql://root@{}/{DATABASE}", pair.mariadb.addr),
                format!("cache.url=redis://{}/0", pair.redis.addr),
                "cache.key_prefix=nemesis:".to_string(),
                format!("auth.secret={secret}"),
            ];
            sets.extend(settings.server_sets.iter().cloned());
            instances.push(Instance { listen: SocketAddr::from(([127, 0, 0, 1], port)), sets, server: None });
            proxies.push(pair);
        }
        let upstreams: Vec<SocketAddr> = instances.iter().map(|i| i.listen).collect();
        let nginx = services::nginx(&sub("nginx")?, &upstreams, settings.upstream_read_timeout)?;
        let front = Target::parse(&format!("http://{}/", nginx.addr)).map_err(|e| {
            ClusterError::Io("nginx's address", io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
        })?;
        let cluster = Cluster {
            instances: instances.into_iter().map(Mutex::new).collect(),
            nginx,
            proxies,
            redis: Mutex::new(redis),
            mariadb: Mutex::new(mariadb),
            seckill: settings.seckill.clone(),
            admin_token,
            front,
            _dir: dir,
        };
        // One at a time: the first creates the schema the others find.
        for instance in &cluster.instances {
            let mut instance = lock(instance);
            cluster.restart(&mut instance)?;
        }
        Ok(cluster)
    }

    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// Each instance's own address (not through nginx).
    pub fn instance_targets(&self) -> Vec<Target> {
        let addrs: Vec<SocketAddr> = self.instances.iter().map(|i| lock(i).listen).collect();
        addrs.iter().filter_map(|a| Target::parse(&format!("http://{a}/")).ok()).collect()
    }

    /// Carries one fault out; returns once its part is back (or the proxy
    /// has its command).
    pub fn inject(&self, fault: &Fault) -> Result<(), ClusterError> {
        match fault.kind {
            FaultKind::KillInstance => self.kill_instance(fault.instance, fault.hold),
            FaultKind::PauseLong | FaultKind::PauseShort => {
                self.pause_instance(fault.instance, fault.hold);
                Ok(())
            }
            FaultKind::CrashRedis => crash(&self.redis, fault.hold),
            FaultKind::CrashMariadb => crash(&self.mariadb, fault.hold),
            FaultKind::ProxyDrop => {
                self.proxy(fault).drop_connections();
                Ok(())
            }
            FaultKind::ProxyReset => {
                self.proxy(fault).reset_connections();
                Ok(())
            }
            FaultKind::ProxyDelay => {
                self.proxy(fault).delay_for(fault.latency, fault.hold);
                Ok(())
            }
            FaultKind::ProxyBlackhole => {
                self.proxy(fault).blackhole_for(fault.hold);
                Ok(())
            }
        }
    }

    fn proxy(&self, fault: &Fault) -> &Proxy {
        let pair = &self.proxies[fault.instance % self.proxies.len()];
        match fault.backend {
            Backend::Redis => &pair.redis,
            Backend::Mariadb => &pair.mariadb,
        }
    }

    fn kill_instance(&self, index: usize, downtime: Duration) -> Result<(), ClusterError> {
        let mut instance = lock(&self.instances[index % self.instances.len()]);
        if let Some(server) = instance.server.take() {
            kill_and_reap(server);
        }
        std::thread::sleep(downtime);
        self.restart(&mut instance)
    }

    fn pause_instance(&self, index: usize, hold: Duration) {
        let instance = lock(&self.instances[index % self.instances.len()]);
        if let Some(server) = &instance.server {
            signal(server.pid(), libc::SIGSTOP);
            std::thread::sleep(hold);
            signal(server.pid(), libc::SIGCONT);
        }
    }

    /// Starts the instance on its address, trying again while it fails (its
    /// store may be down, or its port not yet released) for a bounded time.
    fn restart(&self, instance: &mut Instance) -> Result<(), ClusterError> {
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        let listen = instance.listen.to_string();
        loop {
            match SpawnedServer::start_on(&self.seckill, &listen, &self.admin_token, &instance.sets) {
                Ok(server) => {
                    track_child(server.pid());
                    instance.server = Some(server);
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => return Err(ClusterError::Spawn(e)),
                Err(_) => std::thread::sleep(RESTART_RETRY),
            }
        }
    }

    /// Ends every proxy's delay or blackhole.
    pub fn heal(&self) {
        for pair in &self.proxies {
            pair.redis.heal();
            pair.mariadb.heal();
        }
    }

    /// Waits until every instance answers `/readyz` 200 (its Redis and its
    /// store reachable), each one asked directly.
    pub fn wait_ready(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        for target in self.instance_targets() {
            let ready = || {
                Client::with_read_timeout(&target, Duration::from_secs(5))
                    .ok()
                    .and_then(|mut c| c.request("GET", "/readyz", None, None).ok())
                    .is_some_and(|r| r.status == 200)
            };
            while !ready() {
                if Instant::now() >= deadline {
                    return Err(ClusterError::NotRecovered(format!("{} not ready at rest", target.url())));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The settings and binaries, for the report.
    pub fn describe(&self) -> String {
        format!(
            "{} instances of {} behind nginx {}; redis-server {}, mariadbd {} (innodb_flush_log_at_trx_commit=1)",
            self.instances.len(),
            self.seckill.display(),
            self.nginx.addr,
            lock(&self.redis).addr,
            lock(&self.mariadb).addr,
        )
    }

    pub fn seckill(&self) -> &Path {
        &self.seckill
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // kill -9 rather than a graceful stop: a paused or cut-off instance
        // would only make the teardown wait, and the checks are done.
        for instance in &self.instances {
            let mut instance = lock(instance);
            if let Some(server) = instance.server.take() {
                kill_and_reap(server);
            }
        }
    }
}

/// `kill -9` a backend and start it again on its port after `downtime`.
fn crash(daemon: &Mutex<Daemon>, downtime: Duration) -> Result<(), ClusterError> {
    let mut daemon = lock(daemon);
    daemon.kill9();
    std::thread::sleep(downtime);
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        match daemon.start() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(ClusterError::Service(e)),
            Err(_) => std::thread::sleep(RESTART_RETRY),
        }
    }
}

/// `kill -9`; the drop reaps it (at once) and removes its directory.
fn kill_and_reap(server: SpawnedServer) {
    forget_child(server.pid());
    signal(server.pid(), libc::SIGKILL);
    drop(server);
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) takes no pointers; the pid is a child of ours that has
    // not been reaped (its handle is held while this runs), so it is not reused.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}
