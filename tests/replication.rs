//! Consortium replication with real processes on loopback: four members, each its own
//! `fapiao node run`, gossiping and syncing over libp2p.
//!
//! The partition test blocks one node's peer port with iptables (the test command runs
//! as root and installs iptables); the node's outgoing dials use its listening port, so
//! the two rules cut all of its peer traffic while its HTTP API keeps answering.

mod common;

use common::{bin, invoice_request_args, metric_at, ok, payment, take_backup, SETTLE};
use fapiao_api::Client;
use fapiao_core::{keyfile, Genesis, MemberCode, SecretKey};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 4;

/// The tests run one at a time: each is four nodes on a two-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
const CONVERGE_SECS: u64 = 90;

struct Node {
    dir: PathBuf,
    http: String,
    p2p_port: u16,
    child: Option<Child>,
}

impl Node {
    fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    fn client(&self) -> Client {
        Client::new(&self.url(), Some(self.token()))
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("read.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn key(&self, file: &str) -> SecretKey {
        keyfile::from_key_file(&std::fs::read_to_string(self.dir.join(file)).unwrap()).unwrap()
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .unwrap();
        let child = Command::new(bin())
            .args(["node", "run", "--config"])
            .arg(self.dir.join("node.toml"))
            .env("FAPIAO_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        let client = Client::new(&self.url(), None);
        let mut last = None;
        while start.elapsed() < Duration::from_secs(60) {
            match client.status() {
                Ok(_) => return,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "node {} did not come up ({last:?}); log:\n{}",
            self.dir.display(),
            self.log()
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn get(&self, path: &str) -> Value {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.url()))
            .bearer_auth(self.token())
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap();
        r.json().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Network {
    _tmp: tempfile::TempDir,
    nodes: Vec<Node>,
    genesis: Genesis,
}

impl Network {
    /// Creates a 4-member network with `fapiao dev --nodes 4 --init-only` and starts
    /// every node.
    fn start() -> Network {
        Network::start_with(&[])
    }

    /// As [`Network::start`], with extra `fapiao dev` arguments. Returns once every node
    /// has recorded its bootstrap events (its client key), which needs its peers up.
    fn start_with(args: &[&str]) -> Network {
        let mut net = Network::create(args);
        for n in &mut net.nodes {
            n.start();
        }
        net.wait_bootstrapped();
        net
    }

    /// Waits until every node has recorded its bootstrap events (its client key), which
    /// needs its peers up.
    fn wait_bootstrapped(&self) {
        let start = Instant::now();
        for (i, n) in self.nodes.iter().enumerate() {
            if self.genesis.config().merchant(self.chain(i)).is_none() {
                continue; // a witness that owns no chain records nothing
            }
            while n.client().status().unwrap().head_height == 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "node {} recorded nothing:\n{}",
                    i + 1,
                    n.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Creates the network's files without starting a node: `N` merchants that witness,
    /// unless `args` says otherwise.
    fn create(args: &[&str]) -> Network {
        let tmp = tempfile::tempdir().unwrap();
        let n = N.to_string();
        let default: &[&str] = if args.contains(&"--nodes") {
            &[]
        } else {
            &["--nodes", &n]
        };
        let out = Command::new(bin())
            .args(["dev", "--init-only", "--data"])
            .arg(tmp.path())
            .args(default)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let nodes: Vec<Node> = (1..)
            .map(|i| tmp.path().join(format!("node{i}")))
            .take_while(|d| d.exists())
            .map(|d| node_at(&d))
            .collect();
        let genesis =
            Genesis::from_toml(&std::fs::read_to_string(tmp.path().join("node1/genesis.toml")).unwrap()).unwrap();
        Network {
            _tmp: tmp,
            nodes,
            genesis,
        }
    }

    /// Node `i`'s member: the members that run nodes, in code order, are the nodes in
    /// order (merchants, then the tax office's node).
    fn chain(&self, i: usize) -> MemberCode {
        let runs = self
            .genesis
            .config()
            .members()
            .iter()
            .filter(|m| self.genesis.config().runs_node(m.code));
        runs.map(|m| m.code).nth(i).expect("a member per node")
    }

    /// Submits `count` payments to node `i`'s own chain, signed by its client key.
    fn pay(&self, i: usize, tag: &str, count: usize) {
        let n = &self.nodes[i];
        let key = n.key("client.key");
        let events: Vec<_> = (0..count)
            .map(|k| {
                payment(
                    self.genesis.network_id(),
                    self.chain(i),
                    &key,
                    &format!("{tag}-{i}-{k}"),
                    100 + k as i64,
                )
            })
            .collect();
        for chunk in events.chunks(500) {
            let r = n.client().submit_batch(chunk).unwrap();
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["refused"], 0, "refused: {}", v["results"][0]);
        }
        // Return once the owner has them in a block, so heads have moved.
        let last = events.last().unwrap().id();
        let start = Instant::now();
        while n.client().event_status(&last).unwrap().status == "pending" {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "events stay pending on node {}",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every running node (of `among`) holds every chain it may read at the owner's head,
    /// fully certified, with the same head hash and state root.
    fn converged(&self, among: &[usize]) -> Result<(), String> {
        let mut heads: Vec<(u64, String, String)> = Vec::new();
        for c in 0..self.nodes.len() {
            if self.genesis.config().merchant(self.chain(c)).is_none() {
                continue;
            }
            let chain = self.chain(c).to_string();
            // A stopped owner cannot extend its chain: then the target is the highest
            // height any running node holds.
            let height = if among.contains(&c) {
                self.nodes[c].client().status().map_err(|e| e.to_string())?.head_height
            } else {
                let mut h = 0;
                for &i in among {
                    let st = self.nodes[i].client().status().map_err(|e| e.to_string())?;
                    h = h.max(st.chains.iter().find(|x| x.chain == chain).map_or(0, |x| x.height));
                }
                h
            };
            let mut seen: Option<(String, String)> = None;
            for &i in among {
                if !self.genesis.config().may_read(self.chain(i), self.chain(c)) {
                    continue;
                }
                let st = self.nodes[i].client().status().map_err(|e| e.to_string())?;
                let cs = st
                    .chains
                    .iter()
                    .find(|x| x.chain == chain)
                    .ok_or_else(|| format!("node {i} has no status for chain {chain}"))?;
                if cs.height != height || cs.certified != height {
                    return Err(format!(
                        "node {} holds chain {chain} at {} certified {}, owner at {height}",
                        i + 1,
                        cs.height,
                        cs.certified
                    ));
                }
                if height == 0 {
                    continue;
                }
                let b = self.nodes[i].get(&format!("/v1/chains/{chain}/blocks/{height}"));
                let h = &b["header"];
                let this = (h["hash"].to_string(), h["state_root"].to_string());
                if h["certified"] != Value::Bool(true) {
                    return Err(format!("node {} block {chain}/{height} not certified", i + 1));
                }
                match &seen {
                    None => seen = Some(this),
                    Some(s) if *s != this => {
                        return Err(format!("chain {chain} differs between nodes: {s:?} {this:?}"))
                    }
                    Some(_) => {}
                }
            }
            if let Some((h, r)) = seen {
                heads.push((height, h, r));
            }
        }
        Ok(())
    }

    fn wait_converged(&self, among: &[usize]) {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < Duration::from_secs(CONVERGE_SECS) {
            match self.converged(among) {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let logs: Vec<String> = among
            .iter()
            .map(|i| format!("--- node {}\n{}", i + 1, self.nodes[*i].log()))
            .collect();
        panic!("no convergence in {CONVERGE_SECS} s: {last}\n{}", logs.join("\n"));
    }

    fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }
}

fn node_at(dir: &Path) -> Node {
    let cfg: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("node.toml")).unwrap()).unwrap();
    let http = cfg["http_listen"].as_str().unwrap().to_string();
    let listen = cfg["p2p"]["listen"].as_str().unwrap();
    let p2p_port = listen.rsplit('/').next().unwrap().parse().unwrap();
    Node {
        dir: dir.to_path_buf(),
        http,
        p2p_port,
        child: None,
    }
}

/// Events submitted to each member's own node become certified on all four nodes with
/// identical heads and state roots; a node stopped under load catches up after restart.
#[test]
fn four_members_certify_and_a_stopped_node_catches_up() {
    let _serial = serial();
    let mut net = Network::start();
    for i in 0..N {
        net.pay(i, "a", 200);
    }
    net.wait_converged(&net.all());

    // Stop node 4 hard in the middle of a load on the others; three of four is a quorum.
    for i in 0..N - 1 {
        net.pay(i, "b", 100);
    }
    net.nodes[N - 1].kill9();
    for i in 0..N - 1 {
        net.pay(i, "c", 300);
    }
    net.wait_converged(&[0, 1, 2]);
    net.nodes[N - 1].start();
    net.pay(N - 1, "d", 50);
    net.wait_converged(&net.all());
}

struct Blocked(Vec<Vec<String>>);

impl Blocked {
    fn port(port: u16) -> Blocked {
        let rules: Vec<Vec<String>> = ["--dport", "--sport"]
            .iter()
            .map(|d| {
                ["INPUT", "-p", "tcp", d, &port.to_string(), "-j", "DROP"]
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .collect();
        for r in &rules {
            let st = Command::new("iptables")
                .arg("-A")
                .args(r)
                .status()
                .expect("iptables is installed");
            assert!(st.success(), "iptables -A {r:?}");
        }
        Blocked(rules)
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = Command::new("iptables").arg("-D").args(r).status();
        }
    }
}

/// A node whose peer traffic is blocked falls behind while the others go on, then
/// rejoins and converges once the block is lifted.
#[test]
fn a_partitioned_node_rejoins_and_converges() {
    let _serial = serial();
    let net = Network::start();
    for i in 0..N {
        net.pay(i, "a", 20);
    }
    net.wait_converged(&net.all());
    {
        let _cut = Blocked::port(net.nodes[N - 1].p2p_port);
        for i in 0..N - 1 {
            net.pay(i, "b", 200);
        }
        net.wait_converged(&[0, 1, 2]);
        // The cut-off node saw none of it.
        let c0 = net.chain(0).to_string();
        let st = net.nodes[N - 1].client().status().unwrap();
        let held = st.chains.iter().find(|c| c.chain == c0).map_or(0, |c| c.height);
        let owner_height = net.nodes[0].client().status().unwrap().head_height;
        assert!(
            held < owner_height,
            "the blocked node kept up: {held} of {owner_height}"
        );
    }
    net.wait_converged(&net.all());
}

/// Only genesis members get in: a stranger's key is refused at connection time, a
/// member's key is answered.
#[test]
fn a_non_member_cannot_connect() {
    let _serial = serial();
    let net = Network::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = format!("/ip4/127.0.0.1/tcp/{}", net.nodes[0].p2p_port);
    let stranger = SecretKey::generate();
    let out = rt.block_on(fapiao_net::probe(&addr, &stranger, 5_000)).unwrap();
    assert!(
        matches!(out, fapiao_net::ProbeOutcome::Refused(_)),
        "a stranger was let in: {out:?}"
    );
    let member = net.nodes[1].key("node.key");
    let out = rt.block_on(fapiao_net::probe(&addr, &member, 10_000)).unwrap();
    assert!(
        matches!(out, fapiao_net::ProbeOutcome::Answered(ref h) if h.len() == N),
        "a member was refused: {out:?}"
    );
    let start = Instant::now();
    loop {
        if metric(&net.nodes[0], "fapiao_peer_connections_refused_total") >= 1 {
            break;
        }
        assert!(start.elapsed() < SETTLE, "the refusal is not counted");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A member key that signs two different blocks at one height is caught by every other
/// member: each stores and serves the evidence, freezes the chain, and no two
/// certificates exist for one (chain, height).
#[test]
fn an_equivocating_member_is_detected_everywhere() {
    let _serial = serial();
    let mut net = Network::start();
    for i in 0..N {
        net.pay(i, "a", 30);
    }
    net.wait_converged(&net.all());
    let culprit = N - 1;
    net.nodes[culprit].stop();
    let out = Command::new(bin())
        .args(["drill", "equivocate", "--config"])
        .arg(net.nodes[culprit].dir.join("node.toml"))
        .env("FAPIAO_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let chain = net.chain(culprit).to_string();
    let start = Instant::now();
    for i in 0..N - 1 {
        loop {
            let ev = net.nodes[i].get("/v1/evidence");
            if ev
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["chain"] == Value::String(chain.clone())))
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "node {} has no evidence against {chain}; log:\n{}",
                i + 1,
                net.nodes[i].log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let st = net.nodes[i].client().status().unwrap();
        assert!(
            st.chains.iter().any(|c| c.chain == chain && c.frozen),
            "node {} did not freeze {chain}",
            i + 1
        );
    }
    // One certified block per height of the culprit's chain, the same on every node.
    let height = net.nodes[0]
        .client()
        .status()
        .unwrap()
        .chains
        .iter()
        .find(|c| c.chain == chain)
        .unwrap()
        .height;
    for h in 1..=height {
        let hashes: Vec<Value> = (0..N - 1)
            .map(|i| net.nodes[i].get(&format!("/v1/chains/{chain}/blocks/{h}"))["header"]["hash"].clone())
            .collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "height {h}: {hashes:?}");
    }
    // The others keep working.
    net.pay(0, "z", 10);
    let c0 = net.chain(0).to_string();
    let start = Instant::now();
    loop {
        let owner = net.nodes[0].client().status().unwrap();
        let ok = (1..N - 1).all(|i| {
            net.nodes[i]
                .client()
                .status()
                .unwrap()
                .chains
                .iter()
                .any(|c| c.chain == c0 && c.certified == owner.head_height)
        });
        if ok {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "honest chains stopped certifying"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A member's node that gossips a block with a broken signature is refused, penalised
/// and disconnected; the others keep running and keep certifying.
#[test]
fn a_peer_sending_invalid_data_is_disconnected_and_the_rest_go_on() {
    let _serial = serial();
    let mut net = Network::start();
    for i in 0..N {
        net.pay(i, "a", 10);
    }
    net.wait_converged(&net.all());
    let culprit = N - 1;
    net.nodes[culprit].stop();
    let out = Command::new(bin())
        .args(["drill", "bad-signature", "--config"])
        .arg(net.nodes[culprit].dir.join("node.toml"))
        .env("FAPIAO_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let penalties: u64 = (0..N - 1)
        .map(|i| metric(&net.nodes[i], "fapiao_peer_penalties_total"))
        .sum();
    assert!(penalties >= 1, "nobody penalised the invalid block");
    // No evidence: an invalid signature proves nothing against the member.
    for i in 0..N - 1 {
        assert_eq!(net.nodes[i].get("/v1/evidence"), Value::Array(vec![]), "node {}", i + 1);
    }
    for i in 0..N - 1 {
        net.pay(i, "b", 10);
    }
    net.wait_converged(&[0, 1, 2]);
}

/// A process's resident memory now and at its peak, in MiB: `VmRSS` and `VmHWM` from
/// /proc/<pid>/status.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn metric(node: &Node, name: &str) -> u64 {
    metric_at(&node.url(), name)
}

/// How much an honest node's peak resident memory may grow while a member's node sends
/// it garbage. The transport's and the replica's bounds on what one peer can hold (gossip
/// awaiting judgement 64 MiB, unread answers 32 MiB plus one frame, parked blocks 16 MiB
/// per chain, one decode of a 16 MiB frame per request in flight) add up to less.
const GARBAGE_GROWTH_MIB_MAX: u64 = 200;

/// Member 4's key sends garbage on every protocol for 15 s (`fapiao drill garbage`:
/// oversized, truncated and undecodable frames, encodings of the wrong type, validly
/// signed but invalid blocks, attestations, evidence and sync answers) while members 1 to
/// 3 take payments. The honest members penalise it, keep serving and certifying, and
/// their memory stays bounded; member 4's real node then comes back and catches up.
///
/// The honest nodes ban for 1 s instead of 60 s, so the drill gets back in many times.
#[test]
fn a_member_sending_garbage_is_penalised_and_the_others_keep_serving() {
    let _serial = serial();
    let started = Instant::now();
    let mut net = Network::create(&[]);
    for n in &mut net.nodes {
        let path = n.dir.join("node.toml");
        let mut cfg: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg["p2p"]
            .as_table_mut()
            .unwrap()
            .insert("ban_ms".into(), toml::Value::Integer(1_000));
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        n.start();
    }
    net.wait_bootstrapped();
    // Member 1's chain gets large blocks: the drill asks for them and never reads.
    net.pay(0, "big", 3000);
    for i in 0..N {
        net.pay(i, "a", 50);
    }
    net.wait_converged(&net.all());
    let culprit = N - 1;
    let honest = [0, 1, 2];
    net.nodes[culprit].stop();
    let pids: Vec<u32> = honest
        .iter()
        .map(|&i| net.nodes[i].child.as_ref().unwrap().id())
        .collect();
    let before: Vec<(u64, u64)> = pids.iter().map(|p| memory_mib(*p)).collect();

    let seconds = 15;
    let drill = Command::new(bin())
        .args(["drill", "garbage", "--seconds", &seconds.to_string(), "--config"])
        .arg(net.nodes[culprit].dir.join("node.toml"))
        .env("FAPIAO_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Sample resident memory every 200 ms while the drill runs.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sampling, pids) = (sampling.clone(), pids.clone());
        std::thread::spawn(move || {
            let mut peak = vec![0u64; pids.len()];
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                for (p, pid) in peak.iter_mut().zip(&pids) {
                    *p = (*p).max(memory_mib(*pid).0);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            peak
        })
    };
    // Payments go on under attack; every node answers its health check.
    let attack = Instant::now();
    let mut round = 0;
    while attack.elapsed() < Duration::from_secs(seconds) {
        for &i in &honest {
            net.pay(i, &format!("g{round}"), 20);
            let health = reqwest::blocking::get(format!("{}/health", net.nodes[i].url())).unwrap();
            assert_eq!(health.status(), 200, "node {} under attack", i + 1);
        }
        round += 1;
    }
    let out = drill.wait_with_output().unwrap();
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    net.wait_converged(&honest);

    let after: Vec<(u64, u64)> = pids.iter().map(|p| memory_mib(*p)).collect();
    for (k, &i) in honest.iter().enumerate() {
        let penalties = metric(&net.nodes[i], "fapiao_peer_penalties_total");
        let refused = metric(&net.nodes[i], "fapiao_peer_connections_refused_total");
        println!(
            "node {}: penalties {penalties}, refused connections {refused}; resident MiB before {} (peak so far {}), \
             sampled peak during {}, after {} (peak {}), bound {} + {GARBAGE_GROWTH_MIB_MAX}",
            i + 1,
            before[k].0,
            before[k].1,
            peak[k],
            after[k].0,
            after[k].1,
            before[k].1,
        );
        assert!(penalties >= 1, "node {} did not penalise the garbage", i + 1);
        assert!(
            after[k].1 <= before[k].1 + GARBAGE_GROWTH_MIB_MAX,
            "node {}: peak resident memory grew from {} to {} MiB",
            i + 1,
            before[k].1,
            after[k].1
        );
        assert_eq!(net.nodes[i].get("/v1/evidence"), Value::Array(vec![]), "node {}", i + 1);
    }
    println!("{round} payment rounds of 20 per honest member were certified during the attack");

    // Member 4's real node comes back and catches up.
    net.nodes[culprit].start();
    net.pay(culprit, "z", 20);
    net.wait_converged(&net.all());
    println!("whole test: {:.1} s", started.elapsed().as_secs_f64());
}

/// The issue's restore: member 1 is restored from a backup taken 3 blocks earlier. Its
/// peers hold blocks it signed above the restored head, so it fetches them, re-executes
/// and stores them before it signs anything; every payment acknowledged after the backup
/// is on its chain again, it produces at the next height, and no node anywhere holds
/// equivocation evidence.
#[test]
fn a_member_restored_from_an_older_backup_recovers_its_chain_from_peers() {
    let _serial = serial();
    let mut net = Network::start();
    net.pay(0, "a", 5);
    net.wait_converged(&net.all());
    let config = net.nodes[0].dir.join("node.toml");
    let backup = net.nodes[0].dir.join("backup-old");
    take_backup(&config, &backup);
    let before = net.nodes[0].client().status().unwrap().head_height;
    for k in 0..3 {
        net.pay(0, &format!("b{k}"), 1);
    }
    net.wait_converged(&net.all());
    assert_eq!(net.nodes[0].client().status().unwrap().head_height, before + 3);

    // The operator restores the old backup and starts the node.
    net.nodes[0].stop();
    let ledger = net.nodes[0].dir.join("ledger");
    std::fs::remove_dir_all(&ledger).unwrap();
    std::fs::rename(&backup, &ledger).unwrap();
    net.nodes[0].start();
    assert_recovers(&net, 0, before + 3);
    assert!(
        net.nodes[0]
            .log()
            .contains("restored from an older backup or started empty"),
        "{}",
        net.nodes[0].log()
    );
    for k in 0..3 {
        let id = format!("b{k}-0-0");
        let p = net.nodes[0].get(&format!("/v1/payments/{id}"));
        assert_eq!(p["payment_id"], id.as_str(), "payment {id} after the restore: {p}");
    }
}

/// Member 2's ledger is deleted and the node started on an empty one: it recovers its
/// whole chain from the peers and goes on.
#[test]
fn a_member_started_with_an_empty_ledger_recovers_its_chain() {
    let _serial = serial();
    let mut net = Network::start();
    net.pay(1, "a", 3);
    net.pay(1, "b", 2);
    net.wait_converged(&net.all());
    let head = net.nodes[1].client().status().unwrap().head_height;
    assert!(head >= 2, "two blocks at least: {head}");
    net.nodes[1].stop();
    std::fs::remove_dir_all(net.nodes[1].dir.join("ledger")).unwrap();
    net.nodes[1].start();
    assert_recovers(&net, 1, head);
    let p = net.nodes[1].get("/v1/payments/a-1-0");
    assert_eq!(p["payment_id"], "a-1-0", "{p}");
}

/// Node `i` reaches height `head` of its own chain without producing, then takes a new
/// payment that every member certifies at the next height, and no node holds evidence.
fn assert_recovers(net: &Network, i: usize, head: u64) {
    let node = &net.nodes[i];
    let start = Instant::now();
    loop {
        let s = node.client().status().unwrap();
        if s.head_height >= head && metric(node, "fapiao_production_held") == 0 {
            assert_eq!(s.head_height, head, "recovered past the peers' head");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not recovered: {s:?}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    net.pay(i, "after", 1);
    net.wait_converged(&net.all());
    let chain = net.chain(i);
    for (k, n) in net.nodes.iter().enumerate() {
        let b = n.get(&format!("/v1/chains/{chain}/blocks/{}", head + 1));
        assert_eq!(b["header"]["certified"], true, "node {}: {b}", k + 1);
        assert_eq!(n.get("/v1/evidence"), Value::Array(vec![]), "node {}", k + 1);
    }
}

/// A fee deposit on one member's chain issues the request that waited for it, as a
/// derived entry: every member re-derives it, certifies the block and holds the same
/// state.
#[test]
fn an_automatic_reissue_after_a_fee_deposit_is_certified_by_every_member() {
    let _serial = serial();
    let net = Network::start_with(&["--fee-balance", "0.10"]);
    let owner = 1;
    let cli = |args: &[&str]| {
        let o = Command::new(bin())
            .args(args)
            .arg("--client")
            .arg(net.nodes[owner].dir.join("client.toml"))
            .output()
            .unwrap();
        ok(o)
    };
    let request = |id: &str, payment: &str| cli(&invoice_request_args(id, payment));
    cli(&["pay", "--amount", "60.00", "--method", "card", "--id", "P1"]);
    cli(&["pay", "--amount", "60.00", "--method", "card", "--id", "P2"]);
    assert!(request("R1", "P1").contains("R1 invoice: ISSUED"));
    let failed = request("R2", "P2");
    assert!(failed.contains("FAILED FEE_BALANCE_TOO_LOW"), "{failed}");
    let text = cli(&["fee", "deposit", "--amount", "1.00", "--id", "D1"]);
    assert!(
        text.contains("re-issued automatically: request R2 -> invoice"),
        "{text}"
    );
    let height: u64 = text
        .split("at height ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no height in: {text}"));
    net.wait_converged(&net.all());
    let chain = net.chain(owner);
    for (i, node) in net.nodes.iter().enumerate() {
        let b = node.get(&format!("/v1/chains/{chain}/blocks/{height}"));
        assert_eq!(b["header"]["certified"], true, "node {}", i + 1);
        let e = &b["entries"];
        assert_eq!(e[0]["kind"], "fee_deposited", "node {}: {b}", i + 1);
        assert_eq!(e[1]["kind"], "invoice_issued", "node {}: {b}", i + 1);
        assert_eq!(e[1]["data"]["request_id"], "R2", "node {}: {b}", i + 1);
    }
}

/// `fapiao dev --nodes 4` starts four processes and prints each node's address.
#[test]
fn dev_nodes_4_prints_four_addresses() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["dev", "--nodes", "4", "--data"])
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut urls = Vec::new();
    let reader = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for line in reader {
        let line = line.unwrap();
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")) {
            urls.push(u.to_string());
        }
        if urls.len() == 4 {
            break;
        }
    }
    assert_eq!(urls.len(), 4);
    let start = Instant::now();
    for u in &urls {
        loop {
            if let Ok(s) = Client::new(u, None).status() {
                if s.peers.len() == 3 {
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{u} did not connect to its 3 peers"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A merchant that is not a witness (node 4; nodes 1 to 3 are merchants that witness,
/// node 5 the tax office, which witnesses and owns no chain) produces its chain,
/// certified by the witnesses, and cannot obtain another merchant's blocks, entries or
/// business records: its node holds none, its API has none to serve, the witnesses never
/// deliver one to it, and a sync request for one, made with its key, is refused; headers
/// and certificates reach it. The witnesses and the tax office hold every chain.
#[test]
fn a_merchant_that_is_not_a_witness_cannot_obtain_another_merchants_data() {
    let _serial = serial();
    let mut net = Network::start_with(&["--nodes", "3", "--merchants", "1", "--tax-office-node"]);
    assert_eq!(net.nodes.len(), 5);
    let (merchant, witness, tax_office) = (3, 0, 4);
    let roles = |i: usize| net.genesis.config().member(net.chain(i)).unwrap().roles.to_string();
    assert_eq!(roles(merchant), "merchant");
    assert_eq!(roles(witness), "witness+merchant");
    assert_eq!(roles(tax_office), "witness+tax_office");
    let merchants = [0, 1, 2, 3];
    for i in merchants {
        net.pay(i, "c", 5);
    }
    net.wait_converged(&net.all());
    // The tax office's node holds every chain and records no event of its own.
    let st = net.nodes[tax_office].client().status().unwrap();
    assert_eq!(st.chains.len(), 4, "{:?}", st.chains);
    let event = payment(
        net.genesis.network_id(),
        net.chain(tax_office),
        &net.nodes[tax_office].key("node.key"),
        "tax",
        100,
    );
    let refused = net.nodes[tax_office].client().submit(&event).unwrap_err().to_string();
    assert!(refused.contains("NO_CHAIN"), "{refused}");

    // Its node holds, reports and serves its own chain only.
    let own = net.chain(merchant).to_string();
    let other = net.chain(witness).to_string();
    let st = net.nodes[merchant].client().status().unwrap();
    let held: Vec<&str> = st.chains.iter().map(|c| c.chain.as_str()).collect();
    assert_eq!(held, vec![own.as_str()]);
    let mine = net.nodes[merchant].get(&format!("/v1/chains/{own}/blocks/1"));
    assert_eq!(mine["header"]["certified"], Value::Bool(true), "{mine}");
    let theirs = reqwest::blocking::Client::new()
        .get(format!("{}/v1/chains/{other}/blocks/1", net.nodes[merchant].url()))
        .bearer_auth(net.nodes[merchant].token())
        .send()
        .unwrap();
    assert_eq!(theirs.status(), 404, "another merchant's block from a merchant's node");
    // A witness holds and serves every chain, the merchant's included.
    let at_witness = net.nodes[witness].get(&format!("/v1/chains/{own}/blocks/1"));
    assert_eq!(at_witness["header"]["hash"], mine["header"]["hash"]);

    // In place of its node, its key on the peer network: what the witnesses send it.
    net.nodes[merchant].stop();
    let key = net.nodes[merchant].key("node.key");
    let listen = format!("/ip4/127.0.0.1/tcp/{}", net.nodes[merchant].p2p_port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let me = net.chain(merchant);
    let peer = net.chain(witness);
    let seen = rt.block_on(async {
        let p2p = fapiao_net::start(
            fapiao_net::NetConfig::new(vec![listen], 4 * 1024 * 1024),
            &net.genesis,
            net.genesis.config(),
            me,
            &key,
        )
        .unwrap();
        let mut seen = Seen::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut asked = false;
        while Instant::now() < deadline && !(seen.done() && asked) {
            while let Ok(ev) = p2p.events.try_recv() {
                seen.take(ev, peer, me);
            }
            if seen.connected && !asked {
                asked = true;
                // Wait for gossip subscriptions, then ask and make the witness produce.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let other_chain = peer;
                for request in [
                    fapiao_net::Request::Blocks {
                        chain: other_chain,
                        from: 1,
                        to: 32,
                    },
                    fapiao_net::Request::Blocks {
                        chain: me,
                        from: 1,
                        to: 32,
                    },
                    fapiao_net::Request::Certificates {
                        chain: other_chain,
                        from: 1,
                        to: 32,
                    },
                    fapiao_net::Request::Heads,
                ] {
                    p2p.commands
                        .send(fapiao_net::Command::Request(peer, request))
                        .await
                        .unwrap();
                }
                tokio::task::block_in_place(|| net.pay(witness, "during", 5));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    });
    assert!(seen.not_entitled, "the witness refused blocks of its chain: {seen:?}");
    assert!(seen.own_blocks > 0, "its own chain's blocks come back to it: {seen:?}");
    assert!(
        seen.certificates > 0,
        "certificates of another chain are public: {seen:?}"
    );
    assert_eq!(seen.heads, 4, "heads of every chain are public: {seen:?}");
    assert!(seen.headers > 0, "headers of another chain reach it: {seen:?}");
    assert_eq!(seen.foreign_blocks, 0, "a block of another chain reached it: {seen:?}");
    drop(rt);

    // Its real node comes back and its chain goes on.
    net.nodes[merchant].start();
    net.pay(merchant, "after", 3);
    net.wait_converged(&net.all());
}

/// What the merchant's key saw on the peer network.
#[derive(Debug, Default)]
struct Seen {
    connected: bool,
    not_entitled: bool,
    own_blocks: usize,
    certificates: usize,
    heads: usize,
    headers: usize,
    foreign_blocks: usize,
}

impl Seen {
    fn take(&mut self, ev: fapiao_net::NetEvent, witness: MemberCode, me: MemberCode) {
        use fapiao_net::{Gossip, NetEvent, Request, Response};
        match ev {
            NetEvent::Connected(m) if m == witness => self.connected = true,
            NetEvent::Gossip {
                gossip: Gossip::Header(h),
                ..
            } if h.body.chain == witness => self.headers += 1,
            NetEvent::Block { block, .. } if block.header.body.chain != me => self.foreign_blocks += 1,
            NetEvent::Response { request, response, .. } => match (request, response) {
                (Request::Blocks { chain, .. }, Response::NotEntitled) if chain == witness => self.not_entitled = true,
                (Request::Blocks { chain, .. }, Response::Blocks(b)) => {
                    if chain == me {
                        self.own_blocks += b.len();
                    } else {
                        self.foreign_blocks += b.len();
                    }
                }
                (Request::Certificates { .. }, Response::Certificates(c)) => self.certificates += c.len(),
                (Request::Heads, Response::Heads(h)) => self.heads = h.len(),
                _ => {}
            },
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.not_entitled && self.own_blocks > 0 && self.certificates > 0 && self.heads > 0 && self.headers > 0
    }
}

/// A proof is served while the chain's newest block awaits its certificate: its status
/// is proven as of the newest certified block, never a 503 because of the head.
#[test]
fn a_proof_is_served_while_the_newest_block_awaits_its_certificate() {
    let _serial = serial();
    let mut net = Network::start();
    let owner = 0;
    let profile = net.nodes[owner].dir.join("client.toml");
    let cli = |args: &[&str]| {
        let o = Command::new(bin())
            .args(args)
            .arg("--client")
            .arg(&profile)
            .output()
            .unwrap();
        ok(o)
    };
    cli(&["pay", "--amount", "60.00", "--method", "card", "--id", "P1"]);
    assert!(cli(&invoice_request_args("R1", "P1")).contains("R1 invoice: ISSUED"));
    net.wait_converged(&net.all());
    let inv = &net.nodes[owner].get("/v1/invoices?request_id=R1")[0];
    let number = inv["number"].as_str().unwrap().to_string();
    let code = inv["check_code"].as_str().unwrap().to_string();
    let certified = net.nodes[owner].get("/v1/status")["certified_height"].as_u64().unwrap();

    // Two of four down: no quorum, so the owner's next block stays uncertified.
    net.nodes[2].kill9();
    net.nodes[3].kill9();
    net.pay(owner, "late", 1);
    let status = net.nodes[owner].get("/v1/status");
    assert!(
        status["head_height"].as_u64().unwrap() > status["certified_height"].as_u64().unwrap(),
        "the head must await its certificate: {status}"
    );
    let file = net.nodes[owner].dir.join("r1.bundle");
    let text = cli(&[
        "proof",
        "get",
        &number,
        "--check-code",
        &code,
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        text.contains(&format!("status as of block {certified} ")),
        "proven as of the newest certified block {certified}: {text}"
    );
    let genesis = net.nodes[owner].dir.join("genesis.toml");
    let o = Command::new(bin())
        .args(["verify", file.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()])
        .output()
        .unwrap();
    let text = ok(o);
    assert!(text.starts_with("VALID") && text.contains("status    issued"), "{text}");
}

/// Without a quorum a chain's certification stops. Its owner then cuts blocks at the
/// certify pace (`certify_wait_ms`, a second) instead of every block interval, so the
/// events that trickle in share a few larger blocks; none is lost or left pending, and
/// once the witnesses are back every block is certified.
#[test]
fn a_chain_awaiting_certificates_cuts_fewer_larger_blocks_and_loses_nothing() {
    let _serial = serial();
    let mut net = Network::start();
    net.pay(0, "a", 1);
    net.wait_converged(&net.all());
    net.nodes[2].kill9();
    net.nodes[3].kill9();
    let head = |n: &Node| n.get("/v1/status")["head_height"].as_u64().unwrap();
    let before = head(&net.nodes[0]);
    let key = net.nodes[0].key("client.key");
    let events: Vec<_> = (0..30)
        .map(|k| {
            payment(
                net.genesis.network_id(),
                net.chain(0),
                &key,
                &format!("trickle-{k}"),
                100 + k,
            )
        })
        .collect();
    let client = net.nodes[0].client();
    for e in &events {
        let r = client.submit_batch(std::slice::from_ref(e)).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap()["refused"], 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = Instant::now();
    for e in &events {
        while client.event_status(&e.id()).unwrap().status == "pending" {
            assert!(start.elapsed() < Duration::from_secs(30), "an event stays pending");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let blocks = head(&net.nodes[0]) - before;
    // One block per 100 ms interval would be about 30.
    assert!(
        (1..=10).contains(&blocks),
        "30 events over 3 s with no certificates: {blocks} blocks"
    );
    net.nodes[2].start();
    net.nodes[3].start();
    net.wait_converged(&net.all());
    let status = net.nodes[0].get("/v1/status");
    assert_eq!(status["certified_height"], status["head_height"], "{status}");
    // Every block node 1 committed is observed once in the certification histogram, and
    // those that waited for the witnesses' return waited more than a second.
    let observed = metric(&net.nodes[0], "fapiao_certification_seconds_count");
    assert_eq!(observed, status["head_height"].as_u64().unwrap());
    let bucket = |le: &str| {
        metric(
            &net.nodes[0],
            &format!("fapiao_certification_seconds_bucket{{le=\"{le}\"}}"),
        )
    };
    // (The last bucket holds every block: the bucket lines are read.)
    assert_eq!(bucket("+Inf"), observed);
    assert!(observed - bucket("1.0") >= 1);
}

/// `fapiao --client PROFILE ARGS` in node `dir`, asserted to succeed; its output.
fn cli_in(dir: &Path, args: &[&str]) -> String {
    let profile = dir.join("client.toml");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--client", profile.to_str().unwrap()]);
    common::fapiao_ok(&all)
}

/// A proposal's output: the change is in an admin block (certified already, or about
/// to be).
fn assert_proposed(out: &str, epoch: u32) {
    let ok = ["committed", "certified"]
        .iter()
        .any(|s| out.contains(&format!("configuration change for epoch {epoch}: {s}")));
    assert!(ok, "{out}");
}

/// Imports the admin chain's certified blocks into the node directory `dir`, as a member
/// added, rotated or reset while its node was stopped does: `consortium export` on node 1,
/// then `node join` there.
fn import_configuration(net: &Network, dir: &Path) -> String {
    let export = dir.join("configuration.bin");
    cli_in(
        &net.nodes[0].dir,
        &["consortium", "export", "--out", export.to_str().unwrap()],
    );
    common::fapiao_ok(&[
        "node",
        "join",
        "--config",
        dir.join("node.toml").to_str().unwrap(),
        "--configuration",
        export.to_str().unwrap(),
    ])
}

/// Waits until every node of `among` knows epoch `epoch`.
fn wait_epoch(net: &Network, among: &[usize], epoch: u32) {
    let start = Instant::now();
    for &i in among {
        while net.nodes[i].client().status().map_or(0, |s| s.epoch) < epoch {
            assert!(
                start.elapsed() < Duration::from_secs(CONVERGE_SECS),
                "node {} never learned epoch {epoch}:\n{}",
                i + 1,
                net.nodes[i].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Pays and requests an invoice on `node` (with its client profile) and returns
/// (number, check code) once issued and certified: a bundle proves status as of the
/// newest certified height, which until then does not include the invoice.
fn issue_on(node: &Node, tag: &str) -> (String, String) {
    let payment = format!("P{tag}");
    let request = format!("R{tag}");
    cli_in(
        &node.dir,
        &["pay", "--amount", "100.00", "--method", "wechat", "--id", &payment],
    );
    let mut args = invoice_request_args(&request, &payment);
    args.extend_from_slice(&["--buyer-tax-id", "91110000600037341L"]);
    let out = cli_in(&node.dir, &args);
    assert!(out.contains("ISSUED"), "{out}");
    let v = node.get(&format!("/v1/invoices?request_id={request}"));
    let inv = &v.as_array().unwrap_or_else(|| panic!("{v}"))[0];
    let number = inv["number"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let h = node.get(&format!("/v1/invoices/{number}/history"));
        let entries = h["entries"].as_array().unwrap_or_else(|| panic!("{h}"));
        if !entries.is_empty() && entries.iter().all(|e| e["certified"] == true) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(CONVERGE_SECS),
            "invoice {number} was never certified: {h}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (number, inv["check_code"].as_str().unwrap().to_string())
}

/// Fetches the invoice's bundle from the node in `dir` and verifies it offline against
/// the genesis file alone; the verifier's output.
fn verified_offline(dir: &Path, genesis: &Path, number: &str, code: &str) -> String {
    let file = dir.join(format!("{number}.bundle"));
    cli_in(
        dir,
        &[
            "proof",
            "get",
            number,
            "--check-code",
            code,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    common::fapiao_ok(&["verify", file.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()])
}

/// Writes a node directory for a member the admin is about to add: a fresh key, the
/// network's genesis file, node.toml on free ports and a client profile signing with the
/// member key. Returns the directory and the member's peer address.
fn new_member_dir(net: &Network, name: &str) -> (PathBuf, String) {
    let dir = net.nodes[0].dir.parent().unwrap().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    common::fapiao_ok(&["keygen", "--out", dir.join("node.key").to_str().unwrap()]);
    std::fs::copy(net.nodes[0].dir.join("genesis.toml"), dir.join("genesis.toml")).unwrap();
    std::fs::write(dir.join("read.token"), "a-read-token-for-the-new-member\n").unwrap();
    let (http, p2p) = (common::free_port(), common::free_port());
    let address = format!("/ip4/127.0.0.1/tcp/{p2p}");
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "data_dir = \".\"\ngenesis = \"genesis.toml\"\nmember_key = \"node.key\"\n\
             http_listen = \"127.0.0.1:{http}\"\nread_token_file = \"read.token\"\n\n[p2p]\nlisten = \"{address}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "node_url = \"http://127.0.0.1:{http}\"\nread_token = \"a-read-token-for-the-new-member\"\n\
             key = \"node.key\"\nmember_key = \"node.key\"\n"
        ),
    )
    .unwrap();
    (dir, address)
}

/// The consortium lives without a new genesis: a merchant joins a running network,
/// produces, and its invoice verifies offline with the original genesis file; a
/// member's key is rotated and its chain continues under the new key, certified; a
/// member is removed, its chain closes, and its earlier invoice still verifies.
#[test]
fn members_join_rotate_keys_and_leave_by_epochs() {
    let _serial = serial();
    let mut net = Network::start_with(&["--nodes", "4", "--admin-node"]);
    let admin = net.nodes[4].dir.clone();
    let genesis_file = net.nodes[0].dir.join("genesis.toml");
    let witnesses = [0, 1, 2, 3, 4];

    // Joining: the admin adds a merchant; the new node imports the configuration and runs.
    let (new_dir, address) = new_member_dir(&net, "joined");
    let key_file = new_dir.join("node.key");
    let out = cli_in(
        &admin,
        &[
            "consortium",
            "propose",
            "add-member",
            "--code",
            "110005",
            "--name",
            "Joined Merchant",
            "--roles",
            "merchant",
            "--key",
            key_file.to_str().unwrap(),
            "--address",
            &address,
        ],
    );
    assert_proposed(&out, 1);
    wait_epoch(&net, &witnesses, 1);
    let joined = import_configuration(&net, &new_dir);
    assert!(joined.contains("member 110005 of epoch 1"), "{joined}");
    let mut newcomer = node_at(&new_dir);
    newcomer.start();
    let (number, code) = issue_on(&newcomer, "J1");
    let v = verified_offline(&new_dir, &genesis_file, &number, &code);
    assert!(v.starts_with("VALID") && v.contains("certified by a quorum"), "{v}");
    // The witnesses hold the new chain, certified.
    let chain_of = |i: usize| {
        net.nodes[i]
            .client()
            .status()
            .unwrap()
            .chains
            .into_iter()
            .find(|c| c.chain == "110005")
            .map_or(0, |c| c.certified)
    };
    let start = Instant::now();
    while (0..4).any(|i| chain_of(i) < 2) {
        assert!(
            start.elapsed() < Duration::from_secs(CONVERGE_SECS),
            "witnesses lack chain 110005"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Key rotation: member 110002's node stops, the admin rotates its key, and the node
    // comes back with the new key after importing the newer configuration.
    net.nodes[1].stop();
    let node2 = net.nodes[1].dir.clone();
    common::fapiao_ok(&["keygen", "--out", node2.join("new.key").to_str().unwrap()]);
    let out = cli_in(
        &admin,
        &[
            "consortium",
            "propose",
            "rotate-key",
            "--member",
            "110002",
            "--key",
            node2.join("new.key").to_str().unwrap(),
        ],
    );
    assert_proposed(&out, 2);
    wait_epoch(&net, &[0, 2, 3, 4], 2);
    std::fs::copy(node2.join("new.key"), node2.join("node.key")).unwrap();
    // Started with the new key on a ledger that knows only epoch 1, the node refuses.
    let refused = Command::new(bin())
        .args(["node", "run", "--config", node2.join("node.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !refused.status.success() && common::out(&refused).contains("not a member of epoch 1"),
        "{}",
        common::out(&refused)
    );
    let _ = import_configuration(&net, &node2);
    net.nodes[1].start();
    let (number2, code2) = issue_on(&net.nodes[1], "K1");
    let v = verified_offline(&node2, &genesis_file, &number2, &code2);
    assert!(v.starts_with("VALID"), "{v}");
    let head = net.nodes[1].client().status().unwrap().head_height;
    let b = net.nodes[1].get(&format!("/v1/chains/110002/blocks/{head}"));
    assert_eq!(
        b["header"]["epoch"], 2,
        "the block after the rotation is made in epoch 2: {b}"
    );

    // Leaving: member 110004 issues an invoice, then the admin removes it.
    let (number4, code4) = issue_on(&net.nodes[3], "L1");
    let out = cli_in(&admin, &["consortium", "propose", "remove-member", "--code", "110004"]);
    assert_proposed(&out, 3);
    wait_epoch(&net, &[0, 1, 2, 3, 4], 3);
    // Its node stops writing: the chain is closed.
    let client_key = net.nodes[3].key("client.key");
    let start = Instant::now();
    loop {
        let e = payment(
            net.genesis.network_id(),
            net.chain(3),
            &client_key,
            "after-leaving",
            100,
        );
        match net.nodes[3].client().submit(&e) {
            Err(fapiao_api::ClientError::Api { error, .. }) if error.code == "OWN_CHAIN_BEHIND" => break,
            r => assert!(
                start.elapsed() < Duration::from_secs(30),
                "a removed member still admits: {r:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its earlier invoice still verifies, with a bundle from another member's node.
    let v = verified_offline(&net.nodes[0].dir, &genesis_file, &number4, &code4);
    assert!(v.starts_with("VALID"), "{v}");
    let shown = cli_in(&net.nodes[0].dir, &["consortium", "history"]);
    for change in ["add_member 110005", "rotate_key 110002", "remove_member 110004"] {
        assert!(shown.contains(change), "{shown}");
    }
    drop(newcomer);
}

/// Chain recovery: member 110003 signs two blocks at one height and every other node
/// freezes its chain. Its node, started again before anyone acts, admits payments into
/// blocks nobody certifies. The admin resets the chain to its certified prefix under a
/// successor key; the node comes back with that key: its uncertified blocks are set
/// aside, their payments recorded again under the new key and certified everywhere, the
/// evidence stays on record without freezing the chain, and an invoice issued after the
/// reset verifies offline with the original genesis file.
#[test]
fn an_equivocating_members_chain_is_reset_under_a_successor_key_and_certifies_again() {
    let _serial = serial();
    let mut net = Network::start_with(&["--nodes", "4", "--admin-node"]);
    let admin = net.nodes[4].dir.clone();
    let genesis_file = net.nodes[0].dir.join("genesis.toml");
    let culprit = 2;
    let chain = net.chain(culprit).to_string();
    net.pay(culprit, "a", 5);
    net.wait_converged(&net.all());
    net.nodes[culprit].stop();
    let out = Command::new(bin())
        .args(["drill", "equivocate", "--config"])
        .arg(net.nodes[culprit].dir.join("node.toml"))
        .env("FAPIAO_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::out(&out));
    // The merchants witness every chain; the admin's node watches headers only.
    let others = [0, 1, 3];
    let chain_status = |net: &Network, i: usize| {
        net.nodes[i]
            .client()
            .status()
            .unwrap()
            .chains
            .into_iter()
            .find(|c| c.chain == chain)
            .unwrap()
    };
    let start = Instant::now();
    while others.iter().any(|i| !chain_status(&net, *i).frozen) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the chain is not frozen everywhere"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let prefix = chain_status(&net, 0).certified;
    // Started again with the key that equivocated, the node admits payments into blocks
    // that no witness takes.
    net.nodes[culprit].start();
    net.pay(culprit, "f", 3);
    let own = net.nodes[culprit].client().status().unwrap();
    assert!(own.head_height > prefix, "blocks above the certified prefix");
    assert!(others.iter().all(|i| chain_status(&net, *i).certified == prefix));
    net.nodes[culprit].stop();

    // The admin resets the chain to its certified prefix under a successor key.
    let dir = net.nodes[culprit].dir.clone();
    common::fapiao_ok(&["keygen", "--out", dir.join("successor.key").to_str().unwrap()]);
    let out = cli_in(
        &admin,
        &[
            "consortium",
            "propose",
            "reset-chain",
            "--chain",
            &chain,
            "--height",
            &prefix.to_string(),
            "--key",
            dir.join("successor.key").to_str().unwrap(),
        ],
    );
    assert_proposed(&out, 1);
    wait_epoch(&net, &[0, 1, 3, 4], 1);
    let start = Instant::now();
    for i in others {
        // The status shows the replica as of its last tick.
        while chain_status(&net, i).frozen {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "node {} still freezes the reset chain:\n{}",
                i + 1,
                net.nodes[i].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let ev = net.nodes[i].get("/v1/evidence");
        assert!(
            ev.as_array()
                .unwrap()
                .iter()
                .any(|e| e["chain"] == Value::String(chain.clone()) && e["superseded_in_epoch"] == 1),
            "node {}: the evidence is no longer on record: {ev}",
            i + 1
        );
    }
    // The node comes back with the successor key, after importing the configuration.
    std::fs::copy(dir.join("successor.key"), dir.join("node.key")).unwrap();
    let _ = import_configuration(&net, &dir);
    net.nodes[culprit].start();
    assert!(
        net.nodes[culprit].log().contains("set aside"),
        "{}",
        net.nodes[culprit].log()
    );
    // Every payment acknowledged while the chain was frozen is on it again, then
    // certified everywhere.
    let start = Instant::now();
    for k in 0..3 {
        while net.nodes[culprit].get(&format!("/v1/payments/f-{culprit}-{k}"))["payment_id"]
            != format!("f-{culprit}-{k}")
        {
            assert!(
                start.elapsed() < Duration::from_secs(CONVERGE_SECS),
                "payment f-{culprit}-{k} is not recorded again:\n{}",
                net.nodes[culprit].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    net.wait_converged(&net.all());
    let b = net.nodes[0].get(&format!("/v1/chains/{chain}/blocks/{}", prefix + 1));
    assert_eq!(
        (b["header"]["epoch"].clone(), b["header"]["certified"].clone()),
        (Value::from(1), Value::Bool(true)),
        "{b}"
    );
    // And the chain goes on: an invoice issued now verifies with the genesis file alone.
    let (number, code) = issue_on(&net.nodes[culprit], "RESET1");
    let v = verified_offline(&dir, &genesis_file, &number, &code);
    assert!(v.starts_with("VALID") && v.contains("certified by a quorum"), "{v}");
    let shown = cli_in(&net.nodes[0].dir, &["consortium", "history"]);
    assert!(shown.contains(&format!("reset_chain {chain}")), "{shown}");
}
