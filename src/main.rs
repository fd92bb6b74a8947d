//! The `gymfleet` command line.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
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
    /// Serves simulated Pokemon Gym servers until Ctrl-C.
    Serve(ServeArgs),
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

    let result = match cli.command {
        Some(Command::Serve(args)) => serve(args),
        // The coordinator's `run` is not built yet, so a bare invocation
        // shows what the command line offers instead of failing.
        None => Cli::command().print_help().context("cannot print help"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
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
