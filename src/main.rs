//! The `coffer` binary: parse, run, print, exit. All logic is in the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
