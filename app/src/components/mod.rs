//! Pieces shared by the pages.

pub mod flag;
pub mod theme;
