//! nginx answering `return 200` to everything: the reference line of
//! `seckill-bench compare --variant nginx`, as in `bench/compare-nginx.sh`
//! (2 workers, reuseport, keep-alive for ever, no access log). It receives
//! the same buys over the same connections and answers each with a body the
//! size of seckill's 200, so the ratio says how far the whole sale is from a
//! server that does no work at all.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What nginx answers: a 200 shaped like seckill's order confirmation.
const BODY: &str = r#"{"order_id":"1796049453000012345","pay_deadline_ms":1796050053000}"#;

/// A running nginx, stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx on a free loopback port in a fresh directory.
    pub fn return_200() -> io::Result<Nginx> {
        let dir = std::env::temp_dir().join(format!("seckill-bench-nginx-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(&dir, port))?;
        let binary = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{binary}: {e} (apt-get install nginx-light)")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut nginx = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() >= deadline || nginx.child.try_wait()?.is_some() {
                let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
                return Err(io::Error::other(format!("nginx did not listen on {addr}: {}", log.trim())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "worker_processes 2;\nworker_rlimit_nofile 65536;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
         events {{ worker_connections 32768; }}\n\
         http {{\n    access_log off;\n    keepalive_requests 10000000;\n    client_body_buffer_size 16k;\n\
         \x20   client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};\n\
         \x20   uwsgi_temp_path {dir}; scgi_temp_path {dir};\n\
         \x20   server {{\n        listen 127.0.0.1:{port} reuseport;\n\
         \x20       location / {{ default_type application/json; return 200 '{BODY}'; }}\n    }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_answers_everything_with_the_body() {
        let text = config(Path::new("/tmp/x"), 8080);
        assert!(text.contains("listen 127.0.0.1:8080 reuseport;"), "{text}");
        assert!(text.contains(&format!("return 200 '{BODY}'")), "{text}");
        assert!(text.contains("worker_processes 2;"));
    }
}
