//! The genesis: who the members are and the network's rules. Written by people as TOML,
//! identified by the hash of its canonical encoding (the network id).

use crate::codec;
pub use crate::config::Config;
use crate::event::{InvoiceType, MerchantPolicy};
use crate::hash::{hash, Domain};
use crate::ids::{MemberCode, NetworkId, Timestamp};
use crate::money::{Fen, AMOUNT_FEN_MAX};
use crate::sig::PublicKey;
use crate::tax::{self, Classification, RateRule, TaxRate};
use serde::{Deserialize, Serialize};

/// The genesis format this code reads and writes.
pub const GENESIS_FORMAT_VERSION: u16 = 5;

/// The largest number of members; bounds certificate size.
pub const MEMBERS_MAX: usize = 64;

/// One thing a member may do; a member holds a set of them ([`Roles`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Role {
    /// Runs a node that validates every chain by re-execution and attests; the quorum is
    /// over the witnesses.
    Witness,
    /// Owns a chain and runs the node that produces it; issues invoices.
    Merchant,
    /// Proposes configuration, deposits fees, sets merchant policy.
    Operator,
    /// A tax office or an auditor: may read every chain; claims invoices.
    TaxOffice,
    /// A buyer's finance department: claims invoices.
    Verifier,
}

impl Role {
    /// Every role, in canonical order.
    pub const ALL: [Role; 5] = [
        Role::Witness,
        Role::Merchant,
        Role::Operator,
        Role::TaxOffice,
        Role::Verifier,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Witness => "witness",
            Role::Merchant => "merchant",
            Role::Operator => "operator",
            Role::TaxOffice => "tax_office",
            Role::Verifier => "verifier",
        }
    }

    /// The role named `s`.
    pub fn from_name(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The roles a member holds: one bit per [`Role`], in the order of [`Role::ALL`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct Roles(u8);

impl Roles {
    /// No role.
    pub const NONE: Roles = Roles(0);

    /// The set holding `roles`.
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |acc, r| acc | r.bit()))
    }

    /// Whether the set holds `role`.
    pub fn has(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// The set with `role` added.
    pub fn with(self, role: Role) -> Roles {
        Roles(self.0 | role.bit())
    }

    /// The roles held, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.has(*r))
    }

    pub(crate) fn bits(self) -> u8 {
        self.0
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::name).collect();
        f.write_str(&names.join("+"))
    }
}

/// A consortium member.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Member {
    /// The 6-digit code; a merchant's chain id.
    pub code: MemberCode,
    /// The registered name.
    pub name: String,
    /// The roles it holds (at least one).
    pub roles: Roles,
    /// The member's ed25519 key: signs blocks, attestations and its own events, and is
    /// its network identity.
    pub key: PublicKey,
    /// Network addresses (multiaddr text) where its node listens.
    pub addresses: Vec<String>,
    /// A merchant's initial invoicing policy; `None` for other roles.
    pub policy: Option<MerchantPolicy>,
    /// A merchant's opening fee balance.
    pub initial_fee_balance: Fen,
    /// The organisation's unified social credit code, when it buys from the merchants:
    /// an invoice whose buyer tax id is this code is this member's to book, to confirm
    /// red-letter forms on and to start them (PROTOCOL.md "Buyers").
    pub tax_id: Option<String>,
}

/// A validated genesis in canonical form: the network's rules (name, time, fee, the
/// classification table by code) and the configuration of epoch 0 (members by code,
/// each merchant's rate rules by rate, the quorum, the admin chain). Later epochs'
/// configurations come from the admin chain ([`crate::config`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Genesis {
    format_version: u16,
    network_name: String,
    created_at: Timestamp,
    fee_per_invoice: Fen,
    classifications: Vec<Classification>,
    config: Config,
}

