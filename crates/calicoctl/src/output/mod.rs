//! Printing resources the way calicoctl prints them: YAML, JSON and tables.

pub mod gofmt;
pub mod json;
pub mod table;
pub mod yaml;
