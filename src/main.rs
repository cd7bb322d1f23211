//! The `scopepilot` command: argument parsing only; everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
scopepilot: microscope-side real-time acquisition daemon

USAGE:
    scopepilot serve [--config FILE]     run the daemon (embedded default config without --config)
    scopepilot check-config FILE         validate a config file and exit
    scopepilot print-default-config      print the embedded default config
    scopepilot simulate --frames N --interval-ms MS --out PREFIX [--config FILE]
                                         write the simulated camera's movie (PREFIX.tif) and its
                                         ground-truth divisions (PREFIX.json), unpaced
    scopepilot --version | --help
";

fn config_arg(args: &[String]) -> Result<Option<PathBuf>, String> {
    match args {
        [] => Ok(None),
        [flag, path] if flag == "--config" || flag == "-c" => Ok(Some(PathBuf::from(path))),
        other => Err(format!("unexpected arguments: {}", other.join(" "))),
    }
}

/// `--name value` pairs; every name must be in `allowed`.
fn flags<'a>(
    args: &'a [String],
    allowed: &[&str],
) -> Result<std::collections::HashMap<&'a str, &'a str>, String> {
    let mut out = std::collections::HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let name = flag.strip_prefix("--").unwrap_or(flag);
        if !allowed.contains(&name) {
            return Err(format!("unknown option {flag:?}"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        out.insert(name, value.as_str());
    }
    Ok(out)
}

fn simulate(args: &[String]) -> Result<(), String> {
    let f = flags(args, &["frames", "interval-ms", "out", "config"])?;
    let need = |name: &str| f.get(name).copied().ok_or(format!("--{name} is required"));
    let frames: usize = need("frames")?
        .parse()
        .map_err(|e| format!("--frames: {e}"))?;
    let ms: f64 = need("interval-ms")?
        .parse()
        .map_err(|e| format!("--interval-ms: {e}"))?;
    if !(ms > 0.0 && ms.is_finite()) {
        return Err(format!("--interval-ms must be > 0, got {ms}"));
    }
    let out = PathBuf::from(need("out")?);
    let config = scopepilot::app::load_config(f.get("config").map(std::path::Path::new))
        .map_err(|e| e.to_string())?;
    let (tiff, truth) = (out.with_extension("tif"), out.with_extension("json"));
    let summary = scopepilot::source::simulated::export::export_movie(
        &config.source.simulated,
        frames,
        std::time::Duration::from_secs_f64(ms / 1e3),
        &tiff,
        &truth,
    )?;
    println!(
        "{} frames -> {}; {} divisions -> {}",
        summary.frames,
        tiff.display(),
        summary.divisions,
        truth.display()
    );
    Ok(())
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
        Some("simulate") => match simulate(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("{e}\n\n{USAGE}")),
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
