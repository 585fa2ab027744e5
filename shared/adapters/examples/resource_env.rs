//! Every environment variable a deployed function reads its resources from, as `NAME=VALUE`
//! lines with placeholder values: what `make bench` starts bootstraps with to time their
//! cold start. Printed from the same definitions the SAM template is checked against, so a
//! resource added later cannot make the benchmark stop at start-up.

use adapters::config::Resources;

fn main() -> Result<(), adapters::config::ConfigError> {
    let resources = Resources::from_lookup(|name| Some(format!("bench-{}", name.to_lowercase())))?;
    let mut lines: Vec<String> =
        resources.to_env().into_iter().map(|(name, value)| format!("{name}={value}")).collect();
    lines.sort();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
