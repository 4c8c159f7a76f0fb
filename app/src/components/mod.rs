//! Pieces shared by the pages.

pub mod flag;
pub mod model_notice;
pub mod run_where;
pub mod theme;
