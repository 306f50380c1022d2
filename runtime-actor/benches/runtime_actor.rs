//! Placeholder, replaced by the benchmark below in this series.
fn main() {}
