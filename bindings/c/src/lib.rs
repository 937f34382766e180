//! C API (to be written).
