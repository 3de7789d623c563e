//! `fapiao`: the one binary. It parses the command line, runs one command, prints the
//! error chain and exits non-zero on failure. This is the only crate that wires the
//! library crates together.

mod audit;
mod bench;
mod bench_net;
mod client;
mod config;
mod dev;
mod drill;
mod files;
mod genesis_cmd;
mod join;
mod proof_cmd;
mod render;
mod replicate;
mod reset;
mod run;
mod siglimit;
#[cfg(feature = "sim")]
mod sim_cmd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use client::{
    ClaimCommand, ClientOpts, ConsortiumCommand, FeeCommand, InvoiceCommand, KeyCommand, QuotaCommand, RedformCommand,
};
use std::path::PathBuf;

/// Fapiao: a consortium invoice ledger.
#[derive(Parser)]
#[command(name = "fapiao", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an ed25519 key file (written with mode 0600).
    Keygen {
        /// Where to write the key file.
        #[arg(long, short)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Create, extend and inspect the consortium genesis.
    Genesis {
        #[command(subcommand)]
        command: Box<genesis_cmd::GenesisCommand>,
    },
    /// Run a node.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Run a local one-member network with generated genesis and keys (created on the
    /// first start, reused afterwards).
    Dev {
        /// Where the network lives.
        #[arg(long, default_value = "data/dev")]
        data: PathBuf,
        /// HTTP port on 127.0.0.1 (first start only; default: a free port).
        #[arg(long)]
        port: Option<u16>,
        /// Run a network of this many merchants that witness every chain, each its own
        /// process on loopback (`--data` then defaults to data/devnet).
        #[arg(long, alias = "witnesses", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
        nodes: u8,
        /// Add this many merchants that are not witnesses: each produces its own chain,
        /// validates nothing else, and sees the others' headers and certificates only.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=16))]
        merchants: u8,
        /// The dev tax office witnesses too and runs a node of its own (it may read every
        /// chain and records no event).
        #[arg(long)]
        tax_office_node: bool,
        /// The dev operator owns the admin chain and runs its node (last), so the
        /// configuration can change by epochs: `fapiao consortium propose` with that
        /// node's client profile adds, removes or re-keys members.
        #[arg(long)]
        admin_node: bool,
        /// Only create the network's files (with `--nodes`); start each node yourself
        /// with `fapiao node run --config DIR/nodeN/node.toml`.
        #[arg(long)]
        init_only: bool,
        /// Each merchant's opening invoicing fee balance in yuan (first start only; one
        /// invoice costs 0.10). A low balance shows fee failures and their automatic
        /// re-issue after `fapiao fee deposit`.
        #[arg(long, default_value = "1000.00")]
        fee_balance: String,
    },
    /// The consortium operator's commands on a merchant's chain (the profile's node).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Reconcile payments against invoices per business day (UTC+8) and method.
    Reconcile {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (inclusive).
        #[arg(long)]
        to: String,
        /// table, csv or json.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// The client's durable outbox: events waiting for the node.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
        #[command(flatten)]
        opts: client::ClientOpts,
    },
    /// Invoice proof bundles.
    Proof {
        #[command(subcommand)]
        command: ProofCommand,
        /// Client profile (only the node URL is used; no token is needed).
        #[arg(long, global = true, env = "FAPIAO_CLIENT", default_value = "data/dev/client.toml")]
        client: PathBuf,
    },
    /// Check a proof bundle offline against a genesis file; prints VALID or INVALID with
    /// the reasons, and exits 0 or 1.
    Verify {
        /// The bundle file (canonical bytes, from `fapiao proof get`).
        bundle: PathBuf,
        /// The consortium's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Refuse a status older than this (e.g. 90s, 10m, 24h).
        #[arg(long)]
        max_age: Option<String>,
        /// Another member's node (`http://HOST:PORT`): fetch the same invoice's proof
        /// there and refuse this bundle if that node proves a newer, different status.
        #[arg(long)]
        compare: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time the offline verification of a bundle (a benchmark).
    BenchVerify {
        /// The bundle file.
        bundle: PathBuf,
        /// The genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Verifications to time.
        #[arg(long, default_value_t = 1000)]
        runs: usize,
    },
    /// Fault drills (deliberate misbehaviour, to check that the network catches it).
    #[command(hide = true)]
    Drill {
        #[command(subcommand)]
        command: DrillCommand,
    },
    /// Record a payment.
    Pay {
        /// Amount in yuan, e.g. 12.50.
        #[arg(long)]
        amount: String,
        /// card, alipay, wechat, huabei, unionpay_qr or cash.
        #[arg(long)]
        method: String,
        /// Payment id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Terminal id.
        #[arg(long, default_value = "CLI")]
        terminal: String,
        /// The processor's reference.
        #[arg(long, default_value = "")]
        reference: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Refund part or all of a payment.
    Refund {
        /// The payment.
        #[arg(long)]
        payment: String,
        /// Amount in yuan.
        #[arg(long)]
        amount: String,
        /// Refund id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Void a wrongly entered payment (only while no issued invoice covers it). Was
    /// `reverse`, which still works: an invoice is red-lettered, a payment is voided.
    #[command(alias = "reverse")]
    Void {
        /// The payment.
        #[arg(long)]
        payment: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Request, show and list invoices.
    Invoice {
        #[command(subcommand)]
        command: InvoiceCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Red-letter confirmation forms (红字确认单): start, confirm, reject, withdraw,
    /// list, show.
    Redform {
        #[command(subcommand)]
        command: RedformCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// The reimbursement claim of an invoice (lock, unlock, close) and its booking by
    /// the buyer.
    Claim {
        #[command(subcommand)]
        command: ClaimCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Invoicing fees.
    Fee {
        #[command(subcommand)]
        command: FeeCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// The consortium's configuration by epoch: show it, its history, and (the admin)
    /// propose changes: members joining and leaving, key rotation, roles, quorum.
    Consortium {
        #[command(subcommand)]
        command: ConsortiumCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// The monthly invoicing quota (授信额度) a tax office grants the merchant.
    Quota {
        #[command(subcommand)]
        command: QuotaCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Client keys of this chain.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Payments of this chain: one, or a page in id order.
    Payment {
        #[command(subcommand)]
        command: client::PaymentCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Blocks of this node's chain: headers, or one block with its entries.
    Block {
        #[command(subcommand)]
        command: client::BlockCommand,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Equivocation evidence the node holds (each names a frozen chain).
    Evidence {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// The node's status.
    Status {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Rebuild every chain's state from the block log into a fresh store, checking every
    /// hash, root, signature and certificate, and report.
    Replay {
        /// The node's data directory (holding node.toml), or a ledger directory.
        #[arg(long)]
        data: PathBuf,
        /// The genesis (default: the one node.toml names).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Also verify every event signature.
        #[arg(long)]
        verify_signatures: bool,
        /// Write the report as JSON.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Keep the replayed store here (default: a temporary directory, removed).
        #[arg(long)]
        into: Option<PathBuf>,
    },
    /// Replace the live state with the one replayed from the blocks (node stopped).
    RebuildState {
        /// The node's config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write a chain's entries as JSON lines for auditors.
    Export {
        /// The node's data directory (holding node.toml), or a ledger directory.
        #[arg(long)]
        data: PathBuf,
        /// The genesis (default: the one node.toml names).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// The chain (member code).
        #[arg(long)]
        chain: String,
        /// jsonl.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure one node's throughput with pre-signed events (a fresh network in --data).
    Bench {
        /// A new directory for the benchmark network (kept for replay measurements).
        #[arg(long)]
        data: PathBuf,
        /// How many events.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Events per submission.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Submit over HTTP (batch endpoint) instead of in process.
        #[arg(long)]
        http: bool,
        /// Concurrent submitters.
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// A four-member network on loopback: certified throughput, then submit-to-certified
    /// latency at a steady load.
    BenchNet {
        /// A new directory for the network.
        #[arg(long)]
        data: PathBuf,
        /// Events per member in the throughput phase.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Events per submission in the throughput phase.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Offered load in the latency phase, events/s over all members (default: half
        /// the measured throughput).
        #[arg(long)]
        rate: Option<f64>,
        /// Length of the latency phase.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Pause between the phases, for background compaction of the burst.
        #[arg(long, default_value_t = 15)]
        settle_seconds: u64,
    },
    /// Take a checkpoint of a node's ledger (a consistent copy sharing no file with it);
    /// a running node takes it itself, on request, while it keeps serving.
    Backup {
        /// The node's config.
        #[arg(long)]
        config: PathBuf,
        /// A new directory for the checkpoint.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the deterministic replication simulator over many seeds (whole-domain
    /// workload, lossy network, crash-restarts, an equivocator); exits 1 if any fails.
    /// Built with `--features sim`.
    #[cfg(feature = "sim")]
    Sim(sim_cmd::SimArgs),
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run the node described by a config file.
    Run {
        /// node.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Join a running consortium after the admin added this node's member: import the
    /// admin chain's certified blocks (`fapiao consortium export` from any member's
    /// node), each checked against genesis and re-executed, so the node knows its epoch.
    /// Then start it with `fapiao node run`.
    Join {
        /// node.toml.
        #[arg(long)]
        config: PathBuf,
        /// The export.
        #[arg(long)]
        configuration: PathBuf,
    },
    /// Switch maintenance mode of the node on this host: while on, writes answer 503
    /// MAINTENANCE (with Retry-After), reads and verification keep working, and events
    /// already admitted still go into blocks. Takes effect within a second, also across
    /// restarts, until switched off.
    Maintenance {
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// node.toml.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Replace the merchant's invoicing policy (operator key).
    Set {
        /// Permitted invoice types (normal, special_vat), repeatable.
        #[arg(long = "type", required = true)]
        types: Vec<String>,
        /// Largest invoice total, yuan.
        #[arg(long)]
        max_total: String,
        /// A rate or flag the merchant may invoice at, repeatable: `RATE` or
        /// `RATE:FROM..UNTIL` (dates YYYY-MM-DD, either may be left out), e.g.
        /// `--rate 16:..2019-03-31 --rate 13:2019-04-01.. --rate exempt`.
        #[arg(long = "rate", required = true)]
        rates: Vec<String>,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// How many events wait, and which the node refused for good.
    Status,
    /// Send waiting events, retrying with backoff for up to `--wait` seconds.
    Flush {
        /// Keep retrying (unreachable node, maintenance) for this many seconds.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
}

#[derive(Subcommand)]
enum ProofCommand {
    /// Fetch an invoice's proof bundle from the node and write it to a file.
    Get {
        /// The invoice number.
        number: String,
        /// Its check code; or give --issue-date and --total, as the national platform asks.
        #[arg(long, required_unless_present = "issue_date", conflicts_with_all = ["issue_date", "total"])]
        check_code: Option<String>,
        /// The issue date printed on the invoice, YYYY-MM-DD (UTC+8).
        #[arg(long, requires = "total")]
        issue_date: Option<String>,
        /// The total including tax (价税合计) in yuan, e.g. 53.00.
        #[arg(long, requires = "issue_date")]
        total: Option<String>,
        /// Prove the status as of this certified height of the invoice's chain, or as of
        /// the end of this date (YYYY-MM-DD, UTC+8); by default as of its newest
        /// certified block. The node keeps each chain's state as of its last 256 blocks
        /// and its last 45 days (`[engine] state_history_days`).
        #[arg(long, value_name = "HEIGHT|DATE")]
        as_of: Option<String>,
        /// Where to write the bundle.
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DrillCommand {
    /// Sign a second block at this (stopped) member's head height and gossip it.
    Equivocate {
        /// The member's node.toml.
        #[arg(long)]
        config: PathBuf,
        /// How long to stay connected after publishing, in ms.
        #[arg(long, default_value_t = 3000)]
        wait_ms: u64,
    },
    /// Gossip this (stopped) member's head block with a broken signature: peers must
    /// refuse it and disconnect us.
    BadSignature {
        /// The member's node.toml.
        #[arg(long)]
        config: PathBuf,
        /// How long to stay connected after publishing, in ms.
        #[arg(long, default_value_t = 3000)]
        wait_ms: u64,
    },
    /// Act as this (stopped) member's node sending garbage on every gossip topic and on
    /// sync, as requester and as responder: peers must penalise it and keep serving.
    Garbage {
        /// The member's node.toml.
        #[arg(long)]
        config: PathBuf,
        /// How long to keep at it.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
}

/// Wall-clock now, the rim's only clock.
pub(crate) fn now() -> fapiao_core::Timestamp {
    fapiao_engine::wall_clock()
}

/// Output piped into a reader that stopped (`fapiao invoice show N --format text | head`)
/// ends the command quietly, with the status a shell gives a program killed by SIGPIPE,
/// instead of a panic and a backtrace: Rust ignores SIGPIPE, so the write fails and
/// `print!` panics with this message.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// jemalloc serves every allocation of the process, RocksDB's C++ included (the crate's
/// unprefixed `malloc`): against glibc's allocator a replay of a million events ran 14%
/// faster in 12% less memory (BENCHMARKS.md, thirteenth session), since glibc kept the
/// memory of the blocks' large, short-lived buffers in per-thread arenas. Its options are
/// built in (`.cargo/config.toml`; the `MALLOC_CONF` environment variable still overrides
/// them): one arena and a background thread that returns freed pages after 200 ms.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FAPIAO_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

// Long: the command table: one arm per command, each a call into a module.
fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen { out, force } => {
            let key = fapiao_core::SecretKey::generate();
            files::write_key_file(&out, &key, force)?;
            println!("wrote {} (public key {})", out.display(), key.public());
            Ok(())
        }
        Command::Genesis { command } => genesis_cmd::run(*command),
        Command::Node {
            command: NodeCommand::Join {
                config: path,
                configuration,
            },
        } => {
            let cfg = config::load(&path)?;
            let (epoch, me) = join::join(&cfg, &configuration)?;
            println!("member {me} of epoch {epoch}: the configuration is imported; start with `fapiao node run`");
            Ok(())
        }
        Command::Node {
            command: NodeCommand::Run { config: path },
        } => {
            init_tracing();
            let cfg = config::load(&path)?;
            runtime()?.block_on(async {
                let running = run::start(&cfg).await?;
                dev::admit_bootstrap(&running, &cfg.dir, false).await?;
                println!("fapiao node listening on http://{}", running.addr);
                running.serve().await
            })
        }
        Command::Proof {
            command:
                ProofCommand::Get {
                    number,
                    check_code,
                    issue_date,
                    total,
                    as_of,
                    out,
                },
            client,
        } => {
            let factors = match (&check_code, &issue_date, &total) {
                (Some(c), _, _) => proof_cmd::Factors::CheckCode(c),
                (None, Some(d), Some(t)) => proof_cmd::Factors::DateAndTotal(d, t),
                _ => anyhow::bail!("give --check-code, or --issue-date and --total"),
            };
            proof_cmd::get(&client, &number, factors, as_of.as_deref(), &out)
        }
        Command::Verify {
            bundle,
            genesis,
            max_age,
            compare,
            json,
        } => {
            if proof_cmd::verify(&bundle, &genesis, max_age.as_deref(), compare.as_deref(), json)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Policy {
            command:
                PolicyCommand::Set {
                    types,
                    max_total,
                    rates,
                },
            opts,
        } => client::policy_set(&opts, &types, &max_total, &rates),
        Command::Reconcile { from, to, format, opts } => client::reconcile(&opts, &from, &to, &format),
        Command::Outbox { command, opts } => match command {
            OutboxCommand::Status => client::outbox_status(&opts),
            OutboxCommand::Flush { wait } => client::outbox_flush(&opts, wait),
        },
        Command::BenchVerify { bundle, genesis, runs } => proof_cmd::bench(&bundle, &genesis, runs),
        Command::Drill { command } => {
            init_tracing();
            let (path, what, wait_ms) = match command {
                DrillCommand::Equivocate { config, wait_ms } => (config, drill::Misdeed::Equivocate, wait_ms),
                DrillCommand::BadSignature { config, wait_ms } => (config, drill::Misdeed::BadSignature, wait_ms),
                DrillCommand::Garbage { config, seconds } => {
                    return runtime()?.block_on(drill::garbage(&config::load(&config)?, seconds));
                }
            };
            let cfg = config::load(&path)?;
            runtime()?.block_on(drill::misbehave(&cfg, what, wait_ms))
        }
        Command::Node {
            command: NodeCommand::Maintenance { state, config: path },
        } => {
            let cfg = config::load(&path)?;
            let flag = cfg.maintenance_flag();
            if state == "on" {
                files::write_atomic(&flag, &format!("maintenance since {} ms\n", now().0))?;
                println!(
                    "maintenance ON: writes answer 503 MAINTENANCE; reads, verification and block production go on.\n\
                     Switch off with `fapiao node maintenance off --config {}`.",
                    path.display()
                );
            } else {
                match std::fs::remove_file(&flag) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {}", flag.display())),
                }
                println!("maintenance OFF: writes are admitted again.");
            }
            Ok(())
        }
        Command::Dev {
            data,
            port,
            nodes,
            merchants,
            tax_office_node,
            admin_node,
            init_only,
            fee_balance,
        } => {
            let fee_balance: fapiao_core::Fen = fee_balance
                .parse()
                .map_err(|e| anyhow::anyhow!("--fee-balance {fee_balance}: {e}"))?;
            init_tracing();
            let topology = dev::Topology {
                witnesses: nodes.into(),
                merchants: merchants.into(),
                tax_office_node,
                admin_node,
            };
            if nodes > 1 || merchants > 0 || tax_office_node || admin_node {
                let data = if data == std::path::Path::new("data/dev") {
                    PathBuf::from("data/devnet")
                } else {
                    data
                };
                if init_only {
                    for d in dev::init_multi(&data, topology, fee_balance)? {
                        println!("{}", d.join("node.toml").display());
                    }
                    return Ok(());
                }
                runtime()?.block_on(dev::run_multi(&data, topology, fee_balance))
            } else {
                runtime()?.block_on(dev::run(&data, port, fee_balance))
            }
        }
        Command::Pay {
            amount,
            method,
            id,
            terminal,
            reference,
            opts,
        } => client::pay(&opts, &amount, &method, id, terminal, reference),
        Command::Refund {
            payment,
            amount,
            id,
            reason,
            opts,
        } => client::refund(&opts, payment, &amount, id, reason),
        Command::Void { payment, reason, opts } => client::void(&opts, payment, reason),
        Command::Invoice { command, opts } => client::invoice(&opts, command),
        Command::Redform { command, opts } => client::redform(&opts, command),
        Command::Claim { command, opts } => client::claim_cmd(&opts, command),
        Command::Fee { command, opts } => client::fee(&opts, command),
        Command::Quota { command, opts } => client::quota(&opts, command),
        Command::Consortium { command, opts } => client::consortium(&opts, command),
        Command::Key { command, opts } => client::key(&opts, command),
        Command::Payment { command, opts } => client::payment(&opts, command),
        Command::Block { command, opts } => client::block(&opts, command),
        Command::Evidence { opts } => client::evidence(&opts),
        Command::Status { opts } => client::status(&opts),
        Command::Replay {
            data,
            genesis,
            verify_signatures,
            report,
            into,
        } => audit::run_replay(
            &data,
            genesis.as_deref(),
            verify_signatures,
            report.as_deref(),
            into.as_deref(),
        ),
        Command::RebuildState { config } => audit::rebuild_state(&config),
        Command::Export {
            data,
            genesis,
            chain,
            format,
            out,
        } => audit::export(&data, genesis.as_deref(), &chain, &format, out.as_deref()),
        Command::Backup { config, out } => audit::backup(&config, &out),
        Command::Bench {
            data,
            events,
            batch,
            http,
            clients,
        } => bench::run(&data, events, batch, http, clients),
        Command::BenchNet {
            data,
            events,
            batch,
            rate,
            seconds,
            settle_seconds,
        } => bench_net::run(&data, events, batch, rate, seconds, settle_seconds),
        #[cfg(feature = "sim")]
        Command::Sim(args) => sim_cmd::run(&args),
    }
}
