//! Invoice writes and reads: request, retry, red-letter, show, list, history, failures
//! and the failure catalogue.

use super::*;

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
        /// Accepted for scripts written before it became optional: re-issuing always
        /// takes failed requests.
        #[arg(long, hide = true)]
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

// Long: one arm per `invoice` subcommand.
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
pub(super) fn retry(
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
    let fapiao_api::dto::RequestBodyDto::Invoice(body) = &original.request else {
        bail!("{request} is a red-letter request; only invoice requests are retried");
    };
    let mut r = body
        .to_request()
        .map_err(|e| anyhow!("the node sent a request this client cannot read: {e}"))?;
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

pub(super) fn print_request(ctx: &Ctx, id: &str) -> Result<()> {
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

pub(super) fn print_invoice(i: &InvoiceDto) {
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

pub(super) fn print_catalogue(json: bool) -> Result<()> {
    let all = fapiao_domain::catalogue::ALL.map(fapiao_domain::catalogue::info);
    if json {
        // The API's own shape (`GET /v1/failure-catalogue`).
        let v: Vec<fapiao_api::dto::CatalogueEntryDto> = all.iter().map(Into::into).collect();
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

pub(super) fn print_failures(list: &FailureListDto) {
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
