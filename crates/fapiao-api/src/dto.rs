//! The API's JSON shapes and their conversions from ledger types. Internal types are
//! not serialised for the API's sake; these are.

use fapiao_core::event::{
    Buyer, ClaimRefusal, DerivedKind, EventKind, IssuedLine, LineItem, QuotaAction, RedFormRefusal, RedLetterScope,
};
use fapiao_core::state::InvoiceStatus;
use fapiao_core::{Entry, Header, InvoiceNumber, TaxRate};
use fapiao_domain::catalogue;
use fapiao_domain::state::{InvoiceRecord, ReissueTrigger, RequestBody, RequestOutcome, RequestRecord};
use fapiao_domain::ErrorCode;
use fapiao_engine::{FailureRow, NodeStatus, PaymentView};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A string schema that takes only `names` (and `null` when `nullable`): the OpenAPI
/// form of a closed set, built from the list the code itself uses.
fn closed_set(names: impl IntoIterator<Item = &'static str>, nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut values: Vec<serde_json::Value> = names.into_iter().map(Into::into).collect();
    let ty = if nullable {
        values.push(serde_json::Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(ty)
        .enum_values(Some(values))
        .build()
}

mod blocks;
mod entries;
mod events;
mod invoices;
mod payments;
mod requests;

pub use blocks::*;
pub use entries::*;
pub use events::*;
pub use invoices::*;
pub use payments::*;
pub use requests::*;
