//! `fapiao dev`: a local one-member network that needs no set-up.

use crate::config::{self, ClientProfile, NodeConfig};
use crate::files;
use anyhow::{Context, Result};
use fapiao_core::event::{ClientKeyAuthorized, EventKind, InvoiceType, MerchantPolicy, Permissions};
use fapiao_core::genesis::{Member, Role};
use fapiao_core::{EventBody, Fen, Genesis, MemberCode, SecretKey, TaxRate, Timestamp};
use std::path::Path;

/// The dev merchant's member code.
pub(crate) const DEV_CHAIN: u32 = 110_001;

fn random_token() -> String {
    let mut b = [0u8; 24];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    hex::encode(b)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Creates the dev network under `dir` if it is not there yet. Returns true if created.
pub(crate) fn init(dir: &Path, port: Option<u16>) -> Result<bool> {
    init_with(dir, port, Fen(100_000))
}

/// As [`init`], with the merchant's opening fee balance.
pub(crate) fn init_with(dir: &Path, port: Option<u16>, fee_balance: Fen) -> Result<bool> {
    let node_toml = dir.join("node.toml");
    if node_toml.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let member = SecretKey::generate();
    let client = SecretKey::generate();
    files::write_key_file(&dir.join("node.key"), &member, true)?;
    files::write_key_file(&dir.join("client.key"), &client, true)?;
    let now = crate::now();
    let genesis = Genesis::new(
        "fapiao-dev".into(),
        now,
        None,
        Fen(10),
        [0, 100, 300, 500, 600, 900, 1300].into_iter().map(TaxRate).collect(),
        vec![Member {
            code: MemberCode::new(DEV_CHAIN).unwrap_or_else(|| unreachable!()),
            name: "Dev Merchant".into(),
            role: Role::Merchant,
            key: member.public(),
            addresses: vec![],
            policy: Some(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
                max_invoice_total: Fen(100_000_000),
            }),
            initial_fee_balance: fee_balance,
        }],
    )?;
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
        engine: Default::default(),
        api: Default::default(),
    };
    files::write_atomic(&node_toml, &toml::to_string_pretty(&cfg)?)?;
    let profile = ClientProfile {
        node_url: format!("http://127.0.0.1:{port}"),
        read_token: Some(token),
        key: "client.key".into(),
        member_key: Some("node.key".into()),
        operator_key: None,
    };
    files::write_private(&dir.join("client.toml"), &toml::to_string_pretty(&profile)?)?;
    // The client key is authorised by the owner's first event; it is durable on disk
    // until the node starts and admits it.
    let auth = EventBody {
        network: genesis.network_id(),
        chain: MemberCode::new(DEV_CHAIN).unwrap_or_else(|| unreachable!()),
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
    .sign(&member);
    files::write_atomic(
        &dir.join("bootstrap.events"),
        &hex::encode(fapiao_core::codec::to_bytes(&vec![auth])),
    )?;
    Ok(true)
}

/// Runs the dev node (creating it first if needed).
pub(crate) async fn run(dir: &Path, port: Option<u16>) -> Result<()> {
    let created = init(dir, port)?;
    let cfg = config::load(&dir.join("node.toml"))?;
    let running = crate::run::start(&cfg).await?;
    // Admit the bootstrap events once (admission dedupes by event id anyway).
    let boot = dir.join("bootstrap.events");
    if boot.exists() {
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
        // Serve only once the client key's authorisation is committed, so the first
        // client event is not refused.
        for id in ids {
            while running.engine.event_status(&id)? == fapiao_engine::EventStatus::Pending {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        std::fs::remove_file(&boot)?;
    }
    let url = format!("http://{}", running.addr);
    let profile = dir.join("client.toml");
    println!(
        "fapiao dev node {} on {url}\n\
         \x20 network: {} (one member, chain {DEV_CHAIN}), data in {}\n\
         \x20 client profile: {} (the CLI finds it by default)\n\n\
         Try, in another terminal:\n\
         \x20 fapiao pay --amount 100.00 --method wechat --id P1\n\
         \x20 fapiao invoice request --id R1 --payment P1 --buyer-name \"Shanghai Trading Co\" --buyer-tax-id 91110000600037341M --line \"Oolong tea|1|50.00|6\"\n\
         \x20 fapiao invoice request --id R2 --retry-of R1 --payment P1 --buyer-name \"Shanghai Trading Co\" --buyer-tax-id 91110000600037341L --line \"Oolong tea|1|50.00|6\"\n\
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
