//! `fapiao`: the one binary. It parses the command line, runs one command, prints the
//! error chain and exits non-zero on failure. This is the only crate that wires the
//! library crates together.

mod files;
mod genesis_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Fapiao: a consortium invoice ledger.
#[derive(Parser)]
#[command(name = "fapiao", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an ed25519 key file (written with mode 0600).
    Keygen {
        /// Where to write the key file.
        #[arg(long, short)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Create, extend and inspect the consortium genesis.
    Genesis {
        #[command(subcommand)]
        command: Box<genesis_cmd::GenesisCommand>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen { out, force } => {
            let key = fapiao_core::SecretKey::generate();
            files::write_key_file(&out, &key, force)?;
            println!("wrote {} (public key {})", out.display(), key.public());
            Ok(())
        }
        Command::Genesis { command } => genesis_cmd::run(*command),
    }
}
