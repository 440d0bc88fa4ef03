//! Orders after the hot path has taken their stock: the group-commit
//! [`writer`] makes them durable in batches. (The hot path, the order
//! endpoints and the payment window build on it.)

pub mod writer;
