//! One model, four threads: each thread takes a handle with `Lpips::share` (the weights
//! are shared, not copied) and gets exactly the single-thread results.

use crate::common;

use lpips::{Lin, Net};

#[test]
fn four_threads_get_single_thread_results() {
    let oracle = common::read_tensors("outputs_alex.safetensors");
    let model = common::model(Net::Alex, Lin::V0_1);
    let (in0, in1) = (&oracle["in0"], &oracle["in1"]);
    let single = model.distances(in0, in1).unwrap();
    let weights_before = model.weights()[0].data_ptr();
    let results: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let m = model.share();
                assert_eq!(
                    m.weights()[0].data_ptr(),
                    weights_before,
                    "shared, not copied"
                );
                let (a, b) = (in0.copy(), in1.copy());
                s.spawn(move || (0..5).map(|_| m.distances(&a, &b).unwrap()).collect())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for per_thread in results {
        for got in per_thread {
            assert_eq!(got, single);
        }
    }
}

/// `lpips::workers::with_workers`: the caller's libtorch thread count is kept, a
/// worker's panic comes back with its own message, absurd counts are errors.
#[test]
fn workers_keep_the_thread_count_and_report_failures() {
    let model = common::model(Net::Squeeze, Lin::V0_1);
    let before = lpips::tch::get_num_threads();
    let doubled = lpips::workers::with_workers(
        &model,
        usize::try_from(before).unwrap() + 1,
        |_, x: i32| 2 * x,
        |w| w.run(vec![1, 2]),
    )
    .unwrap();
    assert_eq!(doubled, Some(vec![2, 4]));
    // More jobs than workers are queued, their results in the jobs' order.
    let queued = lpips::workers::with_workers(
        &model,
        3,
        |_, x: i32| {
            // Later jobs finish first on some workers; the order stays the jobs'.
            std::thread::sleep(std::time::Duration::from_millis(((10 - x) * 2) as u64));
            x * x
        },
        |w| (w.run((0..10).collect()), w.run(vec![7])),
    )
    .unwrap();
    assert_eq!(
        queued,
        (Some((0..10).map(|x| x * x).collect()), Some(vec![49]))
    );
    assert_eq!(lpips::tch::get_num_threads(), before, "thread count kept");

    for threads in [lpips::workers::MAX_WORKERS + 1, usize::MAX] {
        match lpips::workers::with_workers(&model, threads, |_, (): ()| (), |_| ()) {
            Err(e @ lpips::LpipsError::Workers { .. }) => {
                assert!(e.to_string().contains("at most"), "{e}")
            }
            other => panic!("{threads} workers: {other:?}"),
        }
    }

    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lpips::workers::with_workers(
            &model,
            2,
            |_, (): ()| -> () { panic!("the job says no") },
            |w| w.run(vec![()]),
        )
    }));
    let payload = caught.expect_err("the worker's panic is raised again");
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    assert_eq!(message.as_deref(), Some("the job says no"));
    assert_eq!(
        lpips::tch::get_num_threads(),
        before,
        "kept after a panic too"
    );
}
