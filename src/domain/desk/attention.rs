//! What needs attention (filled in by the attention slice).
