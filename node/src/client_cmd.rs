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
mod ledger;
pub(crate) use buyer::{claim as claim_cmd, redform, ClaimCommand, RedformCommand};
pub(crate) use ledger::{block, evidence, payment, BlockCommand, PaymentCommand};

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

#[derive(Subcommand)]
pub(crate) enum InvoiceCommand {
    /// Request an invoice for one or more payments.
    Request(RequestArgs),
    /// Show an invoice.
    Show {
        /// The 20-digit number.
        number: String,
        /// Render as a document: `text` (QR code in block characters), `html`
        /// (self-contained page, QR code as SVG) or `xml` (the 数电 XML a finance
        /// department files, docs/API.md). Default: a short summary.
        #[arg(long)]
        format: Option<String>,
        /// The node address the QR code's verification link points at (default: this
        /// profile's node); give the consortium's public address for documents that
        /// leave the shop.
        #[arg(long)]
        verify_url: Option<String>,
        /// Write the document to this file instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// List invoices of a payment or request, or failed requests.
    List {
        /// List failed requests, grouped by reason.
        #[arg(long)]
        failed: bool,
        /// Only this failure reason code.
        #[arg(long)]
        reason: Option<String>,
        /// Include failures already resolved, by a retry or by a fee deposit.
        #[arg(long)]
        all: bool,
        /// The invoices drawing on this payment.
        #[arg(long)]
        payment: Option<String>,
        /// The invoices of this request and its retries.
        #[arg(long)]
        request: Option<String>,
    },
    /// Every failure reason: code, cause, whether the unchanged request can succeed
    /// later, and the remedy (no node needed).
    Catalogue,
    /// Show a request with its retries; or, given an invoice number (20 digits), every
    /// state the invoice went through: issue, red-letter requests and red invoices,
    /// confirmation forms and answers, locks, refused claims, unlocks, closing, bookings.
    History {
        /// The request id, or an invoice number.
        request: String,
    },
    /// Re-issue a request (typically a failed one) with corrections, linked to it by
    /// `retry_of`; what is not given is copied from it.
    Retry {
        /// The request to retry.
        request: String,
        /// The new request's id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Corrected buyer name.
        #[arg(long)]
        buyer_name: Option<String>,
        /// Corrected buyer tax id.
        #[arg(long)]
        buyer_tax_id: Option<String>,
        /// Replacement lines ("DESCRIPTION|QTY|UNIT_PRICE|RATE|TAX_CODE"), repeatable.
        #[arg(long = "line")]
        lines: Vec<String>,
        /// A file of replacement lines, one per line in the same form.
        #[arg(long, visible_alias = "lines")]
        lines_file: Option<PathBuf>,
    },
    /// Re-issue every open failed request with one failure reason, unchanged (after the
    /// cause was fixed: a fee deposit, a policy change).
    Reissue {
        /// Only failed requests (required: re-issuing is for failures).
        #[arg(long, required = true)]
        failed: bool,
        /// The failure code, e.g. INVOICE_TYPE_NOT_PERMITTED.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
pub(crate) struct RequestArgs {
    /// Request id (default: generated).
    #[arg(long)]
    id: Option<String>,
    /// Payment ids the invoice covers, in order.
    #[arg(long = "payment", required = true)]
    payments: Vec<String>,
    /// Buyer's registered name.
    #[arg(long)]
    buyer_name: String,
    /// Buyer's unified social credit code.
    #[arg(long)]
    buyer_tax_id: Option<String>,
    /// normal or special_vat.
    #[arg(long = "type", default_value = "normal")]
    invoice_type: String,
    /// A line: "DESCRIPTION|QTY|UNIT_PRICE|RATE|TAX_CODE" (unit price tax-exclusive, yuan).
    #[arg(long = "line", required = true)]
    lines: Vec<String>,
    /// The failed request this one corrects.
    #[arg(long)]
    retry_of: Option<String>,
    /// The red-letter reversed invoice this one replaces (a corrected invoice for the
    /// same payments).
    #[arg(long)]
    replaces: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum FeeCommand {
    /// Credit the merchant's invoicing fee balance (operator key).
    Deposit {
        /// Amount in yuan.
        #[arg(long)]
        amount: String,
        /// Deposit id (default: generated).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum QuotaCommand {
    /// Grant (or adjust) the month's invoicing quota, tax included (tax office key).
    Grant {
        /// Amount in yuan.
        amount: String,
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// Suspend the month's quota (tax office key).
    Suspend {
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// Lift a suspension (tax office key).
    Resume {
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// After the monthly filing: the month gets the amount last granted (tax office key).
    Revalidate {
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// The quota on record: month, granted, used, left, suspended, waiting requests.
    Show,
}

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Authorise a client key to sign on this chain (member key).
    Authorize {
        /// The client's public key, hex.
        #[arg(long)]
        public_key: String,
        /// A name for people.
        #[arg(long)]
        label: String,
        /// May sign payment events.
        #[arg(long)]
        payments: bool,
        /// May sign invoice events.
        #[arg(long)]
        invoices: bool,
    },
    /// Revoke a client key (member key).
    Revoke {
        /// The client's public key, hex.
        #[arg(long)]
        public_key: String,
    },
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
                    let v = serde_json::json!({"network_id": st.network_id, "chain": st.chain});
                    files::write_atomic(c, &v.to_string())?;
                }
                (st.network_id, st.chain)
            }
            Err(e) if e.is_transient() && cache.as_ref().is_some_and(|c| c.exists()) => {
                let c = cache.as_ref().unwrap_or_else(|| unreachable!());
                let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(c)?)?;
                eprintln!("node unreachable ({e}); events go to the outbox");
                (
                    v["network_id"].as_str().unwrap_or_default().to_string(),
                    v["chain"].as_str().unwrap_or_default().to_string(),
                )
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

pub(crate) fn pay(
    opts: &ClientOpts,
    amount: &str,
    method: &str,
    id: Option<String>,
    terminal: String,
    reference: String,
) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let method = PaymentMethod::from_name(method)
        .ok_or_else(|| anyhow!("--method: one of card, alipay, wechat, huabei, unionpay_qr, cash"))?;
    let id = id.unwrap_or_else(|| gen_id("PAY"));
    let key = ctx.client_key()?;
    let (_, r) = ctx.submit(
        &key,
        EventKind::PaymentRecorded(PaymentRecorded {
            payment_id: id.clone(),
            amount: money(amount, "--amount")?,
            currency: Currency::Cny,
            method,
            terminal_id: terminal,
            external_ref: reference,
        }),
    )?;
    ctx.print_submitted(&format!("payment {id}"), &r)
}

pub(crate) fn refund(
    opts: &ClientOpts,
    payment: String,
    amount: &str,
    id: Option<String>,
    reason: String,
) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let id = id.unwrap_or_else(|| gen_id("REF"));
    let key = ctx.client_key()?;
    let (_, r) = ctx.submit(
        &key,
        EventKind::PaymentRefunded(PaymentRefunded {
            payment_id: payment,
            refund_id: id.clone(),
            amount: money(amount, "--amount")?,
            reason,
        }),
    )?;
    ctx.print_submitted(&format!("refund {id}"), &r)
}

pub(crate) fn reverse(opts: &ClientOpts, payment: String, reason: String) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let key = ctx.client_key()?;
    let (_, r) = ctx.submit(
        &key,
        EventKind::PaymentReversed(PaymentReversed {
            payment_id: payment.clone(),
            reason,
        }),
    )?;
    ctx.print_submitted(&format!("reversal of payment {payment}"), &r)
}

pub(crate) fn invoice(opts: &ClientOpts, cmd: InvoiceCommand) -> Result<()> {
    if let InvoiceCommand::Catalogue = cmd {
        return print_catalogue(opts.json);
    }
    let ctx = Ctx::new(opts)?;
    match cmd {
        InvoiceCommand::Catalogue => unreachable!("answered above, without a node"),
        InvoiceCommand::Request(a) => {
            let invoice_type =
                InvoiceType::from_name(&a.invoice_type).ok_or_else(|| anyhow!("--type: normal or special_vat"))?;
            let lines = a.lines.iter().map(|l| parse_line(l)).collect::<Result<Vec<_>>>()?;
            let id = a.id.unwrap_or_else(|| gen_id("REQ"));
            let key = ctx.client_key()?;
            let (_, r) = ctx.submit(
                &key,
                EventKind::InvoiceRequested(InvoiceRequested {
                    request_id: id.clone(),
                    invoice_type,
                    buyer: Buyer {
                        name: a.buyer_name,
                        // As a person types it (lower case, spaces, dashes, full-width):
                        // the ledger stores, and checks, the written form.
                        tax_id: a.buyer_tax_id.as_deref().map(fapiao_domain::uscc::normalise),
                    },
                    lines,
                    payment_ids: a.payments,
                    retry_of: a.retry_of,
                    replaces: a.replaces.as_deref().map(parse_number).transpose()?,
                }),
            )?;
            if opts.no_wait {
                return ctx.print_submitted(&format!("invoice request {id}"), &r);
            }
            print_request(&ctx, &id)
        }
        InvoiceCommand::Show {
            number,
            format,
            verify_url,
            output,
        } => {
            let inv = ctx.client.invoice(&number)?;
            let doc = match format.as_deref() {
                Some("xml") => ctx.client.invoice_xml(&number)?,
                None if opts.json => serde_json::to_string_pretty(&inv)? + "\n",
                None => {
                    print_invoice(&inv);
                    return Ok(());
                }
                Some(f @ ("text" | "html")) => {
                    let original = match &inv.original {
                        Some(o) => Some(ctx.client.invoice(o)?),
                        None => None,
                    };
                    let d = crate::render::Document {
                        invoice: &inv,
                        original: original.as_ref(),
                        verify_base: verify_url.as_deref().unwrap_or(&ctx.profile.node_url),
                    };
                    if f == "text" {
                        d.text()?
                    } else {
                        d.html()?
                    }
                }
                Some(other) => bail!("--format {other}: use text, html or xml"),
            };
            match output {
                Some(path) => {
                    crate::files::write_atomic(&path, &doc)?;
                    println!("wrote {}", path.display());
                }
                None => print!("{doc}"),
            }
            Ok(())
        }
        InvoiceCommand::List {
            failed,
            reason,
            all,
            payment,
            request,
        } => {
            if failed || reason.is_some() {
                let list = ctx.client.failures(reason.as_deref(), !all)?;
                if opts.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    print_failures(&list);
                }
                return Ok(());
            }
            let invoices = match (payment, request) {
                (Some(p), None) => {
                    let pay = ctx.client.payment(&p)?;
                    pay.invoices
                        .iter()
                        .map(|n| ctx.client.invoice(n))
                        .collect::<Result<Vec<_>, _>>()?
                }
                (None, Some(r)) => ctx.client.invoices_for_request(&r)?,
                _ => bail!("give --failed, --payment ID or --request ID"),
            };
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&invoices)?);
            } else {
                println!(
                    "{:<22} {:<5} {:<19} {:>12} REQUEST",
                    "NUMBER", "KIND", "STATUS", "TOTAL"
                );
                for i in &invoices {
                    println!(
                        "{:<22} {:<5} {:<19} {:>12} {}",
                        i.number,
                        i.kind,
                        i.status,
                        Fen::from_fen(i.total_fen).to_string(),
                        i.request_id
                    );
                }
            }
            Ok(())
        }
        InvoiceCommand::History { request } => match request.parse::<InvoiceNumber>() {
            Ok(_) => buyer::print_invoice_history(&ctx, &request),
            Err(_) => print_request(&ctx, &request),
        },
        InvoiceCommand::Retry {
            request,
            id,
            buyer_name,
            buyer_tax_id,
            mut lines,
            lines_file,
        } => {
            if let Some(f) = lines_file {
                let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
                lines.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
            }
            let parsed = lines.iter().map(|l| parse_line(l)).collect::<Result<Vec<_>>>()?;
            let new_id = retry(&ctx, &request, id, buyer_name, buyer_tax_id, parsed)?;
            print_request(&ctx, &new_id)
        }
        InvoiceCommand::Reissue { failed: _, reason } => {
            // Every page first: a retry that fails again for the same reason is listed
            // after the ones taken here, and must not be re-issued in the same run.
            let list = ctx.client.failures(Some(&reason), true)?;
            if list.failures.is_empty() {
                println!("no open failed request with reason {reason}");
                return Ok(());
            }
            let mut issued = 0;
            for f in &list.failures {
                let new_id = retry(&ctx, &f.request_id, None, None, None, Vec::new())?;
                let h = ctx.client.request(&new_id)?;
                let last = h.history.iter().find(|r| r.request_id == new_id);
                let outcome = last.map_or("?".to_string(), |r| match (&r.invoice_number, &r.failure) {
                    (Some(n), _) => {
                        issued += 1;
                        format!("ISSUED {n}")
                    }
                    (None, Some(fi)) => format!("FAILED {}", fi.code),
                    _ => r.outcome.clone(),
                });
                println!("{} -> {new_id}: {outcome}", f.request_id);
            }
            println!("re-issued {} request(s): {issued} issued", list.failures.len());
            Ok(())
        }
    }
}

