//! The consortium's configuration by epoch: who the members are, their roles and keys,
//! the quorum and the admin chain. Genesis holds epoch 0; each configuration change,
//! an event on the admin chain, defines the next epoch (PROTOCOL.md "Epochs").

use crate::genesis::{default_quorum, field_err, GenesisError, Member, Role, Roles, MEMBERS_MAX};
use crate::ids::MemberCode;
use crate::money::{Fen, AMOUNT_FEN_MAX};
use crate::sig::PublicKey;
use crate::tax;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The configuration of one epoch, validated and canonical (members by code, each
/// merchant's rate rules by rate, retired codes ascending).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Config {
    epoch: u32,
    quorum: u32,
    admin: Option<MemberCode>,
    members: Vec<Member>,
    retired: Vec<MemberCode>,
}

/// One change of the configuration, proposed by the admin (the operator that owns the
/// admin chain) as an event on that chain.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ConfigChange {
    /// A new member. A merchant brings its chain's policy and opening fee balance. Its
    /// code must never have been used.
    AddMember(Member),
    /// A member leaves; a merchant's chain is closed (its blocks so far stay valid and
    /// its invoices keep verifying). Its code is retired for good.
    RemoveMember(MemberCode),
    /// A member's key is replaced: from the next epoch only the new key signs for it.
    RotateKey {
        /// The member.
        member: MemberCode,
        /// Its new key.
        key: PublicKey,
    },
    /// A member's roles are replaced. The merchant role comes and goes only with the
    /// member (a chain is opened by [`ConfigChange::AddMember`] and closed by
    /// [`ConfigChange::RemoveMember`]).
    SetRoles {
        /// The member.
        member: MemberCode,
        /// Its roles from the next epoch.
        roles: Roles,
    },
    /// A member's node addresses are replaced.
    SetAddresses {
        /// The member.
        member: MemberCode,
        /// Multiaddr texts.
        addresses: Vec<String>,
    },
    /// The quorum is set; `None` is the default for the number of witnesses.
    SetQuorum(Option<u32>),
    /// A merchant's chain resumes after its block at `height` under a successor `key`
    /// (a frozen chain, or a lost key): from the next epoch its blocks above `height`
    /// made in an earlier epoch are set aside, equivocation evidence against it made
    /// before is superseded, and its next block is certified by the new epoch's
    /// committee (PROTOCOL.md "Chain recovery"). `height` is the chain's certified
    /// prefix; 0 resumes it from its first block.
    ResetChain {
        /// The chain (its merchant's code).
        chain: MemberCode,
        /// The height of the last block kept.
        height: u64,
        /// The successor key.
        key: PublicKey,
    },
}

impl ConfigChange {
    /// The snake_case name, for people.
    pub fn name(&self) -> &'static str {
        match self {
            ConfigChange::AddMember(_) => "add_member",
            ConfigChange::RemoveMember(_) => "remove_member",
            ConfigChange::RotateKey { .. } => "rotate_key",
            ConfigChange::SetRoles { .. } => "set_roles",
            ConfigChange::SetAddresses { .. } => "set_addresses",
            ConfigChange::SetQuorum(_) => "set_quorum",
            ConfigChange::ResetChain { .. } => "reset_chain",
        }
    }
}

/// A configuration change as the admin signs it: the epoch it defines (one more than
/// the admin chain's current one, so a change cannot be replayed into another epoch)
/// and the change.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Reconfiguration {
    /// The epoch this change starts.
    pub epoch: u32,
    /// What changes.
    pub change: ConfigChange,
}

impl Config {
    /// Validates and canonicalises one epoch's configuration: FORMAT.md §5's member
    /// rules, at least one merchant and one witness, a quorum above half the witnesses
    /// (default `floor(2n/3)+1`), an admin that is an operator and not a merchant, and no
    /// member under a retired code.
    pub fn new(
        epoch: u32,
        quorum: Option<u32>,
        admin: Option<MemberCode>,
        members: Vec<Member>,
        retired: Vec<MemberCode>,
    ) -> Result<Config, GenesisError> {
        Config::validated(epoch, quorum, admin, members, retired, &BTreeSet::new())
    }

