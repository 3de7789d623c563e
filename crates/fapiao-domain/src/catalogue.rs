//! The failure catalogue: for every reason code, its cause, whether it is retryable and
//! the remedy shown to the merchant.
//!
//! The ledger records only the code, the field and the detail (see
//! [`fapiao_core::event::InvoiceFailed`]); remedies are looked up here so their wording
//! can improve without changing what replaying old blocks derives.
//!
//! "Retryable" means the same request, unchanged, can succeed once something outside it
//! changes (a fee deposit, a policy change, a payment arriving). Every other failure
//! needs a corrected request linked by `retry_of`.

use fapiao_core::event::FailureReason;

/// One catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureInfo {
    /// The reason.
    pub reason: FailureReason,
    /// Stable SCREAMING_SNAKE_CASE code used by the API, CLI and docs.
    pub code: &'static str,
    /// Whether the unchanged request can succeed later.
    pub retryable: bool,
    /// One line saying what went wrong.
    pub cause: &'static str,
    /// One line telling the merchant what to do.
    pub remedy: &'static str,
}

/// Every reason, in catalogue order (the canonical variant order).
pub const ALL: [FailureReason; FailureReason::ALL.len()] = FailureReason::ALL;

/// The catalogue entry of a reason.
pub fn info(reason: FailureReason) -> FailureInfo {
    use FailureReason as R;
    let (code, retryable, remedy) = match reason {
        R::BuyerNameMissing => ("BUYER_NAME_MISSING", false, "Enter the buyer's registered name and re-issue with retry_of."),
        R::BuyerTaxIdInvalid => ("BUYER_TAX_ID_INVALID", false, "Ask the buyer for their 18-character unified social credit code, check it, and re-issue with retry_of."),
        R::BuyerTaxIdRequired => ("BUYER_TAX_ID_REQUIRED", false, "A special VAT invoice needs the buyer's tax id: add it, or request a normal invoice, and re-issue with retry_of."),
        R::NoLines => ("NO_LINES", false, "Add at least one line and re-issue with retry_of."),
        R::TaxRateNotAllowed => ("TAX_RATE_NOT_ALLOWED", false, "Use a rate or flag in this merchant's policy (the failure's detail lists them), put exempt (免税) sales on an ordinary invoice, and re-issue with retry_of; a rate the merchant should have is added by the operator (`fapiao policy set`)."),
        R::LineQuantityNotPositive => ("LINE_QUANTITY_NOT_POSITIVE", false, "Every line needs a quantity above zero; correct it and re-issue with retry_of."),
        R::LinePriceNotPositive => ("LINE_PRICE_NOT_POSITIVE", false, "Every line needs a unit price above zero; correct it and re-issue with retry_of."),
        R::PaymentsInvalid => ("PAYMENTS_INVALID", false, "List each payment the invoice covers exactly once and re-issue with retry_of."),
        R::PaymentNotFound => ("PAYMENT_NOT_FOUND", true, "Record the payment first (or check its id); the same request can then be re-issued."),
        R::PaymentVoided => ("PAYMENT_VOIDED", false, "The payment was voided as wrongly entered: invoice the correct payment instead, with retry_of."),
        R::PaymentFullyInvoiced => ("PAYMENT_FULLY_INVOICED", false, "This payment is already fully invoiced (or refunded): red-letter the earlier invoice first if it was wrong."),
        R::TotalAboveInvoiceable => ("TOTAL_ABOVE_INVOICEABLE", false, "The invoice total is more than the payments still cover (paid - refunded - invoiced): reduce the lines or add payments, and re-issue with retry_of."),
        R::InvoiceTypeNotPermitted => ("INVOICE_TYPE_NOT_PERMITTED", true, "This merchant may not issue this invoice type: request a permitted type, or ask the consortium operator to change the policy and re-issue."),
        R::TotalAboveMerchantLimit => ("TOTAL_ABOVE_MERCHANT_LIMIT", true, "The total is above this merchant's per-invoice limit: split it into several invoices, or ask the operator to raise the limit and re-issue."),
        R::FeeBalanceTooLow => ("FEE_BALANCE_TOO_LOW", true, "Ask the consortium operator to deposit fees: the node then issues the request automatically, in the order requests failed (or re-issue it unchanged)."),
        R::RetryOfInvalid => ("RETRY_OF_INVALID", false, "retry_of must name an earlier failed request of this merchant that has not been retried yet."),
        R::AmountOverflow => ("AMOUNT_OVERFLOW", false, "A line's amount is too large to represent: check quantities and prices and re-issue with retry_of."),
        R::InvoiceNotFound => ("INVOICE_NOT_FOUND", false, "Check the invoice number: it must be an issued (blue) invoice of this merchant."),
        R::InvoiceAlreadyReversed => ("INVOICE_ALREADY_REVERSED", false, "Nothing is left to reverse on this invoice."),
        R::RedLetterExceedsRemaining => ("RED_LETTER_EXCEEDS_REMAINING", false, "Reverse at most what is left of each line of the original (its red invoices show what was taken already), or reverse the rest in full."),
        R::ReplacesInvalid => ("REPLACES_INVALID", false, "replaces must name an invoice of this merchant that was red-letter reversed and not replaced yet, and list only payments it drew on."),
        R::PaymentInvoicesLimit => ("PAYMENT_INVOICES_LIMIT", false, "Invoice what is left of this payment together with the others in fewer, larger invoices: list other payments, or red-letter and re-issue the small ones as one."),
        R::RedLettersLimit => ("RED_LETTERS_LIMIT", false, "Reverse what is left of the invoice in one full red-letter instead of more partial ones."),
        R::RedFormOpen => ("RED_FORM_OPEN", true, "Wait for the open confirmation form to be answered (or withdraw it if you started it), then request the reversal again: `fapiao redform list INVOICE`."),
        R::RedFormNotConfirmed => ("RED_FORM_NOT_CONFIRMED", false, "The buyer did not confirm the reversal: agree it with the buyer, then start a new form (`fapiao redform start INVOICE` with a new request id)."),
        R::QuotaExceeded => ("QUOTA_EXCEEDED", true, "Ask the tax office to raise this month's quota (`fapiao quota grant`), or split the sale over months: the node issues the request automatically, in the order requests failed, once a grant makes room (or re-issue it unchanged). A red invoice gives its total back."),
        R::QuotaExpired => ("QUOTA_EXPIRED", true, "File the monthly return, then ask the tax office to re-validate the quota for the new month (`fapiao quota revalidate`) or grant one: the node then issues the waiting requests automatically."),
        R::QuotaSuspended => ("QUOTA_SUSPENDED", true, "Resolve the matter with the tax office; once it resumes the quota (`fapiao quota resume`) the waiting requests are issued automatically."),
        R::RedLetterLineUnknown => ("RED_LETTER_LINE_UNKNOWN", false, "List the lines to reverse as they are printed on the original invoice (same description, classification code and tax rate), in the original's order, each at most once; then start a new red-letter request."),
        R::TaxCodeUnknown => ("TAX_CODE_UNKNOWN", false, "Give each line the 19-digit tax classification code (税收分类编码) of what was sold, from the consortium's table (`fapiao genesis show` lists it), and re-issue with retry_of; a code the table lacks is added by a new genesis or configuration."),
        R::TaxRateNotInForce => ("TAX_RATE_NOT_IN_FORCE", false, "Use the rate in force on the issue date (the failure lists the merchant's rules for this rate) and re-issue with retry_of; the operator schedules rate changes with `fapiao policy set`."),
    };
    FailureInfo {
        reason,
        code,
        retryable,
        cause: cause(reason),
        remedy,
    }
}

