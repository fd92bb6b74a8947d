//! The `gymfleet` command line.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use gymfleet::gym::sim::{Faults, LatencyModel, SimConfig, SimServer};
use tracing_subscriber::EnvFilter;

/// Coordinates experiments on a fleet of Pokemon Gym servers.
#[derive(Debug, Parser)]
#[command(name = "gymfleet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the coordinator on a fleet (the default command).
    Run(RunArgs),
    /// Serves simulated Pokemon Gym servers until Ctrl-C.
    Serve(ServeArgs),
    /// Runs scenario files and checks their thresholds.
    Scenario(ScenarioArgs),
    /// Checks the last benchmark, instruction count and scenario results
    /// against the budgets; exits 1 if one is broken, 2 if a result is
    /// missing or a file is invalid.
    Gate(GateArgs),
}

#[derive(Debug, Args)]
struct ScenarioArgs {
    /// Scenario files (`tests/scenarios/*.toml`).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<std::path::PathBuf>,
    /// Where results go: `<DIR>/gymfleet/sla/<name>.json` and `.svg`.
    #[arg(long, default_value = "target", value_name = "DIR")]
    target_dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct GateArgs {
    /// The budgets file.
    #[arg(long, default_value = ".config/budgets.toml", value_name = "FILE")]
    budgets: std::path::PathBuf,
    /// Where criterion's and gymfleet's results are, and where the gate
    /// writes its report.
    #[arg(long, default_value = "target", value_name = "DIR")]
    target_dir: std::path::PathBuf,
    /// Check only this section of the budgets (repeatable).
    #[arg(long, value_enum, value_name = "SECTION")]
    only: Vec<GateSection>,
    /// Compare with this saved baseline instead of criterion's last run.
    #[arg(long, value_name = "NAME")]
    baseline: Option<String>,
    /// Save the current results as this baseline.
    #[arg(long, value_name = "NAME")]
    save_baseline: Option<String>,
    /// Print the verdict as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GateSection {
    /// Criterion wall-clock estimates.
    Bench,
    /// Instruction counts.
    Instructions,
    /// Scenario results.
    Scenario,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Drive these Pokemon Gym servers (`http://host:port`, repeatable)
    /// instead of starting simulated ones.
    #[arg(long = "gym", value_name = "URL")]
    gyms: Vec<String>,
    /// Simulated servers to start, one worker each (ignored with `--gym`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// The longest the run goes on: `30s`, `2m`, `500ms`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Seeds the simulated servers' world (one world, as every real server
    /// runs the same ROM).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where accepted discoveries and progress are kept; a later run
    /// resumes from them.
    #[arg(long, default_value = "gymfleet-data")]
    data_dir: std::path::PathBuf,
    /// How conflicting discoveries are resolved.
    #[arg(long, value_enum, default_value_t = Resolution::WeightedMerge)]
    strategy: Resolution,
    /// How long the simulated servers take to answer.
    #[arg(long, value_enum, default_value_t = Latency::Zero)]
    latency: Latency,
    /// Whether workers go in rounds, so that the same seed gives the same
    /// run; a round waits for its slowest worker. [default: true with
    /// simulated servers, false with `--gym`]
    #[arg(long, value_name = "BOOL")]
    lockstep: Option<bool>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Resolution {
    /// The most confident discovery wins.
    HighestConfidence,
    /// The newest discovery wins.
    LatestWins,
    /// A vote weighted by samples.
    Consensus,
    /// The consensus answer with sample-weighted confidence.
    WeightedMerge,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// How many servers to start, on sequential ports from `--port`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    servers: u16,
    /// The first server's port.
    #[arg(long, default_value_t = 8081, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Seeds the world, encounters and injected faults; server `i` uses
    /// `seed + i`.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long answers take: at once, or like the real server.
    #[arg(long, value_enum, default_value_t = Latency::Zero)]
    latency: Latency,
    /// The chance that a request is answered with a 500.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    error_rate: f64,
    /// The chance that the connection is dropped mid-answer.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    drop_rate: f64,
    /// The chance that a 200 answer's body is cut short.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    malformed_rate: f64,
    /// The chance that an answer stalls for `--stall-ms` first.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    stall_rate: f64,
    /// How long a stall lasts, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    stall_ms: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Latency {
    /// Answer at once.
    Zero,
    /// Like the real server headless: a key press about 53 ms.
    Headless,
    /// Like the real server with a window: a key press about 450 ms.
    Windowed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let command = cli.command.unwrap_or_else(|| {
        // A bare invocation is `run` with every default.
        let defaults = Cli::parse_from(["gymfleet", "run"]);
        defaults.command.expect("`run` parses")
    });
    let result = match command {
        Command::Run(args) => run(args),
        Command::Serve(args) => serve(args),
        Command::Scenario(args) => scenario(args),
        Command::Gate(args) => return gate(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn scenario(args: ScenarioArgs) -> anyhow::Result<()> {
    use gymfleet::sla::Scenario;

    // Every file is checked before any runs.
    let mut scenarios = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let name = file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        scenarios.push(Scenario::read(file, &name)?);
    }
    let runtime = gymfleet::coordinator::runtime().context("cannot start the async runtime")?;
    let dir = args.target_dir.join("gymfleet/sla");
    let mut failed = Vec::new();
    for scenario in &scenarios {
        let outcome = runtime.block_on(scenario.run())?;
        let written = outcome.write(&dir).with_context(|| {
            format!(
                "cannot write the results of `{}` under {}",
                scenario.name,
                dir.display()
            )
        })?;
        println!("scenario {} ({})", scenario.name, scenario.path.display());
        print!("{}", outcome.render());
        println!("results: {}\n", written.display());
        if !outcome.passed() {
            failed.push(scenario.name.clone());
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "thresholds failed in {}",
        failed.join(", ")
    );
    Ok(())
}

fn gate(args: GateArgs) -> ExitCode {
    use gymfleet::sla::gate::{self, Budgets, Paths, Section};

    let invalid = |messages: &[String]| {
        for message in messages {
            eprintln!("error: {message}");
        }
        ExitCode::from(2)
    };
    let budgets = match Budgets::read(&args.budgets) {
        Ok(budgets) => budgets,
        Err(error) => return invalid(&[error.to_string()]),
    };
    let paths = Paths {
        target: args.target_dir.clone(),
    };
    let only: Vec<Section> = args
        .only
        .iter()
        .map(|section| match section {
            GateSection::Bench => Section::Bench,
            GateSection::Instructions => Section::Instructions,
            GateSection::Scenario => Section::Scenario,
        })
        .collect();
    let current = match gate::measure(&budgets, &paths, &only) {
        Ok(current) => current,
        Err(errors) => {
            let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return invalid(&messages);
        }
    };
    let baseline = match &args.baseline {
        None => None,
        Some(name) => match gate::read_baseline(&paths, name) {
            Ok(saved) => Some((name.as_str(), saved)),
            Err(message) => return invalid(&[message]),
        },
    };
    let verdict = gate::judge(
        &budgets,
        &current,
        baseline.as_ref().map(|(name, saved)| (*name, saved)),
        &paths,
        &only,
    );

    match args.json {
        true => match serde_json::to_string_pretty(&verdict) {
            Ok(json) => println!("{json}"),
            Err(error) => return invalid(&[error.to_string()]),
        },
        false => print!("{}", verdict.render()),
    }
    match gate::write(&verdict, &paths) {
        Ok(dir) => eprintln!("gate report: {}", dir.display()),
        Err(error) => eprintln!("warning: cannot write the gate's report: {error}"),
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write as _;
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(summary)
            .and_then(|mut file| file.write_all(verdict.markdown().as_bytes()));
        if let Err(error) = appended {
            eprintln!("warning: cannot append to the job summary: {error}");
        }
    }
    if let Some(name) = &args.save_baseline {
        match gate::save_baseline(&paths, name, &current) {
            Ok(path) => eprintln!("saved baseline `{name}` to {}", path.display()),
            Err(error) => return invalid(&[format!("cannot save baseline `{name}`: {error}")]),
        }
    }
    let failures: Vec<_> = verdict.failures().collect();
    if failures.is_empty() {
        eprintln!("gate: all {} checks hold", verdict.rows.len());
        return ExitCode::SUCCESS;
    }
    for row in &failures {
        eprintln!(
            "error: {} `{}` {}: measured {}, limit {}{}",
            row.section,
            row.id,
            row.check,
            row.measured,
            row.limit,
            match row.note.is_empty() {
                true => String::new(),
                false => format!(" ({})", row.note),
            }
        );
    }
    eprintln!(
        "gate: {} of {} checks failed",
        failures.len(),
        verdict.rows.len()
    );
    ExitCode::FAILURE
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let last_port = u32::from(args.port) + u32::from(args.servers) - 1;
    anyhow::ensure!(
        last_port <= u32::from(u16::MAX),
        "`--servers {}` from `--port {}` needs ports up to {last_port}, past 65535",
        args.servers,
        args.port,
    );
    let latency = match args.latency {
        Latency::Zero => LatencyModel::ZERO,
        Latency::Headless => LatencyModel::HEADLESS,
        Latency::Windowed => LatencyModel::WINDOWED,
    };
    let faults = Faults {
        error_rate: args.error_rate,
        stall_rate: args.stall_rate,
        stall: Duration::from_millis(args.stall_ms),
        drop_rate: args.drop_rate,
        malformed_rate: args.malformed_rate,
    };

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut servers = Vec::with_capacity(usize::from(args.servers));
        for server_idx in 0..args.servers {
            let addr = SocketAddr::new(args.bind, args.port + server_idx);
            let config = SimConfig {
                seed: args.seed + u64::from(server_idx),
                latency,
                faults,
                schedule: Vec::new(),
            };
            let server = SimServer::start(addr, config).await?;
            println!(
                "gym server {} listening on {}",
                server_idx + 1,
                server.url()
            );
            servers.push(server);
        }
        println!(
            "serving {} simulated gym server(s); press Ctrl-C to stop",
            servers.len()
        );

        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")?;
        for server in servers {
            server
                .shutdown()
                .await
                .context("a server did not stop cleanly")?;
        }
        println!("stopped");
        Ok(())
    })
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    use gymfleet::coordinator::{Explorer, RunConfig};
    use gymfleet::gym::{ClientConfig, GymClient};

    // Refuse a bad URL before starting anything.
    let mut clients = Vec::new();
    for url in &args.gyms {
        clients.push(GymClient::new(url, ClientConfig::default()).context("`--gym`")?);
    }
    let latency = match args.latency {
        Latency::Zero => LatencyModel::ZERO,
        Latency::Headless => LatencyModel::HEADLESS,
        Latency::Windowed => LatencyModel::WINDOWED,
    };
    let config = RunConfig {
        duration: args.duration,
        data_dir: args.data_dir.clone(),
        resolution: match args.strategy {
            Resolution::HighestConfidence => gymfleet::learning::Strategy::HighestConfidence,
            Resolution::LatestWins => gymfleet::learning::Strategy::LatestWins,
            Resolution::Consensus => gymfleet::learning::Strategy::Consensus,
            Resolution::WeightedMerge => gymfleet::learning::Strategy::WeightedMerge,
        },
        lockstep: args.lockstep.unwrap_or(args.gyms.is_empty()),
        ..RunConfig::default()
    };

    let runtime = gymfleet::coordinator::runtime().context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        // Listen for Ctrl-C before anything starts, so that an early one
        // stops the run cleanly instead of killing the process.
        let interrupted = interrupt_signal()?;
        let mut servers = Vec::new();
        if clients.is_empty() {
            for _ in 0..args.workers {
                let sim_config = SimConfig {
                    seed: args.seed,
                    latency,
                    faults: Faults::default(),
                    schedule: Vec::new(),
                };
                let server =
                    SimServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), sim_config).await?;
                clients.push(GymClient::new(&server.url(), ClientConfig::default())?);
                servers.push(server);
            }
        }
        tracing::info!(servers = clients.len(), "run started; press Ctrl-C to stop");
        let (progress, watched) =
            tokio::sync::watch::channel(gymfleet::coordinator::Progress::default());
        let display = tokio::spawn(show_progress(watched));
        let config = RunConfig {
            progress: Some(progress),
            ..config
        };
        let report =
            gymfleet::coordinator::run(clients, config, Box::new(Explorer::default()), interrupted)
                .await?;
        // The display ends when the run drops its side of the channel.
        display.await.context("the progress display failed")?;
        for server in servers {
            server
                .shutdown()
                .await
                .context("a simulated server did not stop cleanly")?;
        }
        anyhow::Ok(report)
    })?;

    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{}", gymfleet::coordinator::run::render(&report)),
    }
    Ok(())
}

