//! STUB until the cmdline branch is merged.
use crate::context::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlatformChoice {
    #[default]
    Detect,
    Disabled,
    Platform(Platform),
}

#[derive(Debug, Clone, Default)]
pub struct Cmdline {
    pub platform: PlatformChoice,
    pub ds: Option<String>,
    pub debug: bool,
    pub problems: Vec<String>,
}

pub fn parse(text: &str) -> Cmdline {
    let mut c = Cmdline::default();
    for w in text.split_whitespace() {
        if let Some(p) = w.strip_prefix("preroot.platform=") {
            c.platform = match p {
                "none" => PlatformChoice::Disabled,
                _ => {
                    Platform::from_name(p).map_or(PlatformChoice::Detect, PlatformChoice::Platform)
                }
            };
        }
        if let Some(d) = w.strip_prefix("ds=") {
            c.ds = Some(d.into());
        }
    }
    c
}
