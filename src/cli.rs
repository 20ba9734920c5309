//! The command line: `serve` (default), `bootstrap [--demo]`, `token`, `digest`.

use crate::configuration::{Settings, SettingsArgs};
use crate::{bootstrap, startup::Application, telemetry};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "kazoo-port-requests",
    version,
    about = "Kazoo 4.3 port_requests API (and Fone Dynamics porting) on CouchDB",
    long_about = "Kazoo 4.3 port_requests API (and Fone Dynamics porting) on CouchDB.\n\n\
        Every setting below can be given as an environment variable (shown in brackets) or a flag."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Create the port_requests database and its views; with --demo, also a master account,
    /// an admin user and the signing key, then print the account id and a token.
    Bootstrap {
        /// Also create demo data: master account, admin user, system key (only where missing).
        #[arg(long)]
        demo: bool,
    },
    /// Print a Kazoo token for an account (and user), signed with the system key.
    Token {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        user_id: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Print (--dry-run) or mail now a port authority's daily digest, as it stands.
    Digest {
        /// The port authority's account id.
        #[arg(long)]
        account: String,
        #[arg(long)]
        dry_run: bool,
    },
}

async fn run(settings: Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings.clone()).await?;
            tracing::info!(
                port = app.port(),
                couchdb = %settings.couchdb.display_url(),
                "kazoo-port-requests listening on {}",
                settings.listen_addr
            );
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Bootstrap { demo } => {
            let couch = bootstrap::connect(&settings).await?;
            bootstrap::ensure_databases(&couch).await?;
            let claims = crate::jobs::claim_adoption::adopt_all(&couch).await?;
            eprintln!("number claims made for open port requests: {claims}");
            if demo {
                let out = bootstrap::demo(&couch).await?;
                println!("master_account_id={}", out.master_account_id);
                println!("admin_user_id={}", out.admin_user_id);
                println!("token={}", out.token);
            } else {
                println!("port_requests database and views are ready");
            }
            Ok(())
        }
        Command::Digest { account, dry_run } => {
            let authority = crate::domain::ids::AccountId::from_any(&account)
                .ok_or_else(|| anyhow::anyhow!("--account: '{account}' is not an account id"))?;
            let couch = bootstrap::connect(&settings).await?;
            let state = crate::state::AppState::new(settings, couch)?;
            println!("{}", crate::jobs::delivery::digest::now(&state, &authority, dry_run).await?);
            Ok(())
        }
        Command::Token { account_id, user_id, ttl } => {
            let couch = bootstrap::connect(&settings).await?;
            let token = bootstrap::token(&couch, &account_id, user_id.as_deref(), ttl).await?;
            println!("{token}");
            Ok(())
        }
    }
}

pub fn main() -> ExitCode {
    let args = crate::configuration::with_aliases(std::env::args().collect(), |k| std::env::var(k).ok());
    let cli = Cli::parse_from(args);
    let settings = match cli.settings.into_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kazoo-port-requests: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log, settings.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kazoo-port-requests: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings, cli.command.unwrap_or(Command::Serve))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kazoo-port-requests: {e:#}");
            ExitCode::FAILURE
        }
    }
}
