//! `fapiao genesis init | add-member | show`.

use crate::files;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use fapiao_core::event::{InvoiceType, MerchantPolicy};
use fapiao_core::genesis::{Member, Role, Roles};
use fapiao_core::tax::{self, RateRule};
use fapiao_core::{Fen, Genesis, MemberCode, PublicKey, Timestamp};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum GenesisCommand {
    /// Create a genesis file with its first member.
    Init {
        /// Where to write the genesis (TOML).
        #[arg(long, short)]
        out: PathBuf,
        /// The network's name.
        #[arg(long)]
        network_name: String,
        /// Fee per issued invoice, in fen.
        #[arg(long, default_value_t = 10)]
        fee_per_invoice_fen: i64,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        member: MemberArgs,
    },
    /// Add a member to a genesis file (this changes the network id).
    AddMember {
        /// The genesis file to extend.
        #[arg(long, short)]
        genesis: PathBuf,
        /// Set the quorum explicitly (default floor(2n/3)+1).
        #[arg(long)]
        quorum: Option<u32>,
        #[command(flatten)]
        member: MemberArgs,
    },
    /// Print a genesis file's members, rules and network id.
    Show {
        /// The genesis file.
        genesis: PathBuf,
    },
}

/// A general taxpayer's rates and flags, with the 2019-04-01 change from 16% and 10%
/// to 13% and 9% as dated rules: the default policy of `genesis init` and `fapiao dev`.
pub(crate) const DEFAULT_RATE_RULES: &str =
    "16:..2019-03-31,13:2019-04-01..,10:..2019-03-31,9:2019-04-01..,6,5,3,1,0,exempt,not_taxable";

/// [`DEFAULT_RATE_RULES`] as rules.
pub(crate) fn default_rate_rules() -> Vec<RateRule> {
    DEFAULT_RATE_RULES
        .split(',')
        .map(|r| {
            r.parse()
                .unwrap_or_else(|e| panic!("the default rate rules parse: {e}"))
        })
        .collect()
}

#[derive(Args)]
pub(crate) struct MemberArgs {
    /// The member's 6-digit code.
    #[arg(long)]
    code: String,
    /// The member's registered name.
    #[arg(long)]
    name: String,
    /// The member's roles, comma separated: witness, merchant, operator, tax_office,
    /// verifier (a merchant that witnesses: `witness,merchant`).
    #[arg(long, value_delimiter = ',', default_value = "witness,merchant")]
    roles: Vec<String>,
    /// The member's key file (its public key goes into genesis).
    #[arg(long, conflicts_with = "public_key")]
    key: Option<PathBuf>,
    /// The member's public key in hex, instead of --key.
    #[arg(long)]
    public_key: Option<String>,
    /// Network addresses (multiaddr), repeatable.
    #[arg(long = "address")]
    addresses: Vec<String>,
    /// Merchants: invoice types permitted, comma separated (normal, special_vat).
    #[arg(long, value_delimiter = ',', default_value = "normal,special_vat")]
    permitted_types: Vec<String>,
    /// Merchants: the rates and flags it may invoice at, comma separated, each `RATE`
    /// or `RATE:FROM..UNTIL` (dates YYYY-MM-DD, either may be left out), e.g.
    /// `13:2019-04-01..,16:..2019-03-31,6,exempt`.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_RATE_RULES)]
    tax_rates: Vec<String>,
    /// Merchants: largest invoice total in fen.
    #[arg(long, default_value_t = 100_000_000)]
    max_invoice_total_fen: i64,
    /// Merchants: opening fee balance in fen.
    #[arg(long, default_value_t = 10_000)]
    initial_fee_balance_fen: i64,
    /// The organisation's unified social credit code, when it buys from the merchants.
    #[arg(long)]
    tax_id: Option<String>,
}