/// Submits a retry of `request` with the given corrections; returns the new request id.
fn retry(
    ctx: &Ctx,
    request: &str,
    id: Option<String>,
    buyer_name: Option<String>,
    buyer_tax_id: Option<String>,
    lines: Vec<LineItem>,
) -> Result<String> {
    let h = ctx.client.request(request)?;
    let original = h
        .history
        .iter()
        .find(|r| r.request_id == request)
        .ok_or_else(|| anyhow!("no request {request}"))?;
    let body: fapiao_core::state::RequestBody = fapiao_core::codec::decode(&hex::decode(&original.request_hex)?)
        .map_err(|e| anyhow!("the node sent an unreadable request: {e}"))?;
    let fapiao_core::state::RequestBody::Invoice(mut r) = body else {
        bail!("{request} is a red-letter request; only invoice requests are retried");
    };
    if let Some(n) = buyer_name {
        r.buyer.name = n;
    }
    if let Some(t) = buyer_tax_id {
        r.buyer.tax_id = Some(fapiao_domain::uscc::normalise(&t));
    }
    if !lines.is_empty() {
        r.lines = lines;
    }
    let new_id = id.unwrap_or_else(|| gen_id("RE"));
    r.request_id = new_id.clone();
    r.retry_of = Some(request.to_string());
    let key = ctx.client_key()?;
    ctx.submit(&key, EventKind::InvoiceRequested(r))?;
    Ok(new_id)
}

