//! Business hours (filled in by the attention slice).
