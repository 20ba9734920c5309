//! The report per losing carrier (filled in by the report slice).
