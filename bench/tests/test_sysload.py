"""LoadMonitor's accounting of processes that exit (no /proc needed: samples are faked)."""

from bench.sysload import LoadMonitor


def _run(samples):
    mon = LoadMonitor(lambda: set())
    it = iter(samples)
    mon._sample = lambda: next(it)  # type: ignore[method-assign]
    mon._prev = mon._sample()
    for _ in range(len(samples) - 1):
        mon._step()
    return mon._acc


def test_workers_reaped_by_their_parent_are_not_counted_twice():
    me, sup, w1, w2 = 1, 2, 3, 4
    servers = {sup, w1, w2}
    p0 = {me: (0, 0, 1), sup: (me, 10, 2), w1: (sup, 100, 3), w2: (sup, 100, 3)}
    p1 = {me: (0, 0, 1), sup: (me, 10, 2)}  # the workers exited; the supervisor reaped them
    p2 = {me: (0, 0, 1)}  # the supervisor exited; we reaped it: RUSAGE_CHILDREN += 10 + 200 + 7 tail
    acc = _run([
        (0.0, 0, p0, servers, {me} | servers, 0),
        (1.0, 0, p1, {sup}, {me, sup}, 0),
        (2.0, 300, p2, set(), {me}, 217),
    ])  # fmt: skip
    assert acc["server"] == 7  # only the tail nobody saw; the 210 ticks were counted while alive
    assert acc["loadgen"] == 0


def test_direct_child_tail_counted():
    me, srv = 1, 2
    acc = _run([
        (0.0, 0, {me: (0, 0, 1), srv: (me, 50, 2)}, {srv}, {me, srv}, 0),
        (1.0, 100, {me: (0, 0, 1)}, set(), {me}, 55),
    ])  # fmt: skip
    assert acc["server"] == 5 and acc["other"] == 95