pub(crate) fn parse_member(a: MemberArgs) -> Result<Member> {
    let code: MemberCode = a.code.parse().map_err(|e| anyhow!("--code: {e}"))?;
    let mut roles = Roles::NONE;
    for name in &a.roles {
        let role = Role::from_name(name.trim()).ok_or_else(|| {
            anyhow!("--roles: `{name}` is not one of witness, merchant, operator, tax_office, verifier")
        })?;
        roles = roles.with(role);
    }
    let key = match (a.key, a.public_key) {
        (Some(path), None) => files::read_key_file(&path)?.public(),
        (None, Some(hex)) => PublicKey::from_hex(&hex).map_err(|e| anyhow!("--public-key: {e}"))?,
        _ => bail!("give the member's key with --key FILE or --public-key HEX"),
    };
    let merchant = roles.has(Role::Merchant);
    let policy = if merchant {
        let mut permitted = Vec::new();
        for t in &a.permitted_types {
            permitted.push(InvoiceType::from_name(t).ok_or_else(|| anyhow!("--permitted-types: unknown type `{t}`"))?);
        }
        let rates = a
            .tax_rates
            .iter()
            .map(|r| r.parse::<RateRule>().map_err(|e| anyhow!("--tax-rates: {e}")))
            .collect::<Result<Vec<_>>>()?;
        Some(MerchantPolicy {
            permitted_types: permitted,
            max_invoice_total: Fen::from_fen(a.max_invoice_total_fen),
            rates,
        })
    } else {
        None
    };
    Ok(Member {
        code,
        name: a.name,
        roles,
        key,
        addresses: a.addresses,
        policy,
        initial_fee_balance: Fen::from_fen(if merchant { a.initial_fee_balance_fen } else { 0 }),
        tax_id: a.tax_id.as_deref().map(fapiao_core::uscc::normalise),
    })
}

fn now() -> Timestamp {
    fapiao_engine::wall_clock()
}

pub(crate) fn run(cmd: GenesisCommand) -> Result<()> {
    match cmd {
        GenesisCommand::Init {
            out,
            network_name,
            fee_per_invoice_fen,
            force,
            member,
        } => {
            if out.exists() && !force {
                bail!("{} exists; pass --force to overwrite it", out.display());
            }
            let g = Genesis::new(
                network_name,
                now(),
                None,
                Fen::from_fen(fee_per_invoice_fen),
                tax::sample_classifications(),
                vec![parse_member(member)?],
            )?;
            files::write_atomic(&out, &g.to_toml())?;
            println!("wrote {} (network id {})", out.display(), g.network_id());
            Ok(())
        }
        GenesisCommand::AddMember {
            genesis,
            quorum,
            member,
        } => {
            let g = files::read_genesis(&genesis)?;
            let mut members = g.config().members().to_vec();
            members.push(parse_member(member)?);
            // The quorum follows the merchant (witness) count unless given explicitly.
            let g = Genesis::new(
                g.network_name().to_string(),
                g.created_at(),
                quorum,
                g.fee_per_invoice(),
                g.classifications().to_vec(),
                members,
            )
            .context("the new member makes the genesis invalid")?;
            files::write_atomic(&genesis, &g.to_toml())?;
            println!(
                "wrote {} ({} members, {} merchants, {} witnesses; quorum {}, network id {})",
                genesis.display(),
                g.config().members().len(),
                g.config().with_role(Role::Merchant).count(),
                g.config().with_role(Role::Witness).count(),
                g.config().quorum(),
                g.network_id()
            );
            Ok(())
        }
        GenesisCommand::Show { genesis } => {
            print!("{}", show(&genesis)?);
            Ok(())
        }
    }
}

fn show(path: &Path) -> Result<String> {
    use std::fmt::Write;
    let g = files::read_genesis(path)?;
    let mut s = String::new();
    writeln!(s, "network      {}", g.network_name())?;
    writeln!(s, "network id   {}", g.network_id())?;
    writeln!(
        s,
        "members      {} (quorum {})",
        g.config().members().len(),
        g.config().quorum()
    )?;
    writeln!(s, "fee/invoice  {} yuan", g.fee_per_invoice())?;
    writeln!(s, "tax codes    {}", g.classifications().len())?;
    for c in g.classifications() {
        writeln!(s, "  {}  {}", c.code, c.short_name)?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "{:<8} {:<24} {:<24} {:<18} PUBLIC KEY",
        "CODE", "ROLES", "NAME", "POLICY"
    )?;
    for m in g.config().members() {
        let policy = m
            .policy
            .as_ref()
            .map(|p| {
                let t: Vec<&str> = p.permitted_types.iter().map(|t| t.name()).collect();
                let r: Vec<String> = p.rates.iter().map(|r| r.describe()).collect();
                format!("{} <= {} at {}", t.join("+"), p.max_invoice_total, r.join(", "))
            })
            .unwrap_or_else(|| "-".into());
        writeln!(
            s,
            "{:<8} {:<24} {:<24} {:<18} {}",
            m.code,
            m.roles.to_string(),
            m.name,
            policy,
            m.key
        )?;
    }
    Ok(s)
}
