//! The probe CLI with pico-args (see args-lexopt for the CLI).
#[derive(Debug, Default)]
struct Args { cmd: String, from: Option<String>, timeout: Option<f64>, root: Option<String>, dry: bool, json: bool, spec: Option<String>, ifaces: Vec<String>, verbose: bool }
fn parse() -> Result<Args, String> {
    let mut p = pico_args::Arguments::from_env();
    let mut a = Args::default();
    a.verbose = p.contains(["-v", "--verbose"]);
    a.cmd = p.subcommand().map_err(|e| e.to_string())?.ok_or("no command")?;
    match a.cmd.as_str() {
        "ctx" => { a.from = p.opt_value_from_str("--from").map_err(|e| e.to_string())?; a.timeout = p.opt_value_from_str("--timeout").map_err(|e| e.to_string())?; a.root = p.opt_value_from_str("--root").map_err(|e| e.to_string())?; }
        "grow" => { a.dry = p.contains("--dry-run"); a.json = p.contains("--json"); a.spec = p.opt_free_from_str().map_err(|e| e.to_string())?; }
        "net" => { a.json = p.contains("--json"); a.ifaces = p.values_from_str("--iface").map_err(|e| e.to_string())?; }
        other => return Err(format!("unknown command {other}")),
    }
    let rest = p.finish();
    if !rest.is_empty() { return Err(format!("unexpected {:?}", rest)); }
    Ok(a)
}
fn main() {
    match parse() { Ok(a) => println!("{a:?}"), Err(e) => { eprintln!("probe: {e}"); std::process::exit(2) } }
}
