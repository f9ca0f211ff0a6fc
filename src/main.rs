//! The `anomalyd` command line: a thin layer over the library. Exit codes: 0 success,
//! 1 bad configuration or input, 2 runtime failure (`check-config`: 2 when the file has
//! problems, as operators' scripts expect).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use anomalyd::config::{Config, ConfigError};
use anomalyd::ingest::payload::Field;

#[path = "cli/assets.rs"]
mod assets;
#[path = "cli/eval.rs"]
mod eval;
#[path = "cli/log.rs"]
mod log;

/// The config file when `--config` is not given: where the Debian package installs it.
const DEFAULT_CONFIG: &str = "/etc/anomalyd/anomalyd.toml";

/// `--version`: the crate version and the optional features compiled in.
#[cfg(feature = "embedded-broker")]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: embedded-broker)");
#[cfg(not(feature = "embedded-broker"))]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: none; no embedded broker)");

#[derive(Parser)]
#[command(
    name = "anomalyd",
    version = VERSION,
    about = "Streaming anomaly detection for edge gateways",
    long_about = "Streaming anomaly detection for edge gateways: subscribes to MQTT sensor \
        telemetry, scores sliding windows with an online-retrained autoencoder and a PCA \
        baseline, and publishes alerts on MQTT.",
    after_long_help = "Files: /etc/anomalyd/anomalyd.toml (the default --config), \
        /var/lib/anomalyd (snapshots, [state] dir). Environment: ANOMALYD_LOG, RUST_LOG \
        (log filter), ANOMALYD_LOG_FORMAT, NO_COLOR, JOURNAL_STREAM (set by systemd: \
        priority-prefixed lines). Exit status: 0 success, 1 bad configuration or input, \
        2 runtime failure (check-config: 2 when the file has problems).",
    propagate_version = true
)]
struct Cli {
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`.
    /// Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts).
    #[arg(long, global = true, env = "ANOMALYD_LOG", hide_env_values = true)]
    log: Option<String>,
    /// Log line format on stderr: `text` (ANSI colour only on a terminal, syslog
    /// priority prefixes under journald) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "ANOMALYD_LOG_FORMAT",
        hide_env_values = true
    )]
    log_format: log::LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--config`/`-c`, shared by the commands that read the daemon's TOML file.
#[derive(clap::Args)]
struct ConfigArg {
    /// The TOML file.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    path: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (systemd Type=notify).
    Run {
        // SIGHUP re-reads it.
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Embedded broker + simulated sensors + daemon; prints alerts as they happen.
    Demo {
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Print the config the demo's daemon runs (and the simulate command that feeds
        /// it) and exit, to run the same against a real broker.
        #[arg(long)]
        print_config: bool,
    },
    /// Publish synthetic multichannel telemetry with injected anomalies.
    Simulate {
        /// Broker host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Broker port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Number of sensors.
        #[arg(long, default_value_t = 3)]
        sensors: usize,
        /// Readings per second per sensor.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// RNG seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Mean seconds between injected anomalies per sensor.
        #[arg(long, default_value_t = 120.0)]
        anomaly_every: f64,
        /// Seconds of clean data before the first anomaly.
        #[arg(long, default_value_t = 300.0)]
        warmup: f64,
        /// Period of the normal load cycle, seconds.
        #[arg(long, default_value_t = 600.0)]
        load_period: f64,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
        /// Topics are `<prefix>/<sensor>/telemetry`.
        #[arg(long, default_value = "sensors")]
        prefix: String,
    },
    /// Check a config file: exit 0, or exit 2 listing every problem with its dotted key.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Score a CSV offline with the daemon's detector; one output row per input row.
    Replay {
        // Only the detector sections matter.
        #[command(flatten)]
        config: ConfigArg,
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
        /// The sensor id the rows belong to, as the daemon will see it (default: the
        /// input's file name without extension).
        #[arg(long)]
        sensor: Option<String>,
        /// Also write the detector's state after the last row as a snapshot into this
        /// state directory (`[state] dir`): a daemon started on it scores the sensor at
        /// once instead of warming up. Channels are then taken in the order the daemon
        /// sees them: `--columns` as given, else the first source's `channels`, else
        /// every column but the time, sorted by name.
        #[arg(long)]
        snapshot_out: Option<PathBuf>,
    },
    /// Score a labelled corpus (NAB layout) and/or SKAB files with the detector.
    Eval(eval::EvalArgs),
    /// Plot a replay CSV: a panel per channel, scores on a log scale with the threshold,
    /// anomaly_score, alert spans and labelled windows shaded.
    Plot {
        /// Replay output CSV.
        #[arg(long)]
        input: PathBuf,
        /// Output picture, .svg or .png.
        #[arg(long)]
        output: PathBuf,
        /// Labelled windows to shade: NAB's `combined_windows.json` (with --label-key), or
        /// a CSV with an `anomaly` column (a SKAB file).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Key of the file in NAB labels (e.g. `realKnownCause/nyc_taxi.csv`).
        #[arg(long, requires = "labels")]
        label_key: Option<String>,
        /// Channel panels at most; past it, the channels most deviant during alerts.
        #[arg(long, default_value_t = anomalyd::eval::plot::DEFAULT_MAX_CHANNELS)]
        max_channels: usize,
    },
    /// Write the man pages and shell completions (packaging; see `dist/`).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory: `man/` and `completions/` are written below it.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's output is the alerts; rumqttd logs every closed connection as an error.
    let default_log = if matches!(cli.command, Command::Demo { .. }) {
        "warn,rumqttd=off"
    } else {
        "info"
    };
    log::init(cli.log_format, cli.log.as_deref(), default_log);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            log::fatal(&e);
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { config } => Ok(check_config(&config.path)),
        Command::GenerateAssets { dir } => {
            assets::write_all(&dir)?;
            println!("wrote {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let path = config.path;
            let config = load(&path)?;
            Ok(block_on(async move {
                match anomalyd::daemon::run(config, Some(path), terminated()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        log::fatal(&e);
                        ExitCode::from(2)
                    }
                }
            })?)
        }
        Command::Demo {
            print_config: true, ..
        } => {
            print!("{}", anomalyd::demo::printed_config());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { seconds, .. } => {
            block_on(anomalyd::demo::run(seconds, terminated()))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            host,
            port,
            sensors,
            rate,
            seed,
            anomaly_every,
            warmup,
            load_period,
            seconds,
            prefix,
        } => {
            let params = anomalyd::simulate::SimParams {
                sensors,
                rate_hz: rate,
                seed,
                anomaly_every,
                warmup,
                load_period,
            };
            let duration = seconds.map(std::time::Duration::from_secs);
            let summary = block_on(anomalyd::simulate::run(
                &host,
                port,
                params,
                duration,
                &prefix,
                terminated(),
            ))??;
            eprintln!(
                "published {} readings ({} dropped), {} anomalies injected",
                summary.published,
                summary.dropped,
                summary.injections.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            eval::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot {
            input,
            output,
            labels,
            label_key,
            max_channels,
        } => {
            use anomalyd::eval::plot;
            let labels = match &labels {
                Some(path) => plot::load_labels(path, label_key.as_deref())?,
                None => Vec::new(),
            };
            let options = plot::PlotOptions { labels, max_channels };
            plot::plot_replay(&input, &output, &options)?;
            println!("wrote {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            input,
            output,
            columns,
            timestamp_column,
            sensor,
            snapshot_out,
        } => {
            let config = load(&config.path)?;
            let read = |columns: Option<&[String]>| {
                anomalyd::eval::series::read_series(&input, timestamp_column.as_deref(), columns)
            };
            let mut series = read(columns.as_deref())?;
            if snapshot_out.is_some() && columns.is_none() {
                let order = match config.sources.first().and_then(|s| s.channels.as_ref()) {
                    // A pointer channel is named by its last token, as in the daemon.
                    Some(channels) => (channels.iter())
                        .map(|c| Field::parse(c).map_or_else(|_| c.clone(), |f| f.name().to_owned()))
                        .collect(),
                    None => {
                        let mut names = series.channels.clone();
                        names.sort();
                        names
                    }
                };
                series = read(Some(&order))?;
            }
            let sensor = sensor.unwrap_or_else(|| {
                input
                    .file_stem()
                    .map_or("input".into(), |s| s.to_string_lossy().into_owned())
            });
            let (rows, summary, detector) =
                anomalyd::eval::replay::replay_keeping(&series, &config.detector, &sensor);
            if let Some(dir) = &snapshot_out {
                let store = anomalyd::store::Store::open(dir)
                    .with_context(|| format!("cannot open the state directory {}", dir.display()))?;
                store
                    .save(&detector.snapshot())
                    .with_context(|| format!("cannot write the snapshot into {}", dir.display()))?;
                eprintln!(
                    "wrote a snapshot of sensor {sensor:?} (channels {}) to {}",
                    series.channels.join(","),
                    store.snapshot_path().display()
                );
            }
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            anomalyd::eval::replay::write_csv(&mut out, &series, &rows)
                .context("cannot write the replay output")?;
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

/// Runs `fut` on a multi-threaded runtime. Blocking threads (training, snapshots) get
/// one second after `fut` returns; the daemon has already waited for its own.
fn block_on<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let out = rt.block_on(fut);
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(out)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        // Without a SIGTERM handler, Ctrl-C still works.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
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
