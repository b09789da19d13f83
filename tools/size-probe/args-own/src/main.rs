//! The probe CLI with a declaration table like preroot's src/cli/decl.rs (see args-lexopt).
struct Opt { long: &'static str, value: bool, cmds: &'static [&'static str], repeat: bool }
const OPTS: &[Opt] = &[
    Opt { long: "from", value: true, cmds: &["ctx"], repeat: false },
    Opt { long: "timeout", value: true, cmds: &["ctx"], repeat: false },
    Opt { long: "root", value: true, cmds: &["ctx"], repeat: false },
    Opt { long: "dry-run", value: false, cmds: &["grow"], repeat: false },
    Opt { long: "json", value: false, cmds: &["grow", "net"], repeat: false },
    Opt { long: "iface", value: true, cmds: &["net"], repeat: true },
];
#[derive(Debug, Default)]
struct Args { cmd: String, from: Option<String>, timeout: Option<f64>, root: Option<String>, dry: bool, json: bool, spec: Option<String>, ifaces: Vec<String>, verbose: bool }
fn parse() -> Result<Args, String> {
    let mut a = Args::default();
    let mut got: Vec<(&str, Option<String>)> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-v" || arg == "--verbose" { a.verbose = true; continue; }
        if let Some(l) = arg.strip_prefix("--") {
            let o = OPTS.iter().find(|o| o.long == l).ok_or_else(|| format!("unknown option {arg}"))?;
            let v = if o.value { Some(it.next().ok_or_else(|| format!("{arg} needs a value"))?) } else { None };
            if !o.repeat && got.iter().any(|(n, _)| *n == o.long) { return Err(format!("{arg} given twice")); }
            got.push((o.long, v));
        } else if a.cmd.is_empty() {
            if !["ctx", "grow", "net"].contains(&arg.as_str()) { return Err(format!("unknown command {arg}")); }
            a.cmd = arg;
        } else if a.cmd == "grow" && a.spec.is_none() { a.spec = Some(arg) } else { return Err(format!("unexpected {arg}")) }
    }
    for (name, v) in got {
        let o = OPTS.iter().find(|o| o.long == name).ok_or("?")?;
        if !o.cmds.contains(&a.cmd.as_str()) { return Err(format!("--{name} does not apply to {}", a.cmd)); }
        match name {
            "from" => a.from = v, "root" => a.root = v,
            "timeout" => a.timeout = Some(v.unwrap_or_default().parse().map_err(|_| "--timeout: not seconds")?),
            "dry-run" => a.dry = true, "json" => a.json = true, "iface" => a.ifaces.extend(v),
            _ => {}
        }
    }
    Ok(a)
}
fn main() {
    match parse() { Ok(a) => println!("{a:?}"), Err(e) => { eprintln!("probe: {e}"); std::process::exit(2) } }
}
