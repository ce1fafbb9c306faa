//! Engine throughput on the realistic mix (see `otc_benches::mix`), with
//! 10k and 100k live listings.
//!
//! Run: `cargo bench -p otc-benches --bench engine`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otc_benches::mix::{COMMANDS_PER_ROUND, Mix};

fn bench_mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_mix");
    group.throughput(Throughput::Elements(COMMANDS_PER_ROUND));
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(4));
    for live in [10_000usize, 100_000] {
        let mut mix = Mix::new(live);
        mix.warm();
        group.bench_function(format!("{live}_live_listings"), |b| {
            b.iter(|| {
                mix.round();
                black_box(mix.e.last_seq())
            })
        });
        let s = mix.e.state();
        eprintln!(
            "after bench: {} listings in book, {} trades, {} deadlines, seq {}",
            s.book.len(),
            s.trades.len(),
            s.deadlines.len(),
            mix.e.last_seq()
        );
    }
    group.finish();
}

criterion_group!(benches, bench_mix);
criterion_main!(benches);
