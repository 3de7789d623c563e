//! Client keys: authorise, revoke, list.

use super::*;

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Authorise a client key to sign on this chain (member key).
    Authorize {
        /// The client's public key, hex.
        #[arg(long)]
        public_key: String,
        /// A name for people.
        #[arg(long)]
        label: String,
        /// May sign payment events.
        #[arg(long)]
        payments: bool,
        /// May sign invoice events.
        #[arg(long)]
        invoices: bool,
    },
    /// Revoke a client key (member key).
    Revoke {
        /// The client's public key, hex.
        #[arg(long)]
        public_key: String,
    },
}

pub(crate) fn key(opts: &ClientOpts, cmd: KeyCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let member = ctx.key(ctx.profile.member_key.as_deref(), "member")?;
    let parse = |s: &str| PublicKey::from_hex(s).map_err(|e| anyhow!("--public-key: {e}"));
    let (what, kind) = match cmd {
        KeyCommand::Authorize {
            public_key,
            label,
            payments,
            invoices,
        } => (
            "key authorisation",
            EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
                key: parse(&public_key)?,
                label,
                permissions: Permissions { payments, invoices },
            }),
        ),
        KeyCommand::Revoke { public_key } => (
            "key revocation",
            EventKind::ClientKeyRevoked(ClientKeyRevoked {
                key: parse(&public_key)?,
            }),
        ),
    };
    let (_, r) = ctx.submit(&member, kind)?;
    ctx.print_submitted(what, &r)
}