/// Why a genesis or a configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Not TOML of the expected shape.
    #[error("genesis is not valid TOML: {0}")]
    Toml(String),
    /// Not a canonical encoding.
    #[error("genesis bytes do not decode: {0}")]
    Codec(#[from] codec::CodecError),
    /// A field is wrong; the message names it.
    #[error("genesis field `{field}`: {message}")]
    Field {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn field_err(field: impl Into<String>, message: impl Into<String>) -> GenesisError {
    GenesisError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// The default quorum for `n` witnesses: `floor(2n/3) + 1`.
pub fn default_quorum(n: usize) -> u32 {
    (2 * n / 3 + 1) as u32
}

impl Genesis {
    /// Validates and canonicalises (sorts members by code, the classification table by
    /// code and each policy's rate rules). `quorum` defaults to `floor(2n/3)+1` where n
    /// is the number of witnesses. The consortium has no admin chain (its configuration
    /// is fixed) until [`Genesis::with_admin`] names one.
    pub fn new(
        network_name: String,
        created_at: Timestamp,
        quorum: Option<u32>,
        fee_per_invoice: Fen,
        mut classifications: Vec<Classification>,
        members: Vec<Member>,
    ) -> Result<Genesis, GenesisError> {
        if network_name.trim().is_empty() || network_name.len() > 128 {
            return Err(field_err("network_name", "must be 1 to 128 characters"));
        }
        if fee_per_invoice.is_negative() || fee_per_invoice > Fen::MAX {
            return Err(field_err(
                "fee_per_invoice_fen",
                format!("must be 0 to {AMOUNT_FEN_MAX} fen"),
            ));
        }
        tax::canonical_classifications(&mut classifications).map_err(|e| field_err("classifications", e))?;
        let config = Config::new(0, quorum, None, members, Vec::new())?;
        Ok(Genesis {
            format_version: GENESIS_FORMAT_VERSION,
            network_name,
            created_at,
            fee_per_invoice,
            classifications,
            config,
        })
    }

    /// The same genesis with `admin` owning the admin chain (an operator that is not a
    /// merchant), so the configuration can change by epochs.
    pub fn with_admin(self, admin: Option<MemberCode>) -> Result<Genesis, GenesisError> {
        let c = self.config;
        let config = Config::new(0, Some(c.quorum()), admin, c.members().to_vec(), Vec::new())?;
        Ok(Genesis { config, ..self })
    }

    /// The network id: `H_genesis(canonical(self))`.
    pub fn network_id(&self) -> NetworkId {
        NetworkId(hash(Domain::Genesis, &codec::to_bytes(self)))
    }

    /// The network's name.
    pub fn network_name(&self) -> &str {
        &self.network_name
    }

    /// When the genesis was made.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// Fee charged per issued invoice.
    pub fn fee_per_invoice(&self) -> Fen {
        self.fee_per_invoice
    }

    /// The tax classification codes lines may carry, by code.
    pub fn classifications(&self) -> &[Classification] {
        &self.classifications
    }

    /// The classification table's row for `code`.
    pub fn classification(&self, code: &str) -> Option<&Classification> {
        tax::find_classification(&self.classifications, code)
    }

    /// The configuration of epoch 0: the members, roles and keys the network starts
    /// with. Anything that must hold in a later epoch asks [`crate::config::Epochs`].
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decodes canonical bytes and re-validates; the result must re-encode to `bytes`.
    pub fn from_canonical(bytes: &[u8]) -> Result<Genesis, GenesisError> {
        let g: Genesis = codec::decode(bytes)?;
        if g.format_version != GENESIS_FORMAT_VERSION {
            return Err(field_err(
                "format_version",
                format!("unsupported version {}", g.format_version),
            ));
        }
        let again = Genesis::new(
            g.network_name.clone(),
            g.created_at,
            Some(g.config.quorum()),
            g.fee_per_invoice,
            g.classifications.clone(),
            g.config.members().to_vec(),
        )?
        .with_admin(g.config.admin())?;
        if again != g {
            return Err(field_err("members", "not in canonical order"));
        }
        Ok(g)
    }

    /// Parses and validates the TOML form.
    // Long: one field of the genesis file per step, each with its own error naming the field.
    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        let file: GenesisFile = toml::from_str(text).map_err(|e| GenesisError::Toml(e.to_string()))?;
        if file.format_version != GENESIS_FORMAT_VERSION {
            return Err(field_err(
                "format_version",
                format!("this build reads version {GENESIS_FORMAT_VERSION}"),
            ));
        }
        let mut members = Vec::with_capacity(file.members.len());
        for (i, m) in file.members.into_iter().enumerate() {
            let f = |name: &str| format!("members[{i}].{name}");
            let code: MemberCode = m
                .code
                .parse()
                .map_err(|e: crate::ids::ParseError| field_err(f("code"), e.0))?;
            let mut roles = Roles::NONE;
            for name in &m.roles {
                let role = Role::from_name(name).ok_or_else(|| {
                    field_err(
                        f("roles"),
                        format!("unknown role `{name}` (witness, merchant, operator, tax_office, verifier)"),
                    )
                })?;
                if roles.has(role) {
                    return Err(field_err(f("roles"), format!("`{name}` is listed twice")));
                }
                roles = roles.with(role);
            }
            let key = PublicKey::from_hex(&m.public_key).map_err(|e| field_err(f("public_key"), e.to_string()))?;
            let policy = match (m.permitted_invoice_types, m.max_invoice_total_fen, m.tax_rates) {
                (None, None, None) => None,
                (Some(types), Some(max), Some(rates)) => {
                    let mut permitted = Vec::new();
                    for t in types {
                        permitted.push(InvoiceType::from_name(&t).ok_or_else(|| {
                            field_err(
                                f("permitted_invoice_types"),
                                format!("unknown invoice type `{t}` (normal, special_vat)"),
                            )
                        })?);
                    }
                    let rates = rates
                        .iter()
                        .map(RateRuleFile::parse)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| field_err(f("tax_rates"), e))?;
                    Some(MerchantPolicy {
                        permitted_types: permitted,
                        max_invoice_total: Fen::from_fen(max),
                        rates,
                    })
                }
                _ => {
                    return Err(field_err(
                        f("permitted_invoice_types"),
                        "set permitted_invoice_types, max_invoice_total_fen and tax_rates, or none of them",
                    ))
                }
            };
            members.push(Member {
                code,
                name: m.name,
                roles,
                key,
                addresses: m.addresses,
                policy,
                initial_fee_balance: Fen::from_fen(m.initial_fee_balance_fen.unwrap_or(0)),
                tax_id: m.tax_id.as_deref().map(crate::uscc::normalise),
            });
        }
        Genesis::new(
            file.network_name,
            Timestamp(file.created_at_ms),
            file.quorum,
            Fen::from_fen(file.fee_per_invoice_fen),
            file.classifications
                .into_iter()
                .map(|c| Classification {
                    code: c.code,
                    short_name: c.short_name,
                })
                .collect(),
            members,
        )?
        .with_admin(
            file.admin
                .as_deref()
                .map(|a| a.parse().map_err(|e: crate::ids::ParseError| field_err("admin", e.0)))
                .transpose()?,
        )
    }

    /// The TOML form, in canonical order, with the quorum written out.
    pub fn to_toml(&self) -> String {
        let file = GenesisFile {
            format_version: self.format_version,
            network_name: self.network_name.clone(),
            created_at_ms: self.created_at.0,
            quorum: Some(self.config.quorum()),
            admin: self.config.admin().map(|a| a.to_string()),
            fee_per_invoice_fen: self.fee_per_invoice.fen(),
            classifications: self
                .classifications
                .iter()
                .map(|c| ClassificationFile {
                    code: c.code.clone(),
                    short_name: c.short_name.clone(),
                })
                .collect(),
            members: self
                .config
                .members()
                .iter()
                .map(|m| MemberFile {
                    code: m.code.to_string(),
                    name: m.name.clone(),
                    roles: m.roles.iter().map(|r| r.name().to_string()).collect(),
                    public_key: m.key.to_hex(),
                    addresses: m.addresses.clone(),
                    permitted_invoice_types: m
                        .policy
                        .as_ref()
                        .map(|p| p.permitted_types.iter().map(|t| t.name().to_string()).collect()),
                    max_invoice_total_fen: m.policy.as_ref().map(|p| p.max_invoice_total.fen()),
                    tax_rates: m
                        .policy
                        .as_ref()
                        .map(|p| p.rates.iter().map(RateRuleFile::of).collect()),
                    initial_fee_balance_fen: m.roles.has(Role::Merchant).then_some(m.initial_fee_balance.fen()),
                    tax_id: m.tax_id.clone(),
                })
                .collect(),
        };
        let body = match toml::to_string_pretty(&file) {
            Ok(s) => s,
            Err(e) => panic!("genesis always serialises to TOML: {e}"),
        };
        format!(
            "# Fapiao consortium genesis. Network id: {}\n# Editing anything changes the network id.\n{body}",
            self.network_id()
        )
    }
}

/// The TOML shape of the genesis file (documented in `docs/FORMAT.md`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    format_version: u16,
    network_name: String,
    created_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    quorum: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    admin: Option<String>,
    fee_per_invoice_fen: i64,
    classifications: Vec<ClassificationFile>,
    members: Vec<MemberFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassificationFile {
    code: String,
    short_name: String,
}

/// A rate rule in the TOML: `{ rate = "13%", from = "2019-04-01" }`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateRuleFile {
    rate: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    until: Option<String>,
}

impl RateRuleFile {
    fn parse(&self) -> Result<RateRule, String> {
        let day = |d: &Option<String>| {
            d.as_deref()
                .map(|t| tax::parse_date(t).ok_or_else(|| format!("`{t}` is not a date written YYYY-MM-DD")))
                .transpose()
        };
        Ok(RateRule {
            rate: self
                .rate
                .parse::<TaxRate>()
                .map_err(|e| format!("`{}`: {}", self.rate, e.0))?,
            from: day(&self.from)?,
            until: day(&self.until)?,
        })
    }

    fn of(r: &RateRule) -> RateRuleFile {
        RateRuleFile {
            rate: match r.rate.flag_name() {
                Some(flag) => flag.to_owned(),
                None => r.rate.to_string(),
            },
            from: r.from.map(tax::format_date),
            until: r.until.map(tax::format_date),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFile {
    code: String,
    name: String,
    roles: Vec<String>,
    public_key: String,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    permitted_invoice_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    max_invoice_total_fen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    tax_rates: Option<Vec<RateRuleFile>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    initial_fee_balance_fen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    tax_id: Option<String>,
}
