//! The `scopepilot` command: argument parsing only; everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
scopepilot: microscope-side real-time acquisition daemon

USAGE:
    scopepilot serve [--config FILE]     run the daemon (embedded default config without --config)
    scopepilot check-config FILE         validate a config file and exit
    scopepilot print-default-config      print the embedded default config
    scopepilot --version | --help
";

fn config_arg(args: &[String]) -> Result<Option<PathBuf>, String> {
    match args {
        [] => Ok(None),
        [flag, path] if flag == "--config" || flag == "-c" => Ok(Some(PathBuf::from(path))),
        other => Err(format!("unexpected arguments: {}", other.join(" "))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    match args.first().map(String::as_str) {
        Some("serve") => {
            let path = match config_arg(&args[1..]) {
                Ok(p) => p,
                Err(e) => return fail(format!("{e}\n\n{USAGE}")),
            };
            match scopepilot::app::load_config(path.as_deref())
                .map_err(Into::into)
                .and_then(scopepilot::app::serve)
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e.to_string()),
            }
        }
        Some("check-config") => match args.get(1) {
            Some(path) if args.len() == 2 => {
                match scopepilot::config::Config::load(path.as_ref()) {
                    Ok(_) => {
                        println!("{path}: ok");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("{path}: {e}")),
                }
            }
            _ => fail(format!("check-config takes one FILE\n\n{USAGE}")),
        },
        Some("print-default-config") => {
            print!("{}", scopepilot::config::EMBEDDED_DEFAULT);
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("scopepilot {}", scopepilot::daemon::VERSION);
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => fail(format!("missing or unknown command\n\n{USAGE}")),
    }
}