/// What went wrong, in one line.
fn cause(reason: FailureReason) -> &'static str {
    use FailureReason as R;
    match reason {
        R::BuyerNameMissing => "The request has no buyer name.",
        R::BuyerTaxIdInvalid => "The buyer tax id is not a valid unified social credit code (length, characters or check character).",
        R::BuyerTaxIdRequired => "A special VAT invoice was requested without the buyer's tax id.",
        R::NoLines => "The request has no lines.",
        R::TaxRateNotAllowed => "A line's rate or flag is not in the merchant's policy, or an exempt (免税) line is on a special VAT invoice.",
        R::LineQuantityNotPositive => "A line's quantity is zero or negative.",
        R::LinePriceNotPositive => "A line's unit price is zero or negative.",
        R::PaymentsInvalid => "No payment is listed, or one is listed twice.",
        R::PaymentNotFound => "A listed payment is not (yet) recorded on this merchant's chain.",
        R::PaymentVoided => "A listed payment was voided as wrongly entered.",
        R::PaymentFullyInvoiced => "A listed payment has nothing left to invoice (paid minus refunded minus invoiced).",
        R::TotalAboveInvoiceable => "The invoice total is more than the listed payments still cover.",
        R::InvoiceTypeNotPermitted => "The merchant's policy does not permit this invoice type.",
        R::TotalAboveMerchantLimit => "The total is above the merchant's per-invoice limit.",
        R::FeeBalanceTooLow => "The merchant's invoicing fee balance is below the fee for one invoice.",
        R::RetryOfInvalid => "retry_of names no request of this merchant, one that did not fail, or one already retried.",
        R::AmountOverflow => "A line's amount is too large to represent.",
        R::InvoiceNotFound => "The red-letter request names no issued (blue) invoice of this merchant.",
        R::InvoiceAlreadyReversed => "The invoice to reverse is already fully reversed.",
        R::RedLetterExceedsRemaining => "A partial red-letter line reverses more than is left of the original line it names.",
        R::ReplacesInvalid => "replaces names no red-letter reversed invoice of this merchant, one already replaced, or one that did not draw on the listed payments.",
        R::PaymentInvoicesLimit => "A listed payment is already drawn on by 100 invoices, the most one payment may carry (the bound keeps its record small).",
        R::RedLettersLimit => "The invoice already has 100 red-letter invoices, the most one invoice may have.",
        R::RedFormOpen => "A red-letter confirmation form on this invoice is still waiting for an answer; one form waits at a time.",
        R::RedFormNotConfirmed => "The buyer has booked or claimed the invoice, so the reversal needed its confirmation; the form was rejected, withdrawn or left 72 hours unanswered.",
        R::QuotaExceeded => "The invoice's total (tax included) is more than is left of the merchant's invoicing quota (授信额度) for the month.",
        R::QuotaExpired => "The merchant invoices under a quota and has none for this month (UTC+8) yet: a quota ends with its month and is not carried over.",
        R::QuotaSuspended => "The tax office suspended the merchant's invoicing quota for the month.",
        R::RedLetterLineUnknown => "A partial red-letter line names no line of the original invoice with something left, or lists the original's lines out of their order.",
        R::TaxCodeUnknown => "A line's tax classification code is not 19 digits, or is not in the consortium's classification table.",
        R::TaxRateNotInForce => "The merchant's policy has the line's rate, but no rule for it is in force on the issue date (UTC+8): the rate was scheduled to start later or has ended.",
    }
}

