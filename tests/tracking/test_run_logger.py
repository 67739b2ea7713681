"""The worker-side metric logger batches its writes and loses nothing at flush."""

from sciml.tracking import RunLogger, Tracker


def _history(tracker, run_id, key):
    return [(m.step, m.value) for m in tracker._client.get_metric_history(run_id, key)]


def test_buffered_metrics_reach_the_store_only_at_flush_and_all_of_them(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlruns.db'}")
    run_id = tracker.start_run("logger", "buffered")
    logger = RunLogger(tracker.uri, run_id, flush_seconds=3600)
    for step in range(1, 6):
        logger.log_metrics({"val_rel_l2": 1.0 / step, "train_loss": 2.0 / step}, step=step)
    assert _history(tracker, run_id, "val_rel_l2") == []  # held back: one write per flush
    logger.flush()
    assert _history(tracker, run_id, "val_rel_l2") == [(s, 1.0 / s) for s in range(1, 6)]
    assert len(_history(tracker, run_id, "train_loss")) == 5
    logger.flush()  # nothing pending: no duplicate rows
    assert len(_history(tracker, run_id, "val_rel_l2")) == 5


def test_flush_seconds_zero_writes_every_call(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlruns.db'}")
    run_id = tracker.start_run("logger", "immediate")
    logger = RunLogger(tracker.uri, run_id)
    logger.log_metrics({"val_rel_l2": 0.5}, step=1)
    assert _history(tracker, run_id, "val_rel_l2") == [(1, 0.5)]
