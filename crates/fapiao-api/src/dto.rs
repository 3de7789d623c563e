//! The API's JSON shapes and their conversions from ledger types. Internal types are
//! not serialised for the API's sake; these are.

use fapiao_core::event::{
    Buyer, ClaimRefusal, DerivedKind, EventKind, IssuedLine, LineItem, QuotaAction, RedFormRefusal, RedLetterScope,
};
use fapiao_core::{Entry, Header, InvoiceNumber, TaxRate};
use fapiao_domain::catalogue;
use fapiao_domain::state::{InvoiceRecord, ReissueTrigger, RequestBody, RequestOutcome, RequestRecord};
use fapiao_domain::ErrorCode;
use fapiao_engine::{FailureRow, NodeStatus, PaymentView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

mod blocks;
mod events;
mod invoices;
mod payments;
mod requests;

pub use blocks::*;
pub use events::*;
pub use invoices::*;
pub use payments::*;
pub use requests::*;