    /// [`Config::new`], with the keys in `checked` already known to be valid points (the
    /// previous epoch's): a verifier following many changes decompresses each key once.
    // Long: every configuration rule in FORMAT.md §5's order, each with its own error.
    fn validated(
        epoch: u32,
        quorum: Option<u32>,
        admin: Option<MemberCode>,
        mut members: Vec<Member>,
        mut retired: Vec<MemberCode>,
        checked: &BTreeSet<PublicKey>,
    ) -> Result<Config, GenesisError> {
        if members.is_empty() || members.len() > MEMBERS_MAX {
            return Err(field_err("members", format!("must list 1 to {MEMBERS_MAX} members")));
        }
        members.sort_by_key(|m| m.code);
        let mut keys = BTreeSet::new();
        let mut tax_ids = BTreeSet::new();
        for (i, m) in members.iter_mut().enumerate() {
            let f = |name: &str| format!("members[{i}].{name}");
            if m.name.trim().is_empty() || m.name.len() > 256 {
                return Err(field_err(f("name"), "must be 1 to 256 characters"));
            }
            if !checked.contains(&m.key) {
                m.key.check().map_err(|e| field_err(f("public_key"), e.to_string()))?;
            }
            if !keys.insert(m.key) {
                return Err(field_err(f("public_key"), "two members share a key"));
            }
            if m.addresses.len() > 16 || m.addresses.iter().any(|a| a.is_empty() || a.len() > 256) {
                return Err(field_err(f("addresses"), "at most 16 addresses of 1 to 256 characters"));
            }
            if m.initial_fee_balance.is_negative() || m.initial_fee_balance > Fen::MAX {
                return Err(field_err(
                    f("initial_fee_balance_fen"),
                    format!("must be 0 to {AMOUNT_FEN_MAX} fen"),
                ));
            }
            if !m.roles.is_valid() {
                return Err(field_err(f("roles"), "must hold at least one known role"));
            }
            if let Some(t) = &m.tax_id {
                crate::uscc::validate(t).map_err(|e| field_err(f("tax_id"), e.to_string()))?;
                if !tax_ids.insert(t.clone()) {
                    return Err(field_err(f("tax_id"), "two members share a tax id"));
                }
            }
            match (&mut m.policy, m.roles.has(Role::Merchant)) {
                (Some(p), true) => {
                    p.permitted_types.sort();
                    p.permitted_types.dedup();
                    tax::canonical_rate_rules(&mut p.rates).map_err(|e| field_err(f("tax_rates"), e))?;
                    if p.max_invoice_total.is_negative() || p.max_invoice_total > Fen::MAX {
                        return Err(field_err(
                            f("max_invoice_total_fen"),
                            format!("must be 0 to {AMOUNT_FEN_MAX} fen"),
                        ));
                    }
                }
                (None, true) => {
                    return Err(field_err(f("permitted_invoice_types"), "a merchant needs a policy"));
                }
                (Some(_), _) => {
                    return Err(field_err(f("permitted_invoice_types"), "only merchants have a policy"));
                }
                (None, _) => {
                    if !m.initial_fee_balance.is_zero() {
                        return Err(field_err(
                            f("initial_fee_balance_fen"),
                            "only merchants have a fee balance",
                        ));
                    }
                }
            }
        }
        if members.windows(2).any(|w| w[0].code == w[1].code) {
            return Err(field_err("members", "two members share a code"));
        }
        if !members.iter().any(|m| m.roles.has(Role::Merchant)) {
            return Err(field_err("members", "at least one member must be a merchant"));
        }
        let n = members.iter().filter(|m| m.roles.has(Role::Witness)).count();
        if n == 0 {
            return Err(field_err("members", "at least one member must be a witness"));
        }
        let quorum = quorum.unwrap_or_else(|| default_quorum(n));
        // Any two quorums must share a witness, or two blocks could be certified at one
        // height with no witness at fault. Tolerating f faulty witnesses needs
        // floor(2n/3)+1, the default; docs/PROTOCOL.md has the arithmetic.
        if (quorum as usize) <= n / 2 || quorum as usize > n {
            return Err(field_err(
                "quorum",
                format!(
                    "must be more than half the {n} witnesses and at most {n} (default {})",
                    default_quorum(n)
                ),
            ));
        }
        if let Some(a) = admin {
            let ok = members
                .binary_search_by_key(&a, |m| m.code)
                .ok()
                .is_some_and(|i| members[i].roles.has(Role::Operator) && !members[i].roles.has(Role::Merchant));
            if !ok {
                return Err(field_err(
                    "admin",
                    "must be a member that is an operator and not a merchant",
                ));
            }
        }
        retired.sort();
        retired.dedup();
        if let Some(c) = retired
            .iter()
            .find(|c| members.binary_search_by_key(*c, |m| m.code).is_ok())
        {
            return Err(field_err("members", format!("code {c} was retired and cannot return")));
        }
        Ok(Config {
            epoch,
            quorum,
            admin,
            members,
            retired,
        })
    }

