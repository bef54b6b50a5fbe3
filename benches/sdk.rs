//! Criterion benches of the SDK's hot CPU paths: chunk planning, hashing, the status table
//! and the load balancers. Run with `cargo bench --bench sdk`; see docs/performance.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mictlanx::bench_api::{Balancer, StatusTable};
use mictlanx::checksum::{sha256_hex, BallHasher};
use mictlanx::chunking::{ChunkPlan, ChunkRule};
use mictlanx::LbAlgorithm;

fn chunk_planning(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_plan");
    for (name, total) in [("1MB", 1_000_000u64), ("1GB", 1_000_000_000)] {
        g.bench_function(BenchmarkId::new("plan_and_iterate_256kb", name), |b| {
            b.iter(|| {
                let plan = ChunkPlan::new(black_box(total), 256_000, ChunkRule::InMemory)
                    .expect("valid plan");
                plan.iter().map(|r| r.len).sum::<u64>()
            })
        });
    }
    let plan = ChunkPlan::new(1_000_000_000, 256_000, ChunkRule::InMemory).expect("valid plan");
    g.bench_function("chunk_index_at_1GB", |b| {
        let mut offset = 0u64;
        b.iter(|| {
            offset = (offset + 7_777_777) % 1_000_000_000;
            plan.chunk_index_at(black_box(offset))
        })
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("sha256");
    for size in [4 * 1024usize, 256 * 1024, 4 * 1024 * 1024] {
        let data = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("sha256_hex", size), &data, |b, d| {
            b.iter(|| sha256_hex(black_box(d)))
        });
    }
    // A whole ball: every chunk's SHA-256 and the full checksum in one pass.
    let size = 8 * 1024 * 1024usize;
    let data = vec![0xa5u8; size];
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("ball_hasher_8MiB_256kb_chunks", |b| {
        b.iter(|| {
            let plan =
                ChunkPlan::new(size as u64, 256_000, ChunkRule::InMemory).expect("valid plan");
            let mut h = BallHasher::new(plan);
            for piece in data.chunks(64 * 1024) {
                h.update(piece);
            }
            h.finish().expect("all bytes fed")
        })
    });
    g.finish();
}

fn status_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("status_table");
    g.bench_function("enqueue_progress_status", |b| {
        let table = StatusTable::default();
        b.iter(|| {
            let id = table.enqueue();
            table.progress(&id, 1);
            table.status(black_box(&id))
        })
    });
    // Reads of one task in a table that already holds 100,000.
    let table = StatusTable::default();
    let ids: Vec<_> = (0..100_000).map(|_| table.enqueue()).collect();
    g.bench_function("status_in_100k", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % ids.len();
            table.status(black_box(&ids[i]))
        })
    });
    g.finish();
}

fn balancers(c: &mut Criterion) {
    let mut g = c.benchmark_group("balancer_pick_3_routers");
    for algorithm in LbAlgorithm::ALL {
        let mut lb = Balancer::new(algorithm, 3);
        g.bench_function(algorithm.as_str(), |b| {
            b.iter(|| lb.pick(black_box("bucket"), black_box("ball_17"), 4096))
        });
    }
    g.finish();
}

criterion_group!(benches, chunk_planning, hashing, status_table, balancers);
criterion_main!(benches);
