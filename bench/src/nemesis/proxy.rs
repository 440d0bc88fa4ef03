//! A userspace TCP proxy that breaks connections on command: the nemesis
//! puts one between each instance and each backend (Redis, MariaDB).
//!
//! It forwards bytes both ways, one thread per direction per connection
//! (a handful of pooled backend connections per instance: threads are
//! cheaper to get right here than an event loop). On command it:
//!
//! - **drops** every connection: both sides see an orderly close (FIN);
//! - **resets** every connection: `SO_LINGER` 0, so both sides get an RST;
//! - **delays** every chunk forwarded by a latency, for a while;
//! - **blackholes**: holds every chunk (new connections too) for a while,
//!   then delivers it, as a partition that heals with TCP retransmits would.
//!
//! [`Proxy::heal`] ends a delay or blackhole early; dropping the proxy
//! closes its listener and every connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes read and forwarded at once, per direction.
const CHUNK_BYTES: usize = 16 * 1024;
/// How often a held chunk looks whether the blackhole ended.
const HOLD_POLL: Duration = Duration::from_millis(5);
/// Longest wait for the backend's connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The timed faults in force.
#[derive(Debug, Clone, Copy)]
struct Timed {
    latency: Duration,
    delay_until: Instant,
    blackhole_until: Instant,
}

/// One proxied connection: both sockets, for the commands to act on.
#[derive(Debug)]
struct Link {
    client: TcpStream,
    backend: TcpStream,
    /// Set by a reset: the pumps then close without an orderly FIN.
    reset: AtomicBool,
    /// Set by a drop or reset: the pumps forward nothing more.
    cut: AtomicBool,
    /// Pumps still running; the last one out removes the link.
    pumps: AtomicU8,
}

#[derive(Debug)]
struct Shared {
    backend: SocketAddr,
    timed: Mutex<Timed>,
    links: Mutex<HashMap<u64, Arc<Link>>>,
    next_link: AtomicU64,
    stopping: AtomicBool,
}

/// A running proxy; stops and closes every connection on drop.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `backend`.
    pub fn start(backend: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let shared = Arc::new(Shared {
            backend,
            timed: Mutex::new(Timed { latency: Duration::ZERO, delay_until: now, blackhole_until: now }),
            links: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("nemesis-proxy".into())
            .spawn(move || accept_loop(&listener, &accepting))?;
        Ok(Proxy { addr, shared, acceptor: Some(acceptor) })
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        lock(&self.shared.links).len()
    }

    /// Closes every open connection in order (FIN both ways); returns how many.
    pub fn drop_connections(&self) -> usize {
        self.cut_all(false)
    }

    /// Resets every open connection (RST both ways); returns how many.
    pub fn reset_connections(&self) -> usize {
        self.cut_all(true)
    }

    /// Adds `latency` before each chunk forwarded, for `duration`.
    pub fn delay_for(&self, latency: Duration, duration: Duration) {
        let mut timed = lock(&self.shared.timed);
        timed.latency = latency;
        timed.delay_until = Instant::now() + duration;
    }

    /// Holds every chunk, both ways, for `duration`.
    pub fn blackhole_for(&self, duration: Duration) {
        lock(&self.shared.timed).blackhole_until = Instant::now() + duration;
    }

    /// Ends any delay or blackhole now.
    pub fn heal(&self) {
        let mut timed = lock(&self.shared.timed);
        let now = Instant::now();
        timed.delay_until = now;
        timed.blackhole_until = now;
    }

    fn cut_all(&self, reset: bool) -> usize {
        // Taken out of the map first, so that the sockets' last descriptors
        // close when the pumps exit (for a reset, that is what sends the RST).
        let links: Vec<Arc<Link>> = lock(&self.shared.links).drain().map(|(_, link)| link).collect();
        for link in &links {
            link.cut(reset);
        }
        links.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.heal();
        // Wakes the blocking accept; it sees `stopping` and returns.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut_all(false);
    }
}

impl Link {
    fn cut(&self, reset: bool) {
        if reset {
            self.reset.store(true, Ordering::SeqCst);
            set_linger_zero(&self.client);
            set_linger_zero(&self.backend);
            // Wakes the pumps without sending anything; the RST goes out
            // when they close the last descriptors.
            let _ = self.client.shutdown(Shutdown::Read);
            let _ = self.backend.shutdown(Shutdown::Read);
        } else {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.backend.shutdown(Shutdown::Both);
        }
        self.cut.store(true, Ordering::SeqCst);
    }
}

/// A poisoned lock only means a pump panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor, and a pointer to a live `linger`
    // of the size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        // A failed accept or backend connect closes that client only: the
        // backend being down is one of the faults it lives through.
        let Ok(client) = client else { continue };
        let Ok(backend) = TcpStream::connect_timeout(&shared.backend, CONNECT_TIMEOUT) else { continue };
        let _ = client.set_nodelay(true);
        let _ = backend.set_nodelay(true);
        let _ = open_link(shared, client, backend);
    }
}