    /// The configuration of the next epoch, after `change`. The quorum stays as set
    /// unless the change alters the witnesses, which resets it to the default for
    /// their new number (a [`ConfigChange::SetQuorum`] sets it otherwise).
    pub fn apply(&self, change: &ConfigChange) -> Result<Config, GenesisError> {
        let mut members = self.members.clone();
        let mut retired = self.retired.clone();
        let mut quorum = Some(self.quorum);
        let find = |members: &mut Vec<Member>, code: MemberCode| {
            members
                .iter()
                .position(|m| m.code == code)
                .ok_or_else(|| field_err("member", format!("{code} is not a member")))
        };
        match change {
            ConfigChange::AddMember(m) => {
                if self.member(m.code).is_some() {
                    return Err(field_err("member", format!("{} is already a member", m.code)));
                }
                if m.roles.has(Role::Witness) {
                    quorum = None;
                }
                members.push(m.clone());
            }
            ConfigChange::RemoveMember(code) => {
                let i = find(&mut members, *code)?;
                if members[i].roles.has(Role::Witness) {
                    quorum = None;
                }
                members.remove(i);
                retired.push(*code);
            }
            ConfigChange::RotateKey { member, key } => {
                let i = find(&mut members, *member)?;
                if members[i].key == *key {
                    return Err(field_err("key", "the new key is the current key"));
                }
                members[i].key = *key;
            }
            ConfigChange::SetRoles { member, roles } => {
                let i = find(&mut members, *member)?;
                let m = &mut members[i];
                if m.roles.has(Role::Merchant) != roles.has(Role::Merchant) {
                    return Err(field_err(
                        "roles",
                        "the merchant role comes with add_member and goes with remove_member",
                    ));
                }
                if m.roles.has(Role::Witness) != roles.has(Role::Witness) {
                    quorum = None;
                }
                m.roles = *roles;
            }
            ConfigChange::SetAddresses { member, addresses } => {
                let i = find(&mut members, *member)?;
                members[i].addresses = addresses.clone();
            }
            ConfigChange::SetQuorum(q) => quorum = *q,
            ConfigChange::ResetChain { chain, key, .. } => {
                let i = find(&mut members, *chain)?;
                if !members[i].roles.has(Role::Merchant) {
                    return Err(field_err("chain", format!("{chain} owns no merchant chain")));
                }
                if members[i].key == *key {
                    return Err(field_err("key", "a reset needs a successor key, not the current key"));
                }
                members[i].key = *key;
            }
        }
        let checked: BTreeSet<PublicKey> = self.members.iter().map(|m| m.key).collect();
        Config::validated(self.epoch + 1, quorum, self.admin, members, retired, &checked)
    }

    /// This configuration's epoch (0 for genesis).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Attestations needed for a certificate.
    pub fn quorum(&self) -> u32 {
        self.quorum
    }

    /// The member that owns the admin chain, whose events change the configuration;
    /// `None` when the configuration is fixed.
    pub fn admin(&self) -> Option<MemberCode> {
        self.admin
    }