/// Shows the run's progress on stderr while it goes on; draws nothing when
/// stderr is not a terminal.
async fn show_progress(mut watched: tokio::sync::watch::Receiver<gymfleet::coordinator::Progress>) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    while watched.changed().await.is_ok() {
        let progress = watched.borrow_and_update().clone();
        let best = match progress.best_route_frames {
            Some(frames) => format!("best route {frames} frames"),
            None => "no route to the goal yet".to_owned(),
        };
        bar.set_message(format!(
            "{} experiments, {} discoveries, {} maps, {best}, {} workers parked",
            progress.experiments, progress.discoveries, progress.maps, progress.parked
        ));
    }
    bar.finish_and_clear();
}

/// Completes on the first Ctrl-C; the handler is in place when this
/// returns.
fn interrupt_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    Ok(async move {
        interrupt.recv().await;
    })
}

/// Parses `500ms`, `30s`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as `30s`"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(value),
        "s" | "" => Duration::from_secs(value),
        "m" => Duration::from_secs(value * 60),
        _ => return Err(format!("`{text}`: the unit must be `ms`, `s` or `m`")),
    };
    match duration.is_zero() {
        true => Err("the duration must be longer than zero".to_owned()),
        false => Ok(duration),
    }
}

/// Parses a probability in [0, 1].
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    match (0.0..=1.0).contains(&rate) {
        true => Ok(rate),
        false => Err(format!("{rate} is not a probability in [0, 1]")),
    }
}
