from recipes.promise import deferred_queue


def test_a_queue_that_keeps_growing():
    assert deferred_queue.keeps_growing([0, 1, 2, 3, 4], 4)
    assert not deferred_queue.keeps_growing([1, 2, 3, 4], 4)  # too few runs
    assert not deferred_queue.keeps_growing([0, 1, 1, 3, 4], 4)
    assert not deferred_queue.keeps_growing([5, 5, 5, 5, 5], 4)
    assert deferred_queue.keeps_growing([9, 0, 1, 2, 3, 4], 4)


def test_counts_are_kept_across_runs(tmp_path):
    state = str(tmp_path / 'promise' / 'deferred.json')
    for count in range(7):
        counts = deferred_queue.record(state, count, 5)
    assert counts == [2, 3, 4, 5, 6]
