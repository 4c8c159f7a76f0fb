//! `starcast`: the web app and its pipeline, one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use starcast_server::generate::{self, HoroscopeArgs};
use starcast_server::predict::{self, ActorsArgs};
use starcast_server::serve::{ServeArgs, serve};
use tracing_subscriber::EnvFilter;

/// Starcast: recognise actors in photos and write daily horoscopes, with
/// models served by candle.
#[derive(Debug, Parser)]
#[command(name = "starcast", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web app and the REST API.
    Serve(ServeArgs),
    /// Generate with a model from the command line.
    #[command(subcommand)]
    Generate(Generate),
    /// Recognise with a model from the command line.
    #[command(subcommand)]
    Predict(Predict),
}

#[derive(Debug, Subcommand)]
enum Predict {
    /// Say who is in each photo (JSON lines with --json).
    Actors(ActorsArgs),
}

#[derive(Debug, Subcommand)]
enum Generate {
    /// Write a horoscope for a sign and a day.
    Horoscope(HoroscopeArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            tokio::runtime::Runtime::new()?.block_on(serve(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(Generate::Horoscope(args)) => {
            generate::horoscope(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict(Predict::Actors(args)) => predict::actors(args),
    }
}
