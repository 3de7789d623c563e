//! Every error code the ledger answers with, in one place: its stable text, the HTTP
//! status it is served with, and how long a client should wait before trying again.
//!
//! The domain, admission, the API server and the client all name codes through
//! [`ErrorCode`], so a code cannot be spelled two ways or served with two statuses. The
//! status is a plain number: this crate knows no HTTP. Business failures of an invoice
//! request (`FailureReason`, with their remedies in `catalogue`) are a different thing:
//! they are recorded on the ledger, while these codes refuse a request or an event.

use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $text:literal, $status:literal, $retry:expr;)*) => {
        /// An error code: why a request or an event was refused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The stable text clients match on, e.g. `MAINTENANCE`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $text,)*
                }
            }

            /// The HTTP status the API serves it with.
            pub const fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$name => $status,)*
                }
            }

            /// Seconds a client should wait before trying again, when waiting can help
            /// (the API sends it as `Retry-After`). `CHECKS_EXHAUSTED` waits until the
            /// next business day, which only the server can compute: `None` here.
            pub const fn retry_after_s(self) -> Option<u32> {
                match self {
                    $(ErrorCode::$name => $retry,)*
                }
            }
        }
    };
}

codes! {
    // ---- the event itself (admission and execution) ----------------------------------
    /// The event's bytes do not decode.
    MalformedEvent = "MALFORMED_EVENT", 400, None;
    /// The event's bytes are above the node's limit.
    EventTooLarge = "EVENT_TOO_LARGE", 413, None;
    /// A batch holds more events than the node takes at once.
    BatchTooLarge = "BATCH_TOO_LARGE", 413, None;
    /// Signed for another network.
    WrongNetwork = "WRONG_NETWORK", 400, None;
    /// For a chain this node does not write.
    WrongChain = "WRONG_CHAIN", 400, None;
    /// The signature does not verify.
    BadSignature = "BAD_SIGNATURE", 401, None;
    /// The author may not sign this kind of event on this chain.
    UnauthorizedKey = "UNAUTHORIZED_KEY", 403, None;
    /// This node's member owns no chain.
    NoChain = "NO_CHAIN", 403, None;
    /// A field breaks a rule.
    InvalidField = "INVALID_FIELD", 400, None;
    /// An amount is above the ledger's maximum.
    AmountAboveMax = "AMOUNT_ABOVE_MAX", 400, None;
    /// A sum would overflow.
    AmountOverflow = "AMOUNT_OVERFLOW", 400, None;
    /// A record reached its bound (refunds per payment, ...).
    LimitReached = "LIMIT_REACHED", 400, None;
    /// The payment id is used by another event.
    DuplicatePaymentId = "DUPLICATE_PAYMENT_ID", 409, None;
    /// The refund id is used by another event.
    DuplicateRefundId = "DUPLICATE_REFUND_ID", 409, None;
    /// The request id is used by another event.
    DuplicateRequestId = "DUPLICATE_REQUEST_ID", 409, None;
    /// The deposit id is used by another event.
    DuplicateDepositId = "DUPLICATE_DEPOSIT_ID", 409, None;
    /// A refund or void names a payment the chain does not hold.
    PaymentUnknown = "PAYMENT_UNKNOWN", 400, None;
    /// The payment is already voided.
    PaymentAlreadyVoided = "PAYMENT_ALREADY_VOIDED", 400, None;
    /// A refund above what is left of the payment.
    RefundExceedsRefundable = "REFUND_EXCEEDS_REFUNDABLE", 400, None;
    /// A voided payment may not have been invoiced.
    PaymentInvoiced = "PAYMENT_INVOICED", 400, None;
    /// The client key to revoke is not authorised.
    KeyNotAuthorized = "KEY_NOT_AUTHORIZED", 400, None;

    // ---- the node's state: wait and try again ----------------------------------------
    /// Too many events wait for a block.
    Busy = "BUSY", 503, Some(1);
    /// The node is stopping or failed.
    Unavailable = "UNAVAILABLE", 503, Some(1);
    /// The operator paused writes; that lasts minutes.
    Maintenance = "MAINTENANCE", 503, Some(30);
    /// Free disk is below the reserve; freeing it takes an operator.
    StorageFull = "STORAGE_FULL", 503, Some(10);
    /// Peers hold blocks of this node's own chain above its head.
    OwnChainBehind = "OWN_CHAIN_BEHIND", 503, Some(5);
    /// The newest block of the chain is not certified yet.
    NotCertified = "NOT_CERTIFIED", 503, Some(1);
    /// The state as of the height or date asked for is older than the node keeps.
    StateNotKept = "STATE_NOT_KEPT", 410, None;
    /// Too many requests from one address.
    RateLimited = "RATE_LIMITED", 429, Some(1);
    /// This invoice was verified its daily number of times.
    ChecksExhausted = "CHECKS_EXHAUSTED", 429, None;

    // ---- the HTTP request ------------------------------------------------------------
    /// A read without the right bearer token.
    Unauthorized = "UNAUTHORIZED", 401, None;
    /// The body is above the node's limit.
    BodyTooLarge = "BODY_TOO_LARGE", 413, None;
    /// The body is not `application/json`.
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE", 415, None;
    /// The body is not the JSON the operation takes.
    MalformedJson = "MALFORMED_JSON", 400, None;
    /// A path parameter does not parse.
    MalformedPath = "MALFORMED_PATH", 400, None;
    /// A query parameter does not parse.
    MalformedQuery = "MALFORMED_QUERY", 400, None;
    /// An event id is not 64 hex digits.
    MalformedId = "MALFORMED_ID", 400, None;
    /// An invoice number is not 20 digits.
    MalformedNumber = "MALFORMED_NUMBER", 400, None;
    /// A date is not `YYYY-MM-DD`.
    BadDate = "BAD_DATE", 400, None;
    /// A date range is reversed or too long.
    BadRange = "BAD_RANGE", 400, None;
    /// A failure reason code the catalogue does not have.
    UnknownReason = "UNKNOWN_REASON", 400, None;
    /// No such endpoint or record.
    NotFound = "NOT_FOUND", 404, None;
    /// The event was never recorded on this node.
    NotRecorded = "NOT_RECORDED", 404, None;
    /// A stored record failed its check: the operator must repair the ledger.
    StoreDamaged = "STORE_DAMAGED", 500, None;
    /// The node could not execute an admitted event (it panicked or read a damaged
    /// record): the event is refused alone and the block goes on. An event's outcome,
    /// never an HTTP answer.
    ExecutionFailed = "EXECUTION_FAILED", 500, None;
    /// Anything else that went wrong inside the node.
    Internal = "INTERNAL", 500, None;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The text is not a code this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(*c));
            assert!((400..600).contains(&c.http_status()), "{c}");
            // Only a refusal that waiting can lift says how long to wait.
            if c.retry_after_s().is_some() {
                assert!(matches!(c.http_status(), 429 | 503), "{c}");
            }
        }
        assert!("NOPE".parse::<ErrorCode>().is_err());
    }
}
