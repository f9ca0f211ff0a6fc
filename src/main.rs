//! The `anomalyd` command line: a thin layer over the library. Exit codes: 0 success,
//! 1 bad configuration or input, 2 runtime failure (`check-config`: 2 when the file has
//! problems, as operators' scripts expect).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use anomalyd::config::{Config, ConfigError};

#[derive(Parser)]
#[command(
    name = "anomalyd",
    version,
    about = "Streaming anomaly detection for edge gateways"
)]
struct Cli {
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config file: exit 0, or exit 2 listing every problem with its dotted key.
    CheckConfig {
        /// The TOML file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Score a CSV offline with the daemon's detector; one output row per input row.
    Replay {
        /// The TOML file (only the detector sections matter).
        #[arg(long)]
        config: PathBuf,
        /// Input CSV with a header.
        #[arg(long)]
        input: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Channel columns, comma separated (default: every column but the time).
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// The time column (default: the first).
        #[arg(long)]
        timestamp_column: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { config } => Ok(check_config(&config)),
        Command::Replay {
            config,
            input,
            output,
            columns,
            timestamp_column,
        } => {
            let config = load(&config)?;
            let series =
                anomalyd::eval::series::read_series(&input, timestamp_column.as_deref(), columns.as_deref())?;
            let sensor = input
                .file_stem()
                .map_or("input".into(), |s| s.to_string_lossy().into_owned());
            let (rows, summary) = anomalyd::eval::replay::replay(&series, &config.detector, &sensor);
            match output {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?,
                    );
                    anomalyd::eval::replay::write_csv(&mut file, &series, &rows)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                None => anomalyd::eval::replay::write_csv(&mut std::io::stdout().lock(), &series, &rows)?,
            }
            eprintln!(
                "replayed {} rows: {} windows scored, {} alerts raised, model version {}, {} rows with non-increasing timestamps",
                series.len(),
                summary.scored,
                summary.raised,
                summary.model_version,
                summary.nudged
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("invalid config {}", path.display()))
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
