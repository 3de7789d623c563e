//! `fapiao dev`: a local one-member network that needs no set-up.

use crate::config::{self, ClientProfile, NodeConfig};
use crate::files;
use anyhow::{Context, Result};
use fapiao_core::event::{ClientKeyAuthorized, EventKind, InvoiceType, MerchantPolicy, Permissions};
use fapiao_core::genesis::{Member, Role, Roles};
use fapiao_core::{EventBody, Fen, Genesis, MemberCode, SecretKey, Timestamp};
use std::path::Path;

/// The dev merchant's member code.
pub(crate) const DEV_CHAIN: u32 = 110_001;

fn random_token() -> String {
    let mut b = [0u8; 24];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    hex::encode(b)
}

fn free_port() -> Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `n` distinct free ports on loopback. All are held open until every one is chosen:
/// taking them one at a time could hand the same port out twice (a node's peer port and
/// its API port), which failed that node's start with "address already in use".
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// The dev merchant's opening fee balance: 1,000.00 yuan, 10,000 invoices at 0.10.
pub(crate) const DEV_FEE_BALANCE: Fen = Fen::from_fen(100_000);

/// Creates the dev network under `dir` if it is not there yet, with the merchant's
/// opening fee balance. Returns true if created.
pub(crate) fn init_with(dir: &Path, port: Option<u16>, fee_balance: Fen) -> Result<bool> {
    if dir.join("node.toml").exists() {
        return Ok(false);
    }
    let member = SecretKey::generate();
    let operator = SecretKey::generate();
    let verifier = SecretKey::generate();
    let buyer = SecretKey::generate();
    let mut genesis_members = dev_members(&[(DEV_CHAIN, &member, None, true)], fee_balance);
    genesis_members.extend(dev_others(&operator, &verifier, &buyer, None, None));
    let genesis = dev_genesis_of(genesis_members)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    files::write_key_file(&dir.join("operator.key"), &operator, true)?;
    files::write_key_file(&dir.join("verifier.key"), &verifier, true)?;
    files::write_key_file(&dir.join("buyer.key"), &buyer, true)?;
    // The CLI profile may act as the operator and the verifier too, so every command
    // works on the one-node network. node.toml, written last, marks the network as made.
    write_node(dir, &genesis, DEV_CHAIN, &member, port, None, true)?;
    Ok(true)
}

/// The dev operator and the dev tax office: members that sign events but run no node,
/// so they are not witnesses and the quorum stays that of the merchants who witness.
pub(crate) const DEV_OPERATOR: u32 = 900_001;
/// See [`DEV_OPERATOR`].
pub(crate) const DEV_VERIFIER: u32 = 800_001;
/// The dev buyer: a company that buys from the dev merchants, with a tax id, so booking
/// and red-letter confirmation forms can be tried (invoice it with
/// `--buyer-tax-id 91110000600037341L`). It signs events and runs no node.
pub(crate) const DEV_BUYER: u32 = 700_001;
/// The dev buyer's unified social credit code.
pub(crate) const DEV_BUYER_TAX_ID: &str = "91110000600037341L";

/// The dev operator and tax office. With `tax_office_node`, the tax office also
/// witnesses and runs a node at that peer address (it may read every chain).
fn dev_others(
    operator: &SecretKey,
    verifier: &SecretKey,
    buyer: &SecretKey,
    tax_office_node: Option<String>,
    operator_node: Option<String>,
) -> Vec<Member> {
    let tax_office = match tax_office_node {
        Some(_) => Roles::of(&[Role::Witness, Role::TaxOffice]),
        None => Roles::of(&[Role::TaxOffice]),
    };
    [
        (
            DEV_OPERATOR,
            "Dev Consortium Operator",
            Roles::of(&[Role::Operator]),
            operator,
            operator_node,
        ),
        (DEV_VERIFIER, "Dev Tax Office", tax_office, verifier, tax_office_node),
    ]
    .into_iter()
    .map(|(code, name, roles, key, addr)| Member {
        code: MemberCode::new(code).unwrap_or_else(|| unreachable!()),
        name: name.into(),
        roles,
        key: key.public(),
        addresses: addr.into_iter().collect(),
        policy: None,
        initial_fee_balance: Fen::from_fen(0),
        tax_id: None,
    })
    .chain(std::iter::once(Member {
        code: MemberCode::new(DEV_BUYER).unwrap_or_else(|| unreachable!()),
        name: "Dev Buyer Trading Co.".into(),
        roles: Roles::of(&[Role::Verifier]),
        key: buyer.public(),
        addresses: Vec::new(),
        policy: None,
        initial_fee_balance: Fen::from_fen(0),
        tax_id: Some(DEV_BUYER_TAX_ID.into()),
    }))
    .collect()
}

