//! Engine throughput on the realistic mix (see `otc_benches::mix`), with
//! 10k and 100k live listings, fixed-only and half floating (SPEC §22); and
//! reference updates per second on a 100k half-floating book.
//!
//! Run: `cargo bench -p otc-benches --bench engine`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otc_benches::mix::{COMMANDS_PER_ROUND, Mix};
use otc_engine::{Asset, Fiat};

fn bench_mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_mix");
    group.throughput(Throughput::Elements(COMMANDS_PER_ROUND));
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(4));
    for (live, floating) in [
        (10_000usize, false),
        (100_000, false),
        (10_000, true),
        (100_000, true),
    ] {
        let mut mix = Mix::with_floating(live, floating);
        mix.warm();
        let name = if floating { "half_floating" } else { "fixed" };
        group.bench_function(format!("{live}_live_listings_{name}"), |b| {
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

fn bench_reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("reference_update");
    group.throughput(Throughput::Elements(1));
    let mut mix = Mix::with_floating(100_000, true);
    let (asset, fiat) = (
        Asset::new("EB").unwrap_or_else(|e| panic!("{e}")),
        Fiat::new("CNY").unwrap_or_else(|e| panic!("{e}")),
    );
    let prices = ["7.49", "7.50", "7.51"];
    let mut i = 0usize;
    let mut now = otc_engine::Timestamp(1_800_000_000_000);
    group.bench_function("100000_live_listings_half_floating", |b| {
        b.iter(|| {
            i += 1;
            now = now.plus_ms(1);
            let c = Mix::reference(asset, fiat, prices[i % 3]);
            black_box(mix.e.apply(&c, now).map(|e| e.len()))
        })
    });
    // Resting buys nothing fills are offered the floating listings again at
    // each new reference: what that costs.
    for (listings, resting) in [(10_000, 10), (100_000, 10), (100_000, 100)] {
        let mut mix = Mix::with_floating(listings, true);
        mix.rest_unfillable(resting);
        // From the mix's clock: the orders rest for a day, a bench's
        // iterations take well under a day of 1 ms steps.
        let mut now = mix.now();
        let name = format!("{listings}_live_listings_half_floating_{resting}_resting_unfillable");
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                now = now.plus_ms(1);
                let c = Mix::reference(asset, fiat, prices[i % 3]);
                black_box(mix.e.apply(&c, now).map(|e| e.len()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_mix, bench_reference);
criterion_main!(benches);
