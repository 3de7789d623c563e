//! Why an event may not enter a block.

use super::*;
use crate::code::ErrorCode;

/// Why an event may not enter a block. Nothing is recorded for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Signed for another network.
    #[error("event is for network {found}, this network is {expected}")]
    WrongNetwork {
        /// This network.
        expected: NetworkId,
        /// The event's.
        found: NetworkId,
    },
    /// Sent to the wrong chain.
    #[error("event is for chain {found}, this is chain {expected}")]
    WrongChain {
        /// This chain.
        expected: MemberCode,
        /// The event's chain.
        found: MemberCode,
    },
    /// The author may not sign this kind of event on this chain.
    #[error("key {author} is not authorised to sign {kind} on this chain")]
    Unauthorized {
        /// The author.
        author: PublicKey,
        /// The event kind.
        kind: &'static str,
    },
    /// A field is malformed or out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The payment id is already used on this chain.
    #[error("payment id {0} is already recorded")]
    DuplicatePaymentId(String),
    /// The refund id is already used.
    #[error("refund id {0} is already recorded")]
    DuplicateRefundId(String),
    /// The request id is already used.
    #[error("request id {0} is already recorded")]
    DuplicateRequestId(String),
    /// The deposit id is already used.
    #[error("deposit id {0} is already recorded")]
    DuplicateDepositId(String),
    /// No such payment.
    #[error("payment {0} is not recorded on this chain")]
    PaymentUnknown(String),
    /// The payment was voided.
    #[error("payment {0} was voided")]
    PaymentAlreadyVoided(String),
    /// The refund is larger than what is left.
    #[error("refund exceeds what is left to refund of payment {payment_id} ({refundable})")]
    RefundExceedsRefundable {
        /// The payment.
        payment_id: String,
        /// What can still be refunded.
        refundable: Fen,
    },
    /// The payment is covered by issued, unreversed invoices.
    #[error("payment {payment_id} is covered by issued invoices; red-letter them first")]
    PaymentInvoiced {
        /// The payment.
        payment_id: String,
        /// Invoices still drawing on it.
        invoices: Vec<InvoiceNumber>,
    },
    /// The client key is not (or no longer) authorised.
    #[error("client key {0} is not authorised on this chain")]
    KeyNotAuthorized(PublicKey),
    /// An amount would overflow.
    #[error("{0} would overflow")]
    Overflow(&'static str),
    /// An amount is above the most any amount may be ([`fapiao_core::money::AMOUNT_FEN_MAX`]).
    #[error("{field}: above the most any amount may be ({max} yuan)")]
    AmountAboveMax {
        /// The field.
        field: String,
        /// The bound.
        max: Fen,
    },
    /// A record already holds the most entries of this kind it may hold.
    #[error("{field}: {detail}")]
    LimitReached {
        /// The field.
        field: String,
        /// Which bound, and where it was reached.
        detail: String,
    },
}

impl Rejection {
    /// A stable code for APIs.
    pub fn code(&self) -> ErrorCode {
        match self {
            Rejection::WrongNetwork { .. } => ErrorCode::WrongNetwork,
            Rejection::WrongChain { .. } => ErrorCode::WrongChain,
            Rejection::Unauthorized { .. } => ErrorCode::UnauthorizedKey,
            Rejection::Invalid { .. } => ErrorCode::InvalidField,
            Rejection::DuplicatePaymentId(_) => ErrorCode::DuplicatePaymentId,
            Rejection::DuplicateRefundId(_) => ErrorCode::DuplicateRefundId,
            Rejection::DuplicateRequestId(_) => ErrorCode::DuplicateRequestId,
            Rejection::DuplicateDepositId(_) => ErrorCode::DuplicateDepositId,
            Rejection::PaymentUnknown(_) => ErrorCode::PaymentUnknown,
            Rejection::PaymentAlreadyVoided(_) => ErrorCode::PaymentAlreadyVoided,
            Rejection::RefundExceedsRefundable { .. } => ErrorCode::RefundExceedsRefundable,
            Rejection::PaymentInvoiced { .. } => ErrorCode::PaymentInvoiced,
            Rejection::KeyNotAuthorized(_) => ErrorCode::KeyNotAuthorized,
            Rejection::Overflow(_) => ErrorCode::AmountOverflow,
            Rejection::AmountAboveMax { .. } => ErrorCode::AmountAboveMax,
            Rejection::LimitReached { .. } => ErrorCode::LimitReached,
        }
    }

    /// The offending field, if one.
    pub fn field(&self) -> Option<String> {
        match self {
            Rejection::WrongNetwork { .. } => Some("network".into()),
            Rejection::WrongChain { .. } => Some("chain".into()),
            Rejection::Unauthorized { .. } => Some("author".into()),
            Rejection::Invalid { field, .. } => Some(field.clone()),
            Rejection::DuplicatePaymentId(_) | Rejection::PaymentUnknown(_) | Rejection::PaymentAlreadyVoided(_) => {
                Some("payment_id".into())
            }
            Rejection::PaymentInvoiced { .. } => Some("payment_id".into()),
            Rejection::DuplicateRefundId(_) => Some("refund_id".into()),
            Rejection::DuplicateRequestId(_) => Some("request_id".into()),
            Rejection::DuplicateDepositId(_) => Some("deposit_id".into()),
            Rejection::RefundExceedsRefundable { .. } => Some("amount".into()),
            Rejection::KeyNotAuthorized(_) => Some("key".into()),
            Rejection::Overflow(f) => Some((*f).into()),
            Rejection::AmountAboveMax { field, .. } | Rejection::LimitReached { field, .. } => Some(field.clone()),
        }
    }
}