    /// Codes of members that left; never used again.
    pub fn retired(&self) -> &[MemberCode] {
        &self.retired
    }

    /// Members, by code.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this code.
    pub fn member(&self, code: MemberCode) -> Option<&Member> {
        self.members
            .binary_search_by_key(&code, |m| m.code)
            .ok()
            .map(|i| &self.members[i])
    }

    /// The merchant with this code.
    pub fn merchant(&self, code: MemberCode) -> Option<&Member> {
        self.member(code).filter(|m| m.roles.has(Role::Merchant))
    }

    /// The owner of chain `code`: a merchant, or the admin (whose chain holds the
    /// configuration changes).
    pub fn chain_owner(&self, code: MemberCode) -> Option<&Member> {
        self.member(code)
            .filter(|m| m.roles.has(Role::Merchant) || self.admin == Some(code))
    }

    /// Whether chain `code` is the admin chain.
    pub fn is_admin_chain(&self, code: MemberCode) -> bool {
        self.admin == Some(code)
    }

    /// The witness with this code: its attestations count towards certificates.
    pub fn witness(&self, code: MemberCode) -> Option<&Member> {
        self.member(code).filter(|m| m.roles.has(Role::Witness))
    }

    /// The members holding `role`, by code.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| m.roles.has(role))
    }

    /// The chains of this epoch, by code: the merchants' and the admin chain.
    pub fn chains(&self) -> impl Iterator<Item = MemberCode> + '_ {
        self.members
            .iter()
            .filter(|m| m.roles.has(Role::Merchant) || self.admin == Some(m.code))
            .map(|m| m.code)
    }

    /// Whether member `reader` may hold chain `chain`'s blocks and read its business
    /// data: its owner, every witness (which re-executes it) and every tax office or
    /// auditor; the admin chain, which holds configuration and no business data, every
    /// member. Everyone else gets headers and certificates only (PROTOCOL.md,
    /// "Confidentiality").
    pub fn may_read(&self, reader: MemberCode, chain: MemberCode) -> bool {
        reader == chain
            || self.member(reader).is_some_and(|m| {
                self.admin == Some(chain) || m.roles.has(Role::Witness) || m.roles.has(Role::TaxOffice)
            })
    }

    /// Whether member `code` runs a node: merchants and the admin produce their chains,
    /// witnesses validate every chain.
    pub fn runs_node(&self, code: MemberCode) -> bool {
        self.member(code)
            .is_some_and(|m| m.roles.has(Role::Merchant) || m.roles.has(Role::Witness) || self.admin == Some(code))
    }

    /// Whether a member's node has anyone to replicate with: another member runs a node.
    pub fn replicates(&self, code: MemberCode) -> bool {
        self.members.iter().any(|m| m.code != code && self.runs_node(m.code))
    }

    /// The member with this key.
    pub fn member_by_key(&self, key: &PublicKey) -> Option<&Member> {
        self.members.iter().find(|m| m.key == *key)
    }

    /// The member whose tax id is `tax_id` (a buyer inside the consortium).
    pub fn member_by_tax_id(&self, tax_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.tax_id.as_deref() == Some(tax_id))
    }
}

/// Every epoch's configuration, from genesis to the newest certified change known.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Epochs {
    configs: Vec<Config>,
    resets: Vec<ChainReset>,
}

/// A chain reset as the epochs record it: chain `chain` resumes after its block at
/// `height` from epoch `epoch` on (the epoch the [`ConfigChange::ResetChain`] starts).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChainReset {
    /// The chain.
    pub chain: MemberCode,
    /// The last height kept.
    pub height: u64,
    /// The epoch from which the chain continues.
    pub epoch: u32,
}

impl Epochs {
    /// Epoch 0 only.
    pub fn new(genesis: &crate::Genesis) -> Epochs {
        Epochs {
            configs: vec![genesis.config().clone()],
            resets: Vec::new(),
        }
    }

    /// The configuration of `epoch`, if known.
    pub fn at(&self, epoch: u32) -> Option<&Config> {
        self.configs.get(epoch as usize)
    }

