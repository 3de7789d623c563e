//! Shared helpers for the process and API tests: a dev network on loopback.
#![allow(dead_code, missing_docs, unreachable_pub)]

use fapiao_core::{keyfile, Genesis, SecretKey};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fapiao"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `fapiao dev` node process on loopback.
pub struct DevNode {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
}

impl DevNode {
    /// Starts (creating on first start) the dev network in `dir`.
    pub fn start(dir: &Path, port: u16) -> DevNode {
        let mut n = DevNode {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        n.spawn();
        n
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spawn(&mut self) {
        let child = Command::new(bin())
            .args([
                "dev",
                "--data",
                self.dir.to_str().unwrap(),
                "--port",
                &self.port.to_string(),
            ])
            .env("FAPIAO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn wait_ready(&self) {
        let start = Instant::now();
        let client = fapiao_api::Client::new(&self.url(), None);
        while start.elapsed() < Duration::from_secs(30) {
            if client.status().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("node did not come up on {}", self.url());
    }

    /// SIGKILL: no clean shutdown at all.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn client_key(&self) -> SecretKey {
        keyfile::from_key_file(&std::fs::read_to_string(self.dir.join("client.key")).unwrap()).unwrap()
    }

    pub fn member_key(&self) -> SecretKey {
        keyfile::from_key_file(&std::fs::read_to_string(self.dir.join("node.key")).unwrap()).unwrap()
    }

    pub fn genesis(&self) -> Genesis {
        Genesis::from_toml(&std::fs::read_to_string(self.dir.join("genesis.toml")).unwrap()).unwrap()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("read.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Runs the CLI with this node's client profile.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(args)
            .env("FAPIAO_CLIENT", self.dir.join("client.toml"))
            .output()
            .unwrap()
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A command's standard output and error, together.
pub fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts that a command succeeded; its output.
pub fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", out(&o));
    out(&o)
}

/// A card payment of `fen` on `chain`, signed by `key`.
pub fn payment(
    network: fapiao_core::NetworkId,
    chain: fapiao_core::MemberCode,
    key: &SecretKey,
    id: &str,
    fen: i64,
) -> fapiao_core::Event {
    use fapiao_core::event::{Currency, EventKind, PaymentMethod, PaymentRecorded};
    fapiao_core::EventBody {
        network,
        chain,
        author: key.public(),
        timestamp: fapiao_core::Timestamp(1),
        kind: EventKind::PaymentRecorded(PaymentRecorded {
            payment_id: id.into(),
            amount: fapiao_core::Fen(fen),
            currency: Currency::Cny,
            method: PaymentMethod::Card,
            terminal_id: "T1".into(),
            external_ref: String::new(),
        }),
    }
    .sign(key)
}

/// The dev network's merchant chain.
pub fn dev_chain() -> fapiao_core::MemberCode {
    fapiao_core::MemberCode::new(110_001).unwrap()
}
