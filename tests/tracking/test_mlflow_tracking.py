"""Tracker: the sweep's MLflow operations that the registry tests do not cover."""

from sciml.tracking import Tracker


def test_running_children_are_the_parents_open_runs_only(mlflow_uri):
    tracker = Tracker(mlflow_uri)
    parent = tracker.start_run("e", "sweep")
    other = tracker.start_run("e", "another sweep")
    done, lost = (tracker.start_run("e", name, parent_run_id=parent) for name in ("done", "lost"))
    tracker.start_run("e", "someone else's", parent_run_id=other)
    tracker.end_run(done)
    assert tracker.running_children(parent) == [lost]
    tracker.end_run(lost, status="KILLED")
    assert tracker.running_children(parent) == []