/// `fapiao policy set`: the operator replaces a merchant's invoicing policy with an
/// operator-signed event on that merchant's chain.
pub(crate) fn policy_set(opts: &ClientOpts, types: &[String], max_total: &str, rates: &[String]) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let key = ctx.key(ctx.profile.operator_key.as_deref(), "operator")?;
    let mut permitted_types = types
        .iter()
        .map(|t| InvoiceType::from_name(t).ok_or_else(|| anyhow!("--type {t}: normal or special_vat")))
        .collect::<Result<Vec<_>>>()?;
    permitted_types.sort();
    permitted_types.dedup();
    let mut rates = rates
        .iter()
        .map(|r| {
            r.parse::<fapiao_core::tax::RateRule>()
                .map_err(|e| anyhow!("--rate {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    fapiao_core::tax::canonical_rate_rules(&mut rates).map_err(|e| anyhow!("--rate: {e}"))?;
    let policy = MerchantPolicy {
        permitted_types,
        max_invoice_total: money(max_total, "--max-total")?,
        rates,
    };
    let (_, r) = ctx.submit(&key, EventKind::MerchantPolicySet(policy))?;
    ctx.print_submitted("policy", &r)
}

fn print_request(ctx: &Ctx, id: &str) -> Result<()> {
    let h = ctx.client.request(id)?;
    if ctx.opts.json {
        println!("{}", serde_json::to_string_pretty(&h)?);
        return Ok(());
    }
    for r in &h.history {
        let mark = if r.request_id == id { "*" } else { " " };
        match (&r.invoice_number, &r.failure) {
            (Some(n), _) => {
                println!("{mark} {} {}: {} {n}", r.request_id, r.kind, r.outcome.to_uppercase());
                if let Some(a) = &r.auto_reissue {
                    match (&a.deposit_id, a.quota_month) {
                        (Some(d), _) => println!(
                            "    failed first for the fee balance; issued automatically when fee deposit {d} covered it"
                        ),
                        (None, Some(m)) => println!(
                            "    failed first for the quota; issued automatically when the tax office's quota change for {m} made room"
                        ),
                        (None, None) => println!("    issued automatically by event {}", a.event_id),
                    }
                }
            }
            (None, Some(f)) => {
                println!("{mark} {} {}: FAILED {} ({})", r.request_id, r.kind, f.code, f.field);
                println!("    {}", f.detail);
                println!(
                    "    remedy: {}{}",
                    f.remedy,
                    if f.retryable { " [retryable unchanged]" } else { "" }
                );
            }
            (None, None) => match &r.red_form {
                Some(form) => println!(
                    "{mark} {} {}: AWAITING_CONFIRMATION by the buyer, form {form} (void after 72 hours unanswered)",
                    r.request_id, r.kind
                ),
                None => println!("{mark} {} {}: {}", r.request_id, r.kind, r.outcome),
            },
        }
    }
    if let Some(n) = h.history.iter().rev().find_map(|r| r.invoice_number.clone()) {
        if h.history.last().is_some_and(|r| r.invoice_number.is_some()) {
            print_invoice(&ctx.client.invoice(&n)?);
        }
    }
    Ok(())
}

fn print_invoice(i: &InvoiceDto) {
    println!(
        "invoice {} ({}, {})  check code {}",
        i.number, i.kind, i.status, i.check_code
    );
    if let Some(b) = &i.buyer_name {
        println!("  buyer  {} {}", b, i.buyer_tax_id.clone().unwrap_or_default());
    }
    if let Some(o) = &i.original {
        println!("  reverses {} ({})", o, i.red_letter_reason.clone().unwrap_or_default());
    }
    for l in &i.lines {
        // As the platform prints a line: `*short name*description`, and `***` for the
        // tax of an exempt or not-taxable line.
        let tax = match l.tax_flag {
            Some(_) => "***".to_string(),
            None => Fen::from_fen(l.tax_fen).to_string(),
        };
        println!(
            "  {:<30} {:>8} x {:>10} @ {:>6}  net {:>10}  tax {:>9}  {}",
            format!("*{}*{}", l.short_name, l.description),
            Quantity(l.quantity_thousandths).to_string(),
            Fen::from_fen(l.unit_price_fen).to_string(),
            l.rate().to_string(),
            Fen::from_fen(l.net_fen).to_string(),
            tax,
            l.tax_code
        );
    }
    println!(
        "  net {}  tax {}  total {}{}",
        Fen::from_fen(i.net_fen),
        Fen::from_fen(i.tax_fen),
        Fen::from_fen(i.total_fen),
        if i.kind == fapiao_api::dto::InvoiceKindDto::Blue {
            format!("  fee {}", Fen::from_fen(i.fee_fen))
        } else {
            String::new()
        }
    );
    if !i.red_letters.is_empty() {
        println!("  red-letter invoices: {}", i.red_letters.join(", "));
    }
    if let Some(r) = &i.replaces {
        println!("  corrects (replaces) {r}");
    }
    if let Some(r) = &i.replaced_by {
        println!("  replaced by corrected invoice {r}");
    }
    for l in crate::render::buyer_side_lines(i) {
        println!("  {l}");
    }
}

fn print_catalogue(json: bool) -> Result<()> {
    let all = fapiao_domain::catalogue::ALL.map(fapiao_domain::catalogue::info);
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(
                |i| serde_json::json!({"code": i.code, "retryable": i.retryable, "cause": i.cause, "remedy": i.remedy}),
            )
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for i in all {
        println!("{}{}", i.code, if i.retryable { "  [retryable unchanged]" } else { "" });
        println!("    cause:  {}", i.cause);
        println!("    remedy: {}", i.remedy);
    }
    Ok(())
}

fn print_failures(list: &FailureListDto) {
    if list.failures.is_empty() {
        println!("no failed requests");
        return;
    }
    for (code, count) in &list.counts {
        let first = list.failures.iter().find(|f| &f.code == code);
        println!(
            "{code}: {count}{}",
            if first.is_some_and(|f| f.retryable) {
                "  [retryable]"
            } else {
                ""
            }
        );
        if let Some(f) = first {
            println!("  remedy: {}", f.remedy);
        }
        for f in list.failures.iter().filter(|f| &f.code == code) {
            let resolved = match (&f.resolved_by_invoice, &f.retried_by) {
                (Some(n), _) => format!("  -> issued {n}"),
                (None, Some(r)) => format!("  -> retried by {r}"),
                _ => String::new(),
            };
            println!("  {:<24} {:<16} {}{resolved}", f.request_id, f.field, f.detail);
        }
    }
}

pub(crate) fn fee(opts: &ClientOpts, cmd: FeeCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    match cmd {
        FeeCommand::Deposit { amount, id } => {
            let key = ctx.key(ctx.profile.operator_key.as_deref(), "operator")?;
            let id = id.unwrap_or_else(|| gen_id("DEP"));
            let (event, r) = ctx.submit(
                &key,
                EventKind::FeeDeposited(FeeDeposited {
                    deposit_id: id.clone(),
                    amount: money(&amount, "--amount")?,
                }),
            )?;
            ctx.print_submitted(&format!("fee deposit {id}"), &r)?;
            if let Some(height) = r.height {
                print_auto_reissues(&ctx, height, &event.to_string())?;
            }
            Ok(())
        }
    }
}

/// `fapiao quota`: the tax office's quota changes, signed with the profile's
/// `verifier_key` (the dev tax office), and the quota on record.
pub(crate) fn quota(opts: &ClientOpts, cmd: QuotaCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let this_month = || crate::now().utc8_month();
    let (month, action) = match cmd {
        QuotaCommand::Show => {
            let q = ctx.client.quota()?;
            if ctx.opts.json {
                println!("{}", serde_json::to_string_pretty(&q)?);
            } else if !q.under_quota {
                println!("not under quota: no tax office has granted this merchant one");
            } else {
                println!(
                    "quota {}{}: granted {}  used {}  left {}{}",
                    q.month.unwrap_or(0),
                    if q.valid {
                        ""
                    } else {
                        " (EXPIRED: this month has none yet)"
                    },
                    Fen::from_fen(q.granted_fen),
                    Fen::from_fen(q.used_fen),
                    Fen::from_fen(q.left_fen),
                    if q.suspended { "  SUSPENDED" } else { "" }
                );
                println!("{} request(s) wait for quota", q.waiting_requests);
            }
            return Ok(());
        }
        QuotaCommand::Grant { amount, month } => (month, QuotaAction::Grant(money(&amount, "AMOUNT")?)),
        QuotaCommand::Suspend { month } => (month, QuotaAction::Suspend),
        QuotaCommand::Resume { month } => (month, QuotaAction::Resume),
        QuotaCommand::Revalidate { month } => (month, QuotaAction::Revalidate),
    };
    let key = ctx.key(ctx.profile.verifier_key.as_deref(), "tax office (verifier_key)")?;
    let month = month.unwrap_or_else(this_month);
    let (event, r) = ctx.submit(&key, EventKind::QuotaChanged(QuotaChange { month, action }))?;
    ctx.print_submitted(&format!("quota {} for {month}", action.name()), &r)?;
    if let Some(height) = r.height {
        print_auto_reissues(&ctx, height, &event.to_string())?;
    }
    Ok(())
}

/// The requests a fee deposit or a quota change re-ran (the derived entries right after
/// it in its block).
fn print_auto_reissues(ctx: &Ctx, height: u64, deposit: &str) -> Result<()> {
    if ctx.opts.json {
        return Ok(());
    }
    let block = ctx.client.block(height)?;
    let after = block
        .entries
        .iter()
        .skip_while(|e| e["id"] != deposit)
        .skip(1)
        .take_while(|e| e["type"] == "derived");
    for e in after {
        let d = &e["data"];
        let request = d["request_id"].as_str().unwrap_or("?");
        match e["kind"].as_str() {
            Some("invoice_issued") => println!(
                "re-issued automatically: request {request} -> invoice {}",
                d["number"].as_str().unwrap_or("?")
            ),
            _ => println!(
                "re-run automatically: request {request} now FAILED {} ({})",
                d["reason"].as_str().unwrap_or("?"),
                d["detail"].as_str().unwrap_or("")
            ),
        }
    }
    Ok(())
}

pub(crate) fn key(opts: &ClientOpts, cmd: KeyCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let member = ctx.key(ctx.profile.member_key.as_deref(), "member")?;
    let parse = |s: &str| PublicKey::from_hex(s).map_err(|e| anyhow!("--public-key: {e}"));
    let (what, kind) = match cmd {
        KeyCommand::Authorize {
            public_key,
            label,
            payments,
            invoices,
        } => (
            "key authorisation",
            EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
                key: parse(&public_key)?,
                label,
                permissions: Permissions { payments, invoices },
            }),
        ),
        KeyCommand::Revoke { public_key } => (
            "key revocation",
            EventKind::ClientKeyRevoked(ClientKeyRevoked {
                key: parse(&public_key)?,
            }),
        ),
    };
    let (_, r) = ctx.submit(&member, kind)?;
    ctx.print_submitted(what, &r)
}

/// `fapiao outbox status|flush`.
pub(crate) fn outbox(opts: &ClientOpts, flush: bool, wait_s: u64) -> Result<()> {
    let (profile, dir) = load_profile(&opts.client)?;
    let Some(o) = &profile.outbox else {
        bail!("the client profile has no outbox directory (`outbox = \"outbox\"`)");
    };
    let ob = Outbox::open(&if o.is_absolute() { o.clone() } else { dir.join(o) })?;
    if flush {
        let client = Client::new(&profile.node_url, profile.read_token.clone());
        let r = ob.drain(&client, Backoff::default(), Duration::from_secs(wait_s))?;
        println!(
            "delivered {}, refused {}, still waiting {}; certified {}, sent again {}, awaiting certification {}{}",
            r.delivered,
            r.failed,
            r.pending,
            r.certified,
            r.resubmitted,
            r.awaiting,
            r.deferred.map(|d| format!(" ({d})")).unwrap_or_default()
        );
        if let Some(why) = r.unconfirmed {
            println!("the node did not say which admitted events are certified: {why}");
        }
    } else {
        println!(
            "waiting {}, admitted and awaiting certification {}",
            ob.pending()?,
            ob.awaiting()?
        );
    }
    let failed = ob.failed()?;
    if !failed.is_empty() {
        println!(
            "refused for good ({}), see the outbox's failed/ directory:",
            failed.len()
        );
        for (p, e) in &failed {
            println!("  {}  {} {}", p.display(), e.code, e.message);
        }
    }
    Ok(())
}

pub(crate) fn status(opts: &ClientOpts) -> Result<()> {
    let (profile, _) = load_profile(&opts.client)?;
    let client = Client::new(&profile.node_url, profile.read_token.clone());
    let s = client.status()?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("network   {} ({})", s.network_name, s.network_id);
        println!(
            "chain     {}  head {}  certified {}  pending {}",
            s.chain, s.head_height, s.certified_height, s.pending
        );
        println!("members   {} (quorum {})  version {}", s.members, s.quorum, s.version);
        if s.maintenance {
            println!("MAINTENANCE: writes are refused with 503 and Retry-After; reads and verification go on");
        }
        if !s.chains.is_empty() {
            let peers = if s.peers.is_empty() {
                "none".to_string()
            } else {
                s.peers.join(", ")
            };
            println!("peers     {peers}");
            println!("{:<8} {:>8} {:>10} {:>6}  state", "chain", "head", "certified", "lag");
            for c in &s.chains {
                let state = if c.frozen {
                    "FROZEN (equivocation evidence; see /v1/evidence)"
                } else if c.certified == c.height {
                    "in sync"
                } else {
                    "certifying"
                };
                println!(
                    "{:<8} {:>8} {:>10} {:>6}  {state}",
                    c.chain, c.height, c.certified, c.lag
                );
            }
        }
    }
    Ok(())
}

