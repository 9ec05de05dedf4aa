//! The gateway's policies, one small unit each.

pub mod budget;
pub mod governance;
