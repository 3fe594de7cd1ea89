//! The scripts' table of trunks (`scripts/nets.py`) against the crate's: the oracle and
//! benchmark scripts take their nets, in order, and every per-net fact from that table,
//! so its keys must be `Net::ALL`'s names, in `Net::ALL`'s order. A trunk added to the
//! crate without its entry there (or the other way round) fails here.

use lpips::Net;

#[test]
fn scripts_net_table_lists_net_all() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nets.py");
    let text = std::fs::read_to_string(&path).unwrap();
    // Each key on a line of its own, as the file's docstring promises: `    "alex": Trunk(`.
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("    \"")?.strip_suffix("\": Trunk("))
        .collect();
    let names: Vec<&str> = Net::ALL.into_iter().map(Net::name).collect();
    assert_eq!(
        keys,
        names,
        "{}'s TABLE keys against lpips::Net::ALL",
        path.display()
    );
}
