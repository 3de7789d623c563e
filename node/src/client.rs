//! Client commands: sign locally, call the node's API, print a table or JSON.

use crate::config::{load_profile, ClientProfile};
use crate::files;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use fapiao_api::dto::{FailureListDto, InvoiceDto, SubmitResult};
use fapiao_api::{Backoff, Client, Outbox};
use fapiao_core::event::*;
use fapiao_core::{
    EventBody, EventId, Fen, Hash32, InvoiceNumber, MemberCode, NetworkId, PublicKey, Quantity, SecretKey, TaxRate,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod buyer;
mod consortium;
mod fees;
mod invoices;
mod keys;
mod ledger;
mod payments;
mod reports;
pub(crate) use buyer::{claim as claim_cmd, redform, ClaimCommand, RedformCommand};
pub(crate) use consortium::{consortium, ConsortiumCommand};
pub(crate) use fees::{fee, policy_set, quota, FeeCommand, QuotaCommand};
pub(crate) use invoices::{invoice, InvoiceCommand};
pub(crate) use keys::{key, KeyCommand};
pub(crate) use ledger::{block, evidence, payment, BlockCommand, PaymentCommand};
pub(crate) use payments::{pay, refund, void};
pub(crate) use reports::{outbox_flush, outbox_status, reconcile, status};

/// Options every client command takes.
#[derive(Args, Clone)]
pub(crate) struct ClientOpts {
    /// Client profile (node URL, token, key files).
    #[arg(long, global = true, env = "FAPIAO_CLIENT", default_value = "data/dev/client.toml")]
    client: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Return as soon as the event is durable, without waiting for its block.
    #[arg(long, global = true)]
    no_wait: bool,
}

pub(crate) struct Ctx {
    opts: ClientOpts,
    profile: ClientProfile,
    dir: PathBuf,
    client: Client,
    network: NetworkId,
    chain: MemberCode,
    outbox: Option<Outbox>,
}

/// What an outbox remembers of its node (`node.json`), so events can be signed and
/// queued while the node is unreachable.
#[derive(serde::Serialize, serde::Deserialize)]
struct KnownNode {
    network_id: String,
    chain: String,
}

impl Ctx {
    pub(crate) fn new(opts: &ClientOpts) -> Result<Ctx> {
        let (profile, dir) = load_profile(&opts.client)?;
        let client = Client::new(&profile.node_url, profile.read_token.clone());
        let outbox_dir = profile
            .outbox
            .as_ref()
            .map(|o| if o.is_absolute() { o.clone() } else { dir.join(o) });
        let outbox = outbox_dir.as_deref().map(Outbox::open).transpose()?;
        // With an outbox, the node's network and chain are remembered, so events can be
        // signed and queued while the node is unreachable.
        let cache = outbox_dir.map(|d| d.join("node.json"));
        let (network_id, chain) = match client.status() {
            Ok(st) => {
                if let Some(c) = &cache {
                    let known = KnownNode {
                        network_id: st.network_id.clone(),
                        chain: st.chain.clone(),
                    };
                    files::write_atomic(c, &serde_json::to_string(&known)?)?;
                }
                (st.network_id, st.chain)
            }
            Err(e) if e.is_transient() && cache.as_ref().is_some_and(|c| c.exists()) => {
                let c = cache.as_ref().unwrap_or_else(|| unreachable!());
                let known: KnownNode = serde_json::from_str(&std::fs::read_to_string(c)?)
                    .with_context(|| format!("reading {}", c.display()))?;
                eprintln!("node unreachable ({e}); events go to the outbox");
                (known.network_id, known.chain)
            }
            Err(e) => return Err(e).context("asking the node for its network"),
        };
        let network = NetworkId(Hash32::from_hex(&network_id).map_err(|_| anyhow!("bad network id {network_id}"))?);
        let chain: MemberCode = chain
            .parse()
            .map_err(|e: fapiao_core::ids::ParseError| anyhow!("{e}"))?;
        Ok(Ctx {
            opts: opts.clone(),
            profile,
            dir,
            client,
            network,
            chain,
            outbox,
        })
    }

    fn key(&self, which: Option<&Path>, what: &str) -> Result<SecretKey> {
        let p = which.ok_or_else(|| anyhow!("the client profile has no {what} key"))?;
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        };
        files::read_key_file(&p)
    }

    fn sign(&self, key: &SecretKey, kind: EventKind) -> fapiao_core::Event {
        EventBody {
            network: self.network,
            chain: self.chain,
            author: key.public(),
            timestamp: crate::now(),
            kind,
        }
        .sign(key)
    }

    /// Submits and (unless --no-wait) waits for the block; errors are the node's.
    fn submit(&self, key: &SecretKey, kind: EventKind) -> Result<(EventId, SubmitResult)> {
        let e = self.sign(key, kind);
        let id = e.id();
        let mut r = match &self.outbox {
            None => self.client.submit(&e)?,
            Some(ob) => {
                // Durable first: from here on the event survives anything.
                ob.enqueue(&e)?;
                let report = ob.flush(&self.client)?;
                match report.outcomes.into_iter().find(|(i, _)| *i == id) {
                    Some((_, Ok(r))) => r,
                    Some((_, Err(err))) => bail!("the node refused the event: {} {}", err.code, err.message),
                    None => {
                        let why = report.deferred.unwrap_or_else(|| "not sent yet".into());
                        let r = SubmitResult {
                            event_id: id.to_string(),
                            status: "queued".into(),
                            height: None,
                            duplicate: false,
                            code: None,
                            message: Some(format!(
                                "{why}; {} event(s) wait in the outbox: `fapiao outbox flush --wait 60` sends them",
                                report.pending
                            )),
                        };
                        return Ok((id, r));
                    }
                }
            }
        };
        if !self.opts.no_wait && r.status == "pending" {
            let s = self.client.wait_committed(&id, Duration::from_secs(30))?;
            r.status = s.status.clone();
            r.height = s.height;
            r.code = s.code;
            r.message = s.message;
        }
        if r.status == "rejected" {
            bail!(
                "the node dropped the event when building its block: {} {}",
                r.code.clone().unwrap_or_default(),
                r.message.clone().unwrap_or_default()
            );
        }
        Ok((id, r))
    }

    fn client_key(&self) -> Result<SecretKey> {
        self.key(Some(&self.profile.key), "client")
    }

    fn print_submitted(&self, what: &str, r: &SubmitResult) -> Result<()> {
        if self.opts.json {
            println!("{}", serde_json::to_string_pretty(r)?);
        } else {
            let dup = if r.duplicate {
                " (already submitted: original outcome)"
            } else {
                ""
            };
            let h = r.height.map(|h| format!(" at height {h}")).unwrap_or_default();
            println!("{what}: {}{h}{dup}\nevent {}", r.status, r.event_id);
            if r.status == "queued" {
                println!("{}", r.message.clone().unwrap_or_default());
            }
        }
        Ok(())
    }
}

