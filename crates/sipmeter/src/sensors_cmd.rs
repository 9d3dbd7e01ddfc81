//! `sipmeter sensors add|revoke|list`: remote sensor tokens in the database of the data
//! directory, for installs scripted without the GUI. The token is printed once, on the last
//! line of standard output, so a script can take it with `tail -n1`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::config::{CommonFlags, FileConfig, Settings};

#[derive(Debug, clap::Args)]
pub struct SensorsArgs {
    #[command(subcommand)]
    command: SensorsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SensorsCommand {
    /// Register a sensor and print its token (last line of stdout, shown only this once)
    Add {
        #[arg(long)]
        name: String,
    },
    /// Revoke a sensor's token: the server refuses it at once
    Revoke {
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        name: Option<String>,
        #[arg(long)]
        id: Option<i64>,
    },
    /// List the sensors: id, name, state, last seen, legs received, spool backlog
    List,
}

pub fn run(args: SensorsArgs, file: &FileConfig, common: &CommonFlags) -> Result<ExitCode> {
    let settings = Settings::resolve(file, common, true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let store = store::Store::open(settings.database.clone())
            .await
            .with_context(|| format!("cannot open the database {}", settings.database.describe()))?;
        let now = jiff::Timestamp::now().as_microsecond();
        let code = match args.command {
            SensorsCommand::Add { name } => {
                if !server::valid_sensor_name(&name) {
                    bail!("sensor name {name:?}: use 1 to 64 letters, digits or . _ -");
                }
                let token = server::new_sensor_token();
                match store
                    .create_sensor(&name, &store::token_hash(&token), now)
                    .await?
                {
                    Some(id) => {
                        println!("sensor {name} created with id {id}; its token (shown only now):");
                        println!("{token}");
                        ExitCode::SUCCESS
                    }
                    None => bail!("a sensor called {name} exists already"),
                }
            }
            SensorsCommand::Revoke { name, id } => {
                let done = match (&name, id) {
                    (Some(n), _) => store.revoke_sensor_by_name(n, now).await?,
                    (None, Some(id)) => store.revoke_sensor(id, now).await?,
                    (None, None) => bail!("give --name or --id"),
                };
                let what = name.unwrap_or_else(|| format!("id {}", id.unwrap_or_default()));
                if !done {
                    bail!("there is no active sensor {what}");
                }
                println!("sensor {what} revoked");
                ExitCode::SUCCESS
            }
            SensorsCommand::List => {
                println!("id\tname\tstate\tlast_seen_us\tversion\tlegs_received\tspool_batches\tspool_bytes");
                for s in store.list_sensors().await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        s.id,
                        s.name,
                        if s.revoked.is_some() { "revoked" } else { "active" },
                        s.last_seen.map(|t| t.to_string()).unwrap_or_default(),
                        s.version.unwrap_or_default(),
                        s.legs_received,
                        s.spool_batches,
                        s.spool_bytes
                    );
                }
                ExitCode::SUCCESS
            }
        };
        store.close().await;
        Ok(code)
    })
}
