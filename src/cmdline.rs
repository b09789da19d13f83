//! STUB: kernel command line parsing.
