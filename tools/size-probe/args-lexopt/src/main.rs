//! The probe CLI with lexopt: `ctx [--from K:P] [--timeout S] [--root D]`, `grow [--dry-run]
//! [--json] [SPEC]`, `net [--iface N]... [--json]`; -v global; errors one line, exit 2.
use lexopt::prelude::*;
#[derive(Debug, Default)]
struct Args { cmd: String, from: Option<String>, timeout: Option<f64>, root: Option<String>, dry: bool, json: bool, spec: Option<String>, ifaces: Vec<String>, verbose: bool }
fn parse() -> Result<Args, lexopt::Error> {
    let mut a = Args::default();
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Short('v') | Long("verbose") => a.verbose = true,
            Long("from") if a.cmd == "ctx" => a.from = Some(p.value()?.string()?),
            Long("timeout") if a.cmd == "ctx" => a.timeout = Some(p.value()?.parse()?),
            Long("root") if a.cmd == "ctx" => a.root = Some(p.value()?.string()?),
            Long("dry-run") if a.cmd == "grow" => a.dry = true,
            Long("json") if a.cmd == "grow" || a.cmd == "net" => a.json = true,
            Long("iface") if a.cmd == "net" => a.ifaces.push(p.value()?.string()?),
            Value(v) if a.cmd.is_empty() => { let v = v.string()?; if !["ctx","grow","net"].contains(&v.as_str()) { return Err(format!("unknown command {v}").into()); } a.cmd = v }
            Value(v) if a.cmd == "grow" && a.spec.is_none() => a.spec = Some(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(a)
}
fn main() {
    match parse() { Ok(a) => println!("{a:?}"), Err(e) => { eprintln!("probe: {e}"); std::process::exit(2) } }
}
