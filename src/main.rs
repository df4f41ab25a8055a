//! Thin binary: parse, run, map errors to exit codes (0 ok, 1 runtime error, 2 usage).
use clap::Parser;

fn main() {
    let cli = match phantom_gpu::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = phantom_gpu::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
