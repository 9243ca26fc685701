//! What the setup code's PBKDF2 costs the owner's client (and the
//! provisioning host) per pairing, and so an offline guesser per guess:
//! `StoredVerifier::derive` at 1,000 (Matter's minimum) and 100,000
//! (the default, Matter's maximum) iterations.
//!
//! ```sh
//! cargo run --release -p keyway-channel --example pbkdf2_cost
//! ```

use std::time::Instant;

use keyway_channel::pairing::{DEFAULT_ITERATIONS, MIN_ITERATIONS};
use keyway_channel::{SetupCode, StoredVerifier};

fn main() {
    let code = SetupCode::new(20_231_107).expect("valid code");
    for iterations in [MIN_ITERATIONS, DEFAULT_ITERATIONS] {
        let rounds = 5;
        let start = Instant::now();
        for i in 0..rounds {
            std::hint::black_box(StoredVerifier::derive(&code, &[i as u8; 16], iterations));
        }
        let each = start.elapsed() / rounds;
        // 10^8 codes: the whole space for someone who stole the verifier.
        let space = each.as_secs_f64() * 99_999_988.0;
        println!(
            "{iterations:>7} iterations: {:>8.2} ms per derivation (mean of {rounds}); whole code space on one core: {:.1} days",
            each.as_secs_f64() * 1e3,
            space / 86_400.0
        );
    }
}