fn gen_id(prefix: &str) -> String {
    let mut b = [0u8; 6];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    format!("{prefix}-{}", hex::encode(b))
}

/// An invoice number as printed (20 digits).
pub(crate) fn parse_number(s: &str) -> Result<InvoiceNumber> {
    s.parse()
        .map_err(|e: fapiao_core::ids::ParseError| anyhow!("invoice number {s:?}: {e}"))
}

fn money(s: &str, field: &str) -> Result<Fen> {
    s.parse::<Fen>().map_err(|e| anyhow!("{field}: {e}"))
}

/// Parses "DESCRIPTION|QTY|UNIT_PRICE|RATE|CODE": RATE is a percentage or `exempt`
/// (免税) or `not_taxable` (不征税); CODE the 19-digit tax classification code, which
/// may be typed with spaces or dashes between digits.
pub(crate) fn parse_line(s: &str) -> Result<LineItem> {
    let parts: Vec<&str> = s.split('|').collect();
    let [description, qty, price, rate, code] = parts.as_slice() else {
        bail!(
            "--line \"{s}\": write DESCRIPTION|QTY|UNIT_PRICE|RATE|TAX_CODE, \
             e.g. \"Oolong tea|2|88.00|6|3070401000000000000\" (RATE may be exempt or not_taxable)"
        );
    };
    let quantity = fapiao_core::money::parse_fixed(qty.trim(), 3)
        .ok_or_else(|| anyhow!("--line \"{s}\": quantity `{qty}` is not a number with at most 3 decimals"))?;
    let unit_price = money(price.trim(), "--line unit price")?;
    let tax_rate: TaxRate = rate
        .trim()
        .parse()
        .map_err(|e: fapiao_core::ids::ParseError| anyhow!("--line \"{s}\": rate `{rate}`: {e}"))?;
    // What a person types is normalised; whether the code is real is the ledger's to
    // judge (TAX_CODE_UNKNOWN), so a wrong code is recorded with its remedy.
    let tax_code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    Ok(LineItem {
        description: description.trim().to_string(),
        tax_code,
        quantity: Quantity(quantity),
        unit_price,
        tax_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let l = parse_line("Oolong tea|1.5|88.00|13|3070401000000000000").unwrap();
        assert_eq!(
            (l.quantity.0, l.unit_price.fen(), l.tax_rate, l.tax_code.as_str()),
            (1500, 8800, TaxRate::Bp(1300), "3070401000000000000")
        );
        let l = parse_line("x|2|0.5|1.5%| 3070-4010 0000 0000 000 ").unwrap();
        assert_eq!(
            (l.quantity.0, l.unit_price.fen(), l.tax_rate),
            (2000, 50, TaxRate::Bp(150))
        );
        assert_eq!(l.tax_code, "3070401000000000000");
        assert_eq!(
            parse_line("x|1|1|exempt|1010112000000000000").unwrap().tax_rate,
            TaxRate::Exempt
        );
        assert_eq!(
            parse_line("x|1|1|不征税|6010000000000000000").unwrap().tax_rate,
            TaxRate::NotTaxable
        );
        assert!(parse_line("x|2|0.5|13").is_err(), "the code is required");
        assert!(parse_line("x|a|0.5|13|3070401000000000000").is_err());
        assert!(parse_line("x|1|0.555|13|3070401000000000000").is_err());
        assert!(parse_line("x|1|1|free|3070401000000000000").is_err());
    }
}