fn dev_genesis_of(members: Vec<Member>) -> Result<Genesis> {
    Ok(Genesis::new(
        "fapiao-dev".into(),
        crate::now(),
        None,
        Fen::from_fen(10),
        fapiao_core::tax::sample_classifications(),
        members,
    )?)
}

/// Merchant members `(code, key, p2p address, witnesses too)`.
fn dev_members(members: &[(u32, &SecretKey, Option<String>, bool)], fee_balance: Fen) -> Vec<Member> {
    members
        .iter()
        .enumerate()
        .map(|(i, (code, key, addr, witness))| Member {
            code: MemberCode::new(*code).unwrap_or_else(|| unreachable!()),
            name: match (members.len(), witness) {
                (1, _) => "Dev Merchant".into(),
                (_, true) => format!("Dev Merchant {}", i + 1),
                (_, false) => format!("Dev Merchant {} (not a witness)", i + 1),
            },
            roles: if *witness {
                Roles::of(&[Role::Witness, Role::Merchant])
            } else {
                Roles::of(&[Role::Merchant])
            },
            key: key.public(),
            addresses: addr.iter().cloned().collect(),
            policy: Some(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
                max_invoice_total: Fen::from_fen(100_000_000),
                rates: crate::genesis_cmd::default_rate_rules(),
            }),
            initial_fee_balance: fee_balance,
            tax_id: Some(dev_merchant_tax_id(*code)),
        })
        .collect()
}

/// A dev merchant's unified social credit code, the seller id its invoices carry: a
/// Shanghai enterprise (91 310000) whose organisation code is `MA` and the member code,
/// with both check characters.
fn dev_merchant_tax_id(code: u32) -> String {
    fapiao_core::uscc::complete(&format!("91310000MA{code:06}"))
        .unwrap_or_else(|| unreachable!("digits and code letters in every position"))
}

/// Writes one member's node directory: keys, genesis, node.toml, read token, client
/// profile and the bootstrap event that authorises the client key.
// Long: one node's config file, section by section.
fn write_node(
    dir: &Path,
    genesis: &Genesis,
    code: u32,
    member: &SecretKey,
    port: Option<u16>,
    p2p_listen: Option<String>,
    with_operator_and_verifier: bool,
) -> Result<()> {
    let merchant = MemberCode::new(code).is_some_and(|c| genesis.config().merchant(c).is_some());
    let node_toml = dir.join("node.toml");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let client = SecretKey::generate();
    files::write_key_file(&dir.join("node.key"), member, true)?;
    files::write_key_file(&dir.join("client.key"), &client, true)?;
    let now = crate::now();
    files::write_atomic(&dir.join("genesis.toml"), &genesis.to_toml())?;
    let token = random_token();
    files::write_private(&dir.join("read.token"), &format!("{token}\n"))?;
    let port = match port {
        Some(p) => p,
        None => free_port()?,
    };
    let cfg = NodeConfig {
        data_dir: ".".into(),
        genesis: "genesis.toml".into(),
        member_key: "node.key".into(),
        http_listen: format!("127.0.0.1:{port}"),
        read_token_file: "read.token".into(),
        p2p: p2p_listen.map(|listen| crate::config::P2pSection { listen, ban_ms: None }),
        engine: Default::default(),
        api: Default::default(),
    };
    let profile = ClientProfile {
        node_url: format!("http://127.0.0.1:{port}"),
        read_token: Some(token),
        key: "client.key".into(),
        member_key: Some("node.key".into()),
        operator_key: with_operator_and_verifier.then(|| "operator.key".into()),
        verifier_key: with_operator_and_verifier.then(|| "verifier.key".into()),
        buyer_key: with_operator_and_verifier.then(|| "buyer.key".into()),
        outbox: Some("outbox".into()),
    };
    files::write_private(&dir.join("client.toml"), &toml::to_string_pretty(&profile)?)?;
    // Last: node.toml's presence is what says the node directory is complete.
    let finish = || -> Result<()> {
        files::write_atomic(&node_toml, &toml::to_string_pretty(&cfg)?)?;
        Ok(())
    };
    if !merchant {
        // A witness that owns no chain records no event: no client key to authorise.
        return finish();
    }
    // The client key is authorised by the owner's first event; it is durable on disk
    // until the node starts and admits it.
    let auth = EventBody {
        network: genesis.network_id(),
        chain: MemberCode::new(code).unwrap_or_else(|| unreachable!()),
        author: member.public(),
        timestamp: Timestamp(now.0),
        kind: EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
            key: client.public(),
            label: "dev client".into(),
            permissions: Permissions {
                payments: true,
                invoices: true,
            },
        }),
    }
    .sign(member);
    files::write_atomic(
        &dir.join("bootstrap.events"),
        &hex::encode(fapiao_core::codec::to_bytes(&vec![auth])),
    )?;
    // The outbox remembers which network and chain the profile's node serves, so the
    // CLI can sign and queue even when its first command finds the node down.
    let cache = serde_json::json!({"network_id": genesis.network_id().to_string(), "chain": code.to_string()});
    files::write_atomic(&dir.join("outbox").join("node.json"), &cache.to_string())?;
    finish()
}

