//! The environment table in docs/interfaces.md is the functions' contract (the Terraform module sets
//! what it lists): it must name exactly the variables each function reads.

use std::collections::BTreeSet;

const INTERFACES: &str = include_str!("../../../docs/interfaces.md");

/// The variables the table marks as read (`required` or `optional`) by `function`.
fn documented(function: &str) -> BTreeSet<String> {
    let mut rows = INTERFACES
        .lines()
        .skip_while(|line| !line.starts_with("| variable |"))
        .take_while(|line| line.starts_with('|'));
    let header: Vec<&str> = rows
        .next()
        .map(|line| line.split('|').map(str::trim).collect())
        .unwrap_or_default();
    let column = header
        .iter()
        .position(|name| *name == function)
        .unwrap_or_else(|| panic!("no column {function:?} in the environment table"));
    rows.skip(1) // the |---| line
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let read = matches!(cells.get(column), Some(&"required" | &"optional"));
            read.then(|| cells[1].trim_matches('`').to_string())
        })
        .collect()
}

fn names(variables: &[&str]) -> BTreeSet<String> {
    variables.iter().map(|name| name.to_string()).collect()
}

#[test]
fn the_table_lists_what_each_function_reads() {
    assert_eq!(
        documented("feed-export"),
        names(&feed_export::environment::VARIABLES)
    );
    assert_eq!(
        documented("agent-health"),
        names(&agent_health::environment::EVALUATOR_VARIABLES)
    );
    assert_eq!(
        documented("ack-url"),
        names(&agent_health::environment::ACK_VARIABLES)
    );
}
