//! Shared helpers for the process and API tests: a dev network on loopback.
#![allow(dead_code, missing_docs, unreachable_pub)]

use fapiao_core::{keyfile, Genesis, SecretKey};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for a change it caused to take effect (maintenance switched,
/// a disk filled, a refusal counted) before it fails: generous, because the suite runs
/// on a loaded 2-core machine, and never a measurement of how fast it happens.
#[allow(dead_code)] // Each test crate includes this module and uses part of it.
pub const SETTLE: Duration = Duration::from_secs(30);

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
    /// Extra `fapiao dev` arguments (e.g. `--fee-balance`).
    pub args: Vec<String>,
}

impl DevNode {
    /// Starts (creating on first start) the dev network in `dir`.
    pub fn start(dir: &Path, port: u16) -> DevNode {
        DevNode::start_with(dir, port, &[])
    }

    /// As [`DevNode::start`], with extra `fapiao dev` arguments.
    pub fn start_with(dir: &Path, port: u16, args: &[&str]) -> DevNode {
        let mut n = DevNode {
            dir: dir.to_path_buf(),
            port,
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
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
            .args(&self.args)
            .env("FAPIAO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    /// Where the node's log goes (appended across restarts), beside its data.
    fn log_file(&self) -> std::fs::File {
        std::fs::create_dir_all(&self.dir).unwrap();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("test-node.log"))
            .unwrap()
    }

    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        let client = fapiao_api::Client::new(&self.url(), None);
        while start.elapsed() < Duration::from_secs(30) {
            if client.status().is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.join("test-node.log")).unwrap_or_default();
                panic!("node exited with {status} before coming up:\n{log}");
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

    pub fn operator_key(&self) -> SecretKey {
        keyfile::from_key_file(&std::fs::read_to_string(self.dir.join("operator.key")).unwrap()).unwrap()
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
    /// `fapiao node maintenance on|off` on this node, then a wait longer than the
    /// node's 250 ms poll of the flag.
    pub fn maintenance(&self, state: &str) {
        let config = self.dir.join("node.toml");
        let o = Command::new(bin())
            .args(["node", "maintenance", state, "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
        std::thread::sleep(Duration::from_millis(600));
    }

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
            amount: fapiao_core::Fen::from_fen(fen),
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

/// A POS till streaming `count` card payments `<prefix>-00000`.. (payment i is 100 + i
/// fen) through a durable outbox in `outbox_dir`, while the node is killed with `kill -9`
/// and restarted `kills` times in the middle. Returns once the outbox has delivered
/// everything, asserting the node refused nothing.
pub fn pos_stream(node: &mut DevNode, outbox_dir: &Path, prefix: &str, count: usize, kills: usize) {
    use fapiao_api::{Backoff, Client, Outbox};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let network = node.genesis().network_id();
    let key = node.client_key();
    let client = Client::new(&node.url(), Some(node.token()));
    let outbox = Arc::new(Outbox::open(outbox_dir).unwrap());
    let backoff = Backoff {
        initial_ms: 20,
        max_ms: 300,
    };
    let producing = Arc::new(AtomicBool::new(true));

    // The till: signs and durably queues a payment every ~2 ms.
    let till = {
        let outbox = outbox.clone();
        let producing = producing.clone();
        let prefix = prefix.to_string();
        std::thread::spawn(move || {
            for i in 0..count {
                let e = payment(network, dev_chain(), &key, &format!("{prefix}-{i:05}"), 100 + i as i64);
                outbox.enqueue(&e).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            producing.store(false, Ordering::SeqCst);
        })
    };
    // The sender: flushes continuously, backing off while the node is gone.
    let sender = {
        let outbox = outbox.clone();
        let producing = producing.clone();
        std::thread::spawn(move || {
            let mut attempt = 0;
            while producing.load(Ordering::SeqCst) || outbox.pending().unwrap() > 0 {
                let r = outbox.flush(&client).unwrap();
                assert_eq!(r.failed, 0, "the node refused a payment: {:?}", r.outcomes);
                if r.deferred.is_some() {
                    std::thread::sleep(backoff.wait(attempt, None));
                    attempt += 1;
                } else {
                    attempt = 0;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    // Kill the node in the middle of the stream.
    let pause = Duration::from_millis((count as u64 * 2 / (kills as u64 + 1)).min(1500));
    for _ in 0..kills {
        std::thread::sleep(pause);
        node.kill9();
        std::thread::sleep(Duration::from_millis(500));
        node.spawn();
    }
    till.join().unwrap();
    sender.join().unwrap();
    assert_eq!(outbox.pending().unwrap(), 0);
    assert!(outbox.failed().unwrap().is_empty());
}

/// `fapiao invoice request` arguments: one line of 50.00 at 6% (53.00 with tax) for the
/// buyer "Shanghai Trading Co" on `payment`.
pub fn invoice_request_args<'a>(id: &'a str, payment: &'a str) -> Vec<&'a str> {
    vec![
        "invoice",
        "request",
        "--id",
        id,
        "--payment",
        payment,
        "--buyer-name",
        "Shanghai Trading Co",
        "--line",
        "Oolong tea|1|50.00|6|3070401000000000000",
    ]
}

/// Sets keys of node.toml's `[engine]` table, replacing any it has.
pub fn set_engine(node_toml: &Path, lines: &str) {
    let keys: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .collect();
    let text: String = std::fs::read_to_string(node_toml)
        .unwrap()
        .lines()
        .filter(|l| !keys.contains(&l.split('=').next().unwrap_or("").trim()))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = if text.contains("[engine]") {
        text.replace("[engine]", &format!("[engine]\n{lines}"))
    } else {
        format!("{text}\n[engine]\n{lines}\n")
    };
    std::fs::write(node_toml, text).unwrap();
}

/// Runs `fapiao ARGS` and asserts that it succeeded; its output.
pub fn fapiao_ok(args: &[&str]) -> String {
    ok(Command::new(bin()).args(args).output().unwrap())
}

/// A metric's value on the node at `url` (0 when the node has not set it yet).
pub fn metric_at(url: &str, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{url}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// `fapiao backup --config CONFIG --out OUT`, asserted to succeed; its output.
pub fn take_backup(config: &Path, out: &Path) -> String {
    fapiao_ok(&[
        "backup",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Pays 100.00 as `P{tag}` and requests a 53.00 invoice for it as `R{tag}` with the dev
/// buyer's tax id; the request's output, whatever its outcome.
pub fn pay_and_request(node: &DevNode, tag: &str) -> std::process::Output {
    ok(node.cli(&[
        "pay",
        "--amount",
        "100.00",
        "--method",
        "wechat",
        "--id",
        &format!("P{tag}"),
    ]));
    let (request, payment) = (format!("R{tag}"), format!("P{tag}"));
    let mut args = invoice_request_args(&request, &payment);
    args.extend_from_slice(&["--buyer-tax-id", "91110000600037341L"]);
    node.cli(&args)
}

/// Issues an invoice for a fresh payment and returns (number, check code).
pub fn issue(node: &DevNode, tag: &str) -> (String, String) {
    ok(pay_and_request(node, tag));
    let v: Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/invoices?request_id=R{tag}", node.url()))
        .bearer_auth(node.token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let inv = &v.as_array().unwrap()[0];
    (
        inv["number"].as_str().unwrap().to_string(),
        inv["check_code"].as_str().unwrap().to_string(),
    )
}

pub fn get_bundle(node: &DevNode, number: &str, code: &str, file: &std::path::Path) -> std::process::Output {
    node.cli(&[
        "proof",
        "get",
        number,
        "--check-code",
        code,
        "-o",
        file.to_str().unwrap(),
    ])
}

pub fn verify(node: &DevNode, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let genesis = node.dir.join("genesis.toml");
    Command::new(bin())
        .args(["verify", file.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}