    /// The newest configuration known.
    pub fn latest(&self) -> &Config {
        // `new` starts with epoch 0 and nothing removes one.
        &self.configs[self.configs.len() - 1]
    }

    /// The newest epoch known.
    pub fn current(&self) -> u32 {
        self.latest().epoch
    }

    /// Every configuration, from epoch 0.
    pub fn all(&self) -> &[Config] {
        &self.configs
    }

    /// Takes a certified change: it must define the next epoch and be valid.
    pub fn apply(&mut self, r: &Reconfiguration) -> Result<(), GenesisError> {
        let next = self.current() + 1;
        if r.epoch != next {
            return Err(field_err(
                "epoch",
                format!("the change defines epoch {}, not {next}", r.epoch),
            ));
        }
        let config = self.latest().apply(&r.change)?;
        self.configs.push(config);
        if let ConfigChange::ResetChain { chain, height, .. } = r.change {
            self.resets.push(ChainReset {
                chain,
                height,
                epoch: next,
            });
        }
        Ok(())
    }

    /// The resets of chain `chain`, oldest first.
    pub fn resets(&self, chain: MemberCode) -> impl Iterator<Item = &ChainReset> {
        self.resets.iter().filter(move |r| r.chain == chain)
    }

    /// Whether a block of `chain` at `height` made in epoch `made_in` was set aside by a
    /// reset: it lies above the height a later epoch's reset kept. Such a block is part
    /// of no chain any more, certified or not.
    pub fn set_aside(&self, chain: MemberCode, height: u64, made_in: u32) -> Option<&ChainReset> {
        self.resets(chain)
            .filter(|r| height > r.height && made_in < r.epoch)
            .last()
    }

    /// The epoch whose committee certifies the block of `chain` after `parent` (its
    /// height and epoch; `None` at height 1): the parent's epoch, or the chain's first
    /// epoch at height 1, unless a reset resumed the chain after that parent, whose
    /// epoch then certifies it. So a chain moves to a new epoch in one of its own blocks,
    /// certified by the committee it leaves, and a reset chain's next block is certified
    /// by the committee that reset it (PROTOCOL.md "Safety across an epoch change").
    pub fn certifying(&self, chain: MemberCode, parent: Option<(u64, u32)>) -> u32 {
        let (height, base) = match parent {
            Some(p) => p,
            None => (0, self.first_epoch(chain).unwrap_or(0)),
        };
        self.resets(chain)
            .filter(|r| r.height == height)
            .map(|r| r.epoch)
            .fold(base, u32::max)
    }

    /// Whether equivocation evidence no longer freezes its chain: a reset since resumed
    /// it under a successor key, and the evidence is either about a block the reset set
    /// aside or signed entirely before it. It stays on record.
    pub fn superseded(&self, ev: &crate::Equivocation) -> bool {
        let (a, b) = (&ev.first.body, &ev.second.body);
        self.set_aside(a.chain, a.height, a.epoch).is_some()
            || self.set_aside(b.chain, b.height, b.epoch).is_some()
            || self.resets(a.chain).any(|r| a.epoch.max(b.epoch) < r.epoch)
    }

    /// The first epoch in which chain `code` existed (the epoch its first block is
    /// certified in), if it ever did.
    pub fn first_epoch(&self, code: MemberCode) -> Option<u32> {
        self.configs
            .iter()
            .find(|c| c.chain_owner(code).is_some())
            .map(|c| c.epoch)
    }

    /// Member `code` as the newest configuration that had it lists it (a member that
    /// left is still named on what it signed).
    pub fn member_ever(&self, code: MemberCode) -> Option<&Member> {
        self.configs.iter().rev().find_map(|c| c.member(code))
    }

    /// Every chain that ever existed, by code (closed ones included).
    pub fn every_chain(&self) -> Vec<MemberCode> {
        let all: BTreeSet<MemberCode> = self.configs.iter().flat_map(|c| c.chains()).collect();
        all.into_iter().collect()
    }
}

impl Roles {
    pub(crate) fn is_valid(self) -> bool {
        self.bits() != 0 && self.bits() >> Role::ALL.len() == 0
    }
}
