//! The built-in model zoo.