fn open_link(shared: &Arc<Shared>, client: TcpStream, backend: TcpStream) -> io::Result<()> {
    let id = shared.next_link.fetch_add(1, Ordering::Relaxed);
    let (client_in, backend_out) = (client.try_clone()?, backend.try_clone()?);
    let (backend_in, client_out) = (backend.try_clone()?, client.try_clone()?);
    let link = Arc::new(Link {
        client,
        backend,
        reset: AtomicBool::new(false),
        cut: AtomicBool::new(false),
        pumps: AtomicU8::new(2),
    });
    lock(&shared.links).insert(id, link.clone());
    for (from, to) in [(client_in, backend_out), (backend_in, client_out)] {
        let (shared, link) = (shared.clone(), link.clone());
        std::thread::Builder::new().name("nemesis-pump".into()).spawn(move || {
            pump(from, to, &shared, &link);
            if link.pumps.fetch_sub(1, Ordering::SeqCst) == 1 {
                lock(&shared.links).remove(&id);
            }
        })?;
    }
    Ok(())
}

/// Forwards `from` to `to` until either side closes or the link is cut.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, link: &Link) {
    let mut chunk = [0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        hold_while_blackholed(shared, link);
        let latency = current_latency(shared);
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        if link.cut.load(Ordering::SeqCst) || to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    if link.reset.load(Ordering::SeqCst) {
        return;
    }
    // Passes a half-close on, so a client's FIN reaches the backend and back.
    let _ = to.shutdown(Shutdown::Write);
}

fn hold_while_blackholed(shared: &Shared, link: &Link) {
    while Instant::now() < lock(&shared.timed).blackhole_until && !link.cut.load(Ordering::SeqCst) {
        std::thread::sleep(HOLD_POLL);
    }
}

fn current_latency(shared: &Shared) -> Duration {
    let timed = lock(&shared.timed);
    if Instant::now() < timed.delay_until { timed.latency } else { Duration::ZERO }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port, one thread per connection.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let _ = io::copy(&mut reader, &mut stream);
                });
            }
        });
        addr
    }

    fn connect(proxy: &Proxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.addr).unwrap();
        // Only a bound on a broken test; no assertion depends on it.
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream
    }

    fn echo(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(bytes)?;
        let mut got = vec![0u8; bytes.len()];
        stream.read_exact(&mut got)?;
        Ok(got)
    }

    /// Waits until the proxy has accepted `n` connections (they are
    /// registered by its accept thread, after the client's connect returns).
    fn wait_connections(proxy: &Proxy, n: usize) {
        while proxy.connections() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn forwards_both_ways() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        assert_eq!(echo(&mut a, b"hello").unwrap(), b"hello");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(echo(&mut b, &big).unwrap(), big);
        assert_eq!(proxy.connections(), 2);
    }

    #[test]
    fn a_drop_closes_in_order() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let mut client = connect(&proxy);
        assert_eq!(echo(&mut client, b"x").unwrap(), b"x");
        assert_eq!(proxy.drop_connections(), 1);
        let mut byte = [0u8; 1];
        assert_eq!(client.read(&mut byte).unwrap(), 0, "an orderly close");
        // New connections are forwarded as before.
        let mut again = connect(&proxy);
        assert_eq!(echo(&mut again, b"y").unwrap(), b"y");
    }

    #[test]
    fn a_reset_resets() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let mut client = connect(&proxy);
        assert_eq!(echo(&mut client, b"x").unwrap(), b"x");
        assert_eq!(proxy.reset_connections(), 1);
        let mut byte = [0u8; 1];
        let err = client.read(&mut byte).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    }

    #[test]
    fn a_delay_adds_latency() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let mut client = connect(&proxy);
        wait_connections(&proxy, 1);
        let latency = Duration::from_millis(150);
        proxy.delay_for(latency, Duration::from_secs(600));
        let started = Instant::now();
        assert_eq!(echo(&mut client, b"slow").unwrap(), b"slow");
        // Both directions wait: a lower bound, which no scheduler can break.
        assert!(started.elapsed() >= 2 * latency, "{:?}", started.elapsed());
        proxy.heal();
        assert_eq!(echo(&mut client, b"fast").unwrap(), b"fast");
    }

    #[test]
    fn a_blackhole_holds_until_healed() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let mut client = connect(&proxy);
        wait_connections(&proxy, 1);
        proxy.blackhole_for(Duration::from_secs(600));
        client.write_all(b"held").unwrap();
        client.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut got = [0u8; 4];
        let err = client.read(&mut got).unwrap_err();
        assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err}");
        proxy.heal();
        client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"held", "delivered once healed");
    }

    #[test]
    fn a_dead_backend_closes_the_client() {
        let gone = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let proxy = Proxy::start(gone).unwrap();
        let mut client = connect(&proxy);
        let mut byte = [0u8; 1];
        assert!(matches!(client.read(&mut byte), Ok(0) | Err(_)));
    }
}
