//! The failure catalogue: for every reason code, whether it is retryable and the remedy
//! shown to the merchant.
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
    /// One line telling the merchant what to do.
    pub remedy: &'static str,
}

/// Every reason, in catalogue order.
pub const ALL: [FailureReason; 21] = [
    FailureReason::BuyerNameMissing,
    FailureReason::BuyerTaxIdInvalid,
    FailureReason::BuyerTaxIdRequired,
    FailureReason::NoLines,
    FailureReason::TaxRateNotAllowed,
    FailureReason::LineQuantityNotPositive,
    FailureReason::LinePriceNotPositive,
    FailureReason::PaymentsInvalid,
    FailureReason::PaymentNotFound,
    FailureReason::PaymentReversed,
    FailureReason::PaymentFullyInvoiced,
    FailureReason::TotalAboveInvoiceable,
    FailureReason::InvoiceTypeNotPermitted,
    FailureReason::TotalAboveMerchantLimit,
    FailureReason::FeeBalanceTooLow,
    FailureReason::RetryOfInvalid,
    FailureReason::AmountOverflow,
    FailureReason::InvoiceNotFound,
    FailureReason::InvoiceAlreadyReversed,
    FailureReason::RedLetterExceedsRemaining,
    FailureReason::ReplacesInvalid,
];

/// The catalogue entry of a reason.
pub fn info(reason: FailureReason) -> FailureInfo {
    use FailureReason as R;
    let (code, retryable, remedy) = match reason {
        R::BuyerNameMissing => ("BUYER_NAME_MISSING", false, "Enter the buyer's registered name and re-issue with retry_of."),
        R::BuyerTaxIdInvalid => ("BUYER_TAX_ID_INVALID", false, "Ask the buyer for their 18-character unified social credit code, check it, and re-issue with retry_of."),
        R::BuyerTaxIdRequired => ("BUYER_TAX_ID_REQUIRED", false, "A special VAT invoice needs the buyer's tax id: add it, or request a normal invoice, and re-issue with retry_of."),
        R::NoLines => ("NO_LINES", false, "Add at least one line and re-issue with retry_of."),
        R::TaxRateNotAllowed => ("TAX_RATE_NOT_ALLOWED", false, "Use one of the tax rates allowed by the consortium (see genesis) and re-issue with retry_of."),
        R::LineQuantityNotPositive => ("LINE_QUANTITY_NOT_POSITIVE", false, "Every line needs a quantity above zero; correct it and re-issue with retry_of."),
        R::LinePriceNotPositive => ("LINE_PRICE_NOT_POSITIVE", false, "Every line needs a unit price above zero; correct it and re-issue with retry_of."),
        R::PaymentsInvalid => ("PAYMENTS_INVALID", false, "List each payment the invoice covers exactly once and re-issue with retry_of."),
        R::PaymentNotFound => ("PAYMENT_NOT_FOUND", true, "Record the payment first (or check its id); the same request can then be re-issued."),
        R::PaymentReversed => ("PAYMENT_REVERSED", false, "The payment was reversed as wrongly entered: invoice the correct payment instead, with retry_of."),
        R::PaymentFullyInvoiced => ("PAYMENT_FULLY_INVOICED", false, "This payment is already fully invoiced (or refunded): red-letter the earlier invoice first if it was wrong."),
        R::TotalAboveInvoiceable => ("TOTAL_ABOVE_INVOICEABLE", false, "The invoice total is more than the payments still cover (paid - refunded - invoiced): reduce the lines or add payments, and re-issue with retry_of."),
        R::InvoiceTypeNotPermitted => ("INVOICE_TYPE_NOT_PERMITTED", true, "This merchant may not issue this invoice type: request a permitted type, or ask the consortium operator to change the policy and re-issue."),
        R::TotalAboveMerchantLimit => ("TOTAL_ABOVE_MERCHANT_LIMIT", true, "The total is above this merchant's per-invoice limit: split it into several invoices, or ask the operator to raise the limit and re-issue."),
        R::FeeBalanceTooLow => ("FEE_BALANCE_TOO_LOW", true, "Ask the consortium operator to deposit fees: the node then issues the request automatically, in the order requests failed (or re-issue it unchanged)."),
        R::RetryOfInvalid => ("RETRY_OF_INVALID", false, "retry_of must name an earlier failed request of this merchant that has not been retried yet."),
        R::AmountOverflow => ("AMOUNT_OVERFLOW", false, "A line's amount is too large to represent: check quantities and prices and re-issue with retry_of."),
        R::InvoiceNotFound => ("INVOICE_NOT_FOUND", false, "Check the invoice number: it must be an issued (blue) invoice of this merchant."),
        R::InvoiceAlreadyReversed => ("INVOICE_ALREADY_REVERSED", false, "Nothing is left to reverse on this invoice."),
        R::RedLetterExceedsRemaining => ("RED_LETTER_EXCEEDS_REMAINING", false, "Reverse at most what is left of the invoice, using only tax rates that appear on it."),
        R::ReplacesInvalid => ("REPLACES_INVALID", false, "replaces must name an invoice of this merchant that was red-letter reversed and not replaced yet, and list only payments it drew on."),
    };
    FailureInfo {
        reason,
        code,
        retryable,
        remedy,
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
    fn codes_are_unique_and_round_trip() {
        let mut codes: Vec<&str> = ALL.iter().map(|r| info(*r).code).collect();
        for r in ALL {
            assert_eq!(from_code(info(r).code), Some(r));
            assert!(!info(r).remedy.is_empty());
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
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
                "FEE_BALANCE_TOO_LOW"
            ]
        );
    }
}