/// Admits `bootstrap.events` next to node.toml once (admission is durable, so the file is
/// then removed). With `wait_recorded` it also waits until they are in a block, so the
/// first client event is not refused: a lone node produces at once, but a member of a
/// network holds production until its peers answer (PROTOCOL.md, "Never signing a height
/// twice"), and its API must serve meanwhile.
pub(crate) async fn admit_bootstrap(running: &crate::run::Running, dir: &Path, wait_recorded: bool) -> Result<()> {
    let boot = dir.join("bootstrap.events");
    if !boot.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&boot)?;
    let events: Vec<fapiao_core::Event> = fapiao_core::codec::decode(&hex::decode(text.trim())?)?;
    let encoded = events.iter().map(fapiao_core::codec::to_bytes).collect();
    let mut ids = Vec::new();
    for r in running
        .engine
        .admit(encoded)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        ids.push(r.map_err(|e| anyhow::anyhow!("bootstrap event refused: {e}"))?.event_id);
    }
    std::fs::remove_file(&boot)?;
    if !wait_recorded {
        return Ok(());
    }
    for id in ids {
        while running.engine.event_status(&id)? == fapiao_engine::EventStatus::Pending {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// The shape of a dev network: `witnesses` merchants that witness every chain, then
/// `merchants` merchants that produce their own chain and validate nothing else (they see
/// the others' headers and certificates only), and with `tax_office_node` the dev tax
/// office as a witness running a node of its own, last.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Topology {
    /// Merchants that witness.
    pub witnesses: usize,
    /// Merchants that do not.
    pub merchants: usize,
    /// The tax office witnesses too, on its own node.
    pub tax_office_node: bool,
    /// The operator owns the admin chain and runs its node, last.
    pub admin_node: bool,
}

/// Creates a local network of the topology's merchants, plus the dev operator and tax
/// office, under `dir` (one directory per node) if it is not there yet. Every node's
/// profile holds the operator's and the tax office's keys too, so fee deposits, policy
/// changes and claims work from any of them. Returns each node's directory.
pub(crate) fn init_multi(dir: &Path, topology: Topology, fee_balance: Fen) -> Result<Vec<std::path::PathBuf>> {
    let n = topology.witnesses + topology.merchants;
    let nodes = n + usize::from(topology.tax_office_node) + usize::from(topology.admin_node);
    let dirs: Vec<std::path::PathBuf> = (1..=nodes).map(|i| dir.join(format!("node{i}"))).collect();
    if dirs.iter().all(|d| d.join("node.toml").exists()) {
        return Ok(dirs);
    }
    if dirs.iter().any(|d| d.exists()) {
        anyhow::bail!(
            "{} holds a partial network; remove it or choose another --data",
            dir.display()
        );
    }
    let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
    // Every node's peer port and API port, all distinct.
    let ports = free_ports(2 * nodes)?;
    let (p2p, http) = ports.split_at(nodes);
    let members: Vec<(u32, &SecretKey, Option<String>, bool)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let addr = Some(format!("/ip4/127.0.0.1/tcp/{}", p2p[i]));
            (DEV_CHAIN + i as u32, k, addr, i < topology.witnesses)
        })
        .collect();
    let operator = SecretKey::generate();
    let verifier = SecretKey::generate();
    let buyer = SecretKey::generate();
    let mut all = dev_members(&members, fee_balance);
    let tax_office_addr = topology
        .tax_office_node
        .then(|| format!("/ip4/127.0.0.1/tcp/{}", p2p[n]));
    let operator_addr = topology
        .admin_node
        .then(|| format!("/ip4/127.0.0.1/tcp/{}", p2p[nodes - 1]));
    all.extend(dev_others(&operator, &verifier, &buyer, tax_office_addr, operator_addr));
    let admin = topology
        .admin_node
        .then(|| MemberCode::new(DEV_OPERATOR).unwrap_or_else(|| unreachable!()));
    let genesis = dev_genesis_of(all)?.with_admin(admin)?;
    for (i, d) in dirs.iter().enumerate() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        files::write_key_file(&d.join("operator.key"), &operator, true)?;
        files::write_key_file(&d.join("verifier.key"), &verifier, true)?;
        files::write_key_file(&d.join("buyer.key"), &buyer, true)?;
        let listen = format!("/ip4/127.0.0.1/tcp/{}", p2p[i]);
        if i < n {
            write_node(
                d,
                &genesis,
                DEV_CHAIN + i as u32,
                &keys[i],
                Some(http[i]),
                Some(listen),
                true,
            )?;
        } else if topology.admin_node && i == nodes - 1 {
            write_node(d, &genesis, DEV_OPERATOR, &operator, Some(http[i]), Some(listen), true)?;
        } else {
            write_node(d, &genesis, DEV_VERIFIER, &verifier, Some(http[i]), Some(listen), true)?;
        }
    }
    Ok(dirs)
}

