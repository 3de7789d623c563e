//! `fapiao consortium`: the configuration by epoch, its history, and the admin's
//! proposals (events on the admin chain, signed with the operator key of the profile).

use super::*;
use crate::genesis_cmd::{parse_member, MemberArgs};
use fapiao_api::dto::{ConfigChangedDto, ConsortiumDto};
use fapiao_core::{ConfigChange, Reconfiguration, Role, Roles};

#[derive(Subcommand)]
pub(crate) enum ConsortiumCommand {
    /// The newest epoch this node knows: members, roles, keys, quorum, admin chain.
    Show,
    /// Every certified configuration change, oldest first, with its admin block.
    History,
    /// Write the admin chain's certified blocks to a file: a member added after genesis
    /// imports it with `fapiao node join` (it is checked there against genesis alone).
    Export {
        /// The file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Propose a configuration change: an event on the admin chain, signed with the
    /// profile's operator key, sent to the admin's node (the profile's node must be it).
    /// Once the block holding it is certified by the current committee, the change
    /// starts the next epoch, and every chain moves to it in its next block.
    Propose {
        #[command(subcommand)]
        change: ProposeCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum ProposeCommand {
    /// A new member (a merchant's chain opens; a witness joins the committee).
    AddMember(Box<MemberArgs>),
    /// A member leaves: its chain is closed, its code retired; what it signed stays valid.
    RemoveMember {
        /// The member's code.
        #[arg(long)]
        code: String,
    },
    /// Replace a member's key: from the next epoch only the new key signs for it.
    RotateKey {
        /// The member's code.
        #[arg(long)]
        member: String,
        /// The new key file (its public key is proposed).
        #[arg(long, conflicts_with = "public_key")]
        key: Option<PathBuf>,
        /// The new public key in hex, instead of --key.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Replace a member's roles (the merchant role comes and goes with the member).
    SetRoles {
        /// The member's code.
        #[arg(long)]
        member: String,
        /// Roles, comma separated: witness, merchant, operator, tax_office, verifier.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Replace a member's node addresses.
    SetAddresses {
        /// The member's code.
        #[arg(long)]
        member: String,
        /// Multiaddr, repeatable.
        #[arg(long = "address")]
        addresses: Vec<String>,
    },
    /// Set the quorum: a number, or `default` for floor(2n/3)+1 of the n witnesses.
    SetQuorum {
        /// The quorum.
        quorum: String,
    },
    /// Resume a merchant's chain (frozen by equivocation evidence, or whose key is lost)
    /// after its certified prefix, under a successor key: from the next epoch its blocks
    /// above --height made before are set aside (their events are submitted again), the
    /// evidence stays on record and no longer freezes it. OPERATIONS.md, "Chain recovery".
    ResetChain {
        /// The chain (its merchant's code).
        #[arg(long)]
        chain: String,
        /// The chain's certified prefix, as a witness's node shows it (`fapiao status` on
        /// it: the chain's `certified`). Nothing certified above it may exist.
        #[arg(long)]
        height: u64,
        /// The successor key file (its public key is proposed).
        #[arg(long, conflicts_with = "public_key")]
        key: Option<PathBuf>,
        /// The successor public key in hex, instead of --key.
        #[arg(long)]
        public_key: Option<String>,
    },
}

/// The key a proposal names: from a key file, or in hex.
fn proposed_key(key: Option<PathBuf>, public_key: Option<String>) -> Result<PublicKey> {
    match (key, public_key) {
        (Some(path), None) => Ok(files::read_key_file(&path)?.public()),
        (None, Some(hex)) => PublicKey::from_hex(&hex).map_err(|e| anyhow!("--public-key: {e}")),
        _ => bail!("give the new key with --key FILE or --public-key HEX"),
    }
}

fn code(s: &str, flag: &str) -> Result<MemberCode> {
    s.parse()
        .map_err(|e: fapiao_core::ids::ParseError| anyhow!("{flag}: {e}"))
}

fn change_of(cmd: ProposeCommand) -> Result<ConfigChange> {
    Ok(match cmd {
        ProposeCommand::AddMember(m) => ConfigChange::AddMember(parse_member(*m)?),
        ProposeCommand::RemoveMember { code: c } => ConfigChange::RemoveMember(code(&c, "--code")?),
        ProposeCommand::RotateKey {
            member,
            key,
            public_key,
        } => ConfigChange::RotateKey {
            member: code(&member, "--member")?,
            key: proposed_key(key, public_key)?,
        },
        ProposeCommand::ResetChain {
            chain,
            height,
            key,
            public_key,
        } => ConfigChange::ResetChain {
            chain: code(&chain, "--chain")?,
            height,
            key: proposed_key(key, public_key)?,
        },
        ProposeCommand::SetRoles { member, roles } => {
            let mut set = Roles::NONE;
            for name in &roles {
                let role = Role::from_name(name.trim()).ok_or_else(|| {
                    anyhow!("--roles: `{name}` is not one of witness, merchant, operator, tax_office, verifier")
                })?;
                set = set.with(role);
            }
            ConfigChange::SetRoles {
                member: code(&member, "--member")?,
                roles: set,
            }
        }
        ProposeCommand::SetAddresses { member, addresses } => ConfigChange::SetAddresses {
            member: code(&member, "--member")?,
            addresses,
        },
        ProposeCommand::SetQuorum { quorum } => ConfigChange::SetQuorum(match quorum.as_str() {
            "default" => None,
            q => Some(q.parse().map_err(|_| anyhow!("quorum: a number or `default`"))?),
        }),
    })
}

/// One change, for people.
fn describe(c: &ConfigChangedDto) -> String {
    let mut parts = vec![c.change.clone()];
    parts.extend(c.member.clone());
    parts.extend(c.name.as_ref().map(|n| format!("\"{n}\"")));
    parts.extend(c.roles.as_ref().map(|r| r.join("+")));
    parts.extend(c.key.as_ref().map(|k| format!("key {k}")));
    parts.extend(c.addresses.as_ref().filter(|a| !a.is_empty()).map(|a| a.join(" ")));
    parts.extend(c.height.map(|h| format!("keeps height {h}")));
    if c.change == "set_quorum" {
        parts.push(c.quorum.map_or_else(|| "default".to_string(), |q| q.to_string()));
    }
    parts.join(" ")
}

fn print_show(d: &ConsortiumDto) {
    println!("network   {}", d.network_id);
    println!("epoch     {} (quorum {})", d.epoch, d.quorum);
    println!(
        "admin     {}",
        d.admin
            .clone()
            .unwrap_or_else(|| "none: the configuration is fixed".into())
    );
    if !d.retired.is_empty() {
        println!("retired   {}", d.retired.join(", "));
    }
    println!();
    println!("{:<8} {:<28} {:<28} PUBLIC KEY", "CODE", "ROLES", "NAME");
    for m in &d.members {
        println!("{:<8} {:<28} {:<28} {}", m.code, m.roles.join("+"), m.name, m.key);
    }
}

fn print_history(d: &ConsortiumDto) {
    if d.history.is_empty() {
        println!("no configuration change: every chain is in epoch 0 (genesis)");
        return;
    }
    println!("{:<6} {:<8} {:<28} CHANGE", "EPOCH", "HEIGHT", "AT");
    for e in &d.history {
        let at = fapiao_engine::format_time(e.timestamp_ms);
        println!(
            "{:<6} {:<8} {:<20} {}",
            e.change.epoch,
            e.height,
            at,
            describe(&e.change)
        );
    }
}

pub(crate) fn consortium(opts: &ClientOpts, cmd: ConsortiumCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    if let ConsortiumCommand::Export { out } = &cmd {
        let c = ctx.client.configuration()?;
        let bytes = hex::decode(&c.configuration_hex).context("the node's export is not hex")?;
        files::write_atomic_bytes(out, &bytes)?;
        println!("wrote {} admin block(s) to {}", c.blocks, out.display());
        return Ok(());
    }
    let d = ctx.client.consortium()?;
    match cmd {
        ConsortiumCommand::Export { .. } => unreachable!("answered above"),
        ConsortiumCommand::Show | ConsortiumCommand::History if ctx.opts.json => {
            println!("{}", serde_json::to_string_pretty(&d)?);
            Ok(())
        }
        ConsortiumCommand::Show => {
            print_show(&d);
            Ok(())
        }
        ConsortiumCommand::History => {
            print_history(&d);
            Ok(())
        }
        ConsortiumCommand::Propose { change } => {
            let admin = d
                .admin
                .clone()
                .ok_or_else(|| anyhow!("this consortium has no admin chain: its configuration is fixed in genesis"))?;
            if ctx.chain.to_string() != admin {
                bail!(
                    "the profile's node serves chain {}, not the admin chain {admin}: use the admin's node's profile",
                    ctx.chain
                );
            }
            let key = ctx.key(ctx.profile.operator_key.as_deref(), "operator")?;
            // After every change already in the admin chain's blocks, certified or not.
            let epoch = d.recorded_epoch.unwrap_or(d.epoch).max(d.epoch) + 1;
            let r = Reconfiguration {
                epoch,
                change: change_of(change)?,
            };
            let (_, res) = ctx.submit(&key, EventKind::ConfigChanged(r))?;
            ctx.print_submitted(&format!("configuration change for epoch {epoch}"), &res)
        }
    }
}