/// The reason with this code.
pub fn from_code(code: &str) -> Option<FailureReason> {
    ALL.into_iter().find(|r| info(*r).code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_lists_every_variant_once_in_canonical_order() {
        for (i, r) in ALL.iter().enumerate() {
            assert_eq!(r.index() as usize, i, "{r:?}");
            // The canonical encoding of a variant is its index, little-endian u32.
            assert_eq!(fapiao_core::codec::to_bytes(r), (i as u32).to_le_bytes());
        }
        // One past the last index is no reason at all: the list is complete.
        let past: Result<FailureReason, _> = fapiao_core::codec::decode(&(ALL.len() as u32).to_le_bytes());
        assert!(past.is_err());
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut codes: Vec<&str> = ALL.iter().map(|r| info(*r).code).collect();
        for r in ALL {
            assert_eq!(from_code(info(r).code), Some(r));
            assert!(!info(r).remedy.is_empty() && !info(r).cause.is_empty());
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
    }

    #[test]
    fn the_runbook_has_a_row_for_every_code() {
        // Read at run time: cargo sets CARGO_MANIFEST_DIR for the test process.
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo");
        let path = std::path::Path::new(&dir).join("../../docs/OPERATIONS.md");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for r in ALL {
            let code = info(r).code;
            assert!(
                text.lines().any(|l| l.starts_with("| ") && l.contains(code)),
                "docs/OPERATIONS.md's failure table has no row for {code}"
            );
        }
    }

    #[test]
    fn only_external_conditions_are_retryable() {
        let retryable: Vec<&str> = ALL
            .iter()
            .filter(|r| info(**r).retryable)
            .map(|r| info(*r).code)
            .collect();
        assert_eq!(
            retryable,
            vec![
                "PAYMENT_NOT_FOUND",
                "INVOICE_TYPE_NOT_PERMITTED",
                "TOTAL_ABOVE_MERCHANT_LIMIT",
                "FEE_BALANCE_TOO_LOW",
                "RED_FORM_OPEN",
                "QUOTA_EXCEEDED",
                "QUOTA_EXPIRED",
                "QUOTA_SUSPENDED"
            ]
        );
    }
}