/// What the node in `dir` is, for the listing `run_multi` prints.
fn describe_node(genesis: &Genesis, dir: &Path) -> Result<String> {
    let key = files::read_key_file(&dir.join("node.key"))?;
    let config = genesis.config();
    Ok(match config.member_by_key(&key.public()) {
        Some(m) if m.roles.has(Role::Merchant) => format!("chain {}, {}", m.code, m.roles),
        Some(m) if config.is_admin_chain(m.code) => {
            format!(
                "admin chain {}, {}: `fapiao consortium` with this profile",
                m.code, m.roles
            )
        }
        Some(m) => format!("member {}, {}, no chain", m.code, m.roles),
        None => "not a member".into(),
    })
}

/// Runs a local network as child processes until Ctrl-C.
pub(crate) async fn run_multi(dir: &Path, topology: Topology, fee_balance: Fen) -> Result<()> {
    let dirs = init_multi(dir, topology, fee_balance)?;
    let genesis = files::read_genesis(&dirs[0].join("genesis.toml"))?;
    let exe = std::env::current_exe().context("locating the fapiao binary")?;
    let mut children = Vec::new();
    for d in &dirs {
        let cfg = config::load(&d.join("node.toml"))?;
        let log = std::fs::File::create(d.join("node.log"))?;
        let child = tokio::process::Command::new(&exe)
            .args(["node", "run", "--config"])
            .arg(d.join("node.toml"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the node in {}", d.display()))?;
        children.push((cfg.config.http_listen.clone(), d.clone(), child));
    }
    println!(
        "fapiao dev network: {} nodes, {} merchants, {} witnesses (quorum {}), data in {}",
        dirs.len(),
        genesis.config().with_role(Role::Merchant).count(),
        genesis.config().with_role(Role::Witness).count(),
        genesis.config().quorum(),
        dir.display()
    );
    for (i, (http, d, _)) in children.iter().enumerate() {
        let what = describe_node(&genesis, d)?;
        println!(
            "  node {} ({what}): http://{http}   client profile: {}",
            i + 1,
            d.join("client.toml").display()
        );
    }
    println!("Logs are in each node's node.log. Stop with Ctrl-C.");
    let mut waits: Vec<_> = children.into_iter().map(|(_, _, c)| c).collect();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        r = async {
            loop {
                for c in waits.iter_mut() {
                    if let Some(status) = c.try_wait()? {
                        return Ok::<_, anyhow::Error>(status);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        } => {
            let status = r?;
            eprintln!("a node exited ({status}); stopping the network");
        }
    }
    for c in waits.iter_mut() {
        if let Some(pid) = c.id() {
            // SIGTERM lets each node finish its block and close the store cleanly.
            let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
        }
    }
    for c in waits.iter_mut() {
        let _ = c.wait().await;
    }
    Ok(())
}

/// Runs the dev node (creating it first if needed).
pub(crate) async fn run(dir: &Path, port: Option<u16>, fee_balance: Fen) -> Result<()> {
    let created = init_with(dir, port, fee_balance)?;
    let cfg = config::load(&dir.join("node.toml"))?;
    let running = crate::run::start(&cfg).await?;
    admit_bootstrap(&running, dir, true).await?;
    let url = format!("http://{}", running.addr);
    let profile = dir.join("client.toml");
    println!(
        "fapiao dev node {} on {url}\n\
         \x20 network: {} (one merchant, chain {DEV_CHAIN}, with an operator and a tax office who sign but run no node), data in {}\n\
         \x20 client profile: {} (the CLI finds it by default)\n\n\
         Try, in another terminal:\n\
         \x20 fapiao pay --amount 100.00 --method wechat --id P1\n\
         \x20 fapiao invoice request --id R1 --payment P1 --buyer-name \"Shanghai Trading Co\" --buyer-tax-id 91110000600037341M --line \"Oolong tea|1|50.00|6|3070401000000000000\"\n\
         \x20 fapiao invoice request --id R2 --retry-of R1 --payment P1 --buyer-name \"Shanghai Trading Co\" --buyer-tax-id 91110000600037341L --line \"Oolong tea|1|50.00|6|3070401000000000000\"\n\
         \x20 fapiao invoice list --failed\n\
         \x20 curl {url}/openapi.json\n\
         Stop with Ctrl-C; `fapiao dev` again resumes with the same data.",
        if created { "created" } else { "resumed" },
        running.engine.network(),
        dir.display(),
        profile.display(),
    );
    running.serve().await
}