/// `fapiao reconcile`: payments against invoices per day and method; exits non-zero when
/// a balance check fails.
pub(crate) fn reconcile(opts: &ClientOpts, from: &str, to: &str, format: &str) -> Result<()> {
    let (profile, _) = load_profile(&opts.client)?;
    let client = Client::new(&profile.node_url, profile.read_token.clone());
    let r = client.reconciliation(from, to)?;
    let rows: Vec<&fapiao_api::dto::ReconRowDto> = r.rows.iter().chain(std::iter::once(&r.total)).collect();
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&r)?),
        "csv" => {
            println!("day,method,payments,paid,refunded,invoiced,reversed,not_invoiced,voided");
            for x in &rows {
                println!(
                    "{},{},{},{},{},{},{},{},{}",
                    x.day,
                    x.method,
                    x.payments,
                    Fen::from_fen(x.paid_fen),
                    Fen::from_fen(x.refunded_fen),
                    Fen::from_fen(x.invoiced_fen),
                    Fen::from_fen(x.reversed_fen),
                    Fen::from_fen(x.not_invoiced_fen),
                    Fen::from_fen(x.voided_fen)
                );
            }
        }
        _ => {
            println!(
                "{:<10} {:<12} {:>6} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10}",
                "day", "method", "count", "paid", "refunded", "invoiced", "reversed", "to invoice", "voided"
            );
            for x in &rows {
                println!(
                    "{:<10} {:<12} {:>6} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10}",
                    x.day,
                    x.method,
                    x.payments,
                    Fen::from_fen(x.paid_fen).to_string(),
                    Fen::from_fen(x.refunded_fen).to_string(),
                    Fen::from_fen(x.invoiced_fen).to_string(),
                    Fen::from_fen(x.reversed_fen).to_string(),
                    Fen::from_fen(x.not_invoiced_fen).to_string(),
                    Fen::from_fen(x.voided_fen).to_string()
                );
            }
            if !r.uninvoiced.is_empty() {
                println!(
                    "not invoiced yet: {}",
                    r.uninvoiced
                        .iter()
                        .map(|(p, f)| format!("{p} ({})", Fen::from_fen(*f)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for (p, n) in &r.needs_red_letter {
                println!("needs red-letter: invoice {n} (payment {p} was refunded after invoicing)");
            }
            if !r.by_rate.is_empty() {
                println!(
                    "{:<6} {:>14} {:>12} {:>14} {:>12}",
                    "rate", "issued net", "issued tax", "reversed net", "reversed tax"
                );
                for x in &r.by_rate {
                    println!(
                        "{:<6} {:>14} {:>12} {:>14} {:>12}",
                        x.rate,
                        Fen::from_fen(x.issued_net_fen).to_string(),
                        Fen::from_fen(x.issued_tax_fen).to_string(),
                        Fen::from_fen(x.reversed_net_fen).to_string(),
                        Fen::from_fen(x.reversed_tax_fen).to_string()
                    );
                }
            }
            for q in &r.quota {
                println!(
                    "quota {}: granted {}  used {}  left {}{}",
                    q.month,
                    Fen::from_fen(q.granted_fen),
                    Fen::from_fen(q.used_fen),
                    Fen::from_fen(q.left_fen),
                    if q.suspended { "  SUSPENDED" } else { "" }
                );
            }
            println!("{}", if r.balanced { "balanced" } else { "NOT BALANCED" });
        }
    }
    if !r.balanced {
        for e in &r.errors {
            eprintln!("balance error: {e}");
        }
        bail!("{} balance error(s)", r.errors.len());
    }
    Ok(())
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
