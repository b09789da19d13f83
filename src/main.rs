//! The `preroot` binary: a thin shell over [`preroot::cli::main`].
#![deny(unsafe_code)]

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(preroot::cli::main(&args));
}
