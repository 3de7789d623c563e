//! Merchant policy and client keys, written by the operator and the owner; the
//! consortium's configuration, written by the admin on its chain.

use super::*;
use fapiao_core::Reconfiguration;

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    /// A configuration change: it must start the epoch after the admin chain's current
    /// one and leave a valid configuration (FORMAT.md §5), which becomes the chain's
    /// record.
    pub(super) fn reconfigure(&mut self, r: &Reconfiguration) -> Step<(), S::Error> {
        let current = match self.state.config()? {
            Some(c) => c,
            None => self.ctx.genesis.config().clone(),
        };
        let next = current.epoch() + 1;
        if r.epoch != next {
            return Err(invalid("epoch", format!("the change must start epoch {next}, not {}", r.epoch)).into());
        }
        let config = current.apply(&r.change).map_err(|e| invalid("change", e.to_string()))?;
        self.state.put(StateKey::Config, StateValue::Config(config));
        Ok(())
    }

    pub(super) fn set_policy(&mut self, p: &MerchantPolicy) -> Step<(), S::Error> {
        let mut meta = self.meta()?;
        meta.policy = p.clone();
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        Ok(())
    }

    pub(super) fn authorize_key(&mut self, a: &ClientKeyAuthorized) -> Step<(), S::Error> {
        if self.ctx.config.member_by_key(&a.key).is_some() {
            return Err(invalid("key", "a member key cannot be a client key").into());
        }
        self.state.put(
            StateKey::ClientKey(a.key),
            StateValue::ClientKey(ClientKeyRecord {
                label: a.label.clone(),
                permissions: a.permissions,
                authorized_at: self.block.timestamp,
                revoked_at: None,
            }),
        );
        Ok(())
    }

    pub(super) fn revoke_key(&mut self, r: &ClientKeyRevoked) -> Step<(), S::Error> {
        let mut k = match self.state.client_key(&r.key)? {
            Some(k) if k.revoked_at.is_none() => k,
            _ => return Err(Rejection::KeyNotAuthorized(r.key).into()),
        };
        k.revoked_at = Some(self.block.timestamp);
        self.state.put(StateKey::ClientKey(r.key), StateValue::ClientKey(k));
        Ok(())
    }
}
