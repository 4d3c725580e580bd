"""The thread policy: budget shares, the measured choice, bounded trial cost, restoring."""

from __future__ import annotations

import pytest

from ijr_core.config import ConfigError, RunConfig
from ijr_core.threads import ThreadBudget, ThreadPolicy


class FakeTorch:
    """A thread setting, and steps / probes whose durations depend on the thread count."""

    def __init__(self, n: int = 3, seconds=None, probe=None, probe_every: int = 5):
        self.n = n
        self.seconds = seconds or {1: 0.01, 2: 0.01}
        self.probe = probe or {k: 5 * v for k, v in self.seconds.items()}
        self.probe_every = probe_every
        self.history: list[int] = []

    def set(self, n: int) -> None:
        self.n = n

    def get(self) -> int:
        return self.n

    def run(self, policy: ThreadPolicy, steps: int, start: int = 0) -> None:
        """Steps start+1 .. start+steps, a probe after every probe_every-th (the trainer's
        order: before_step, the step, after_step, then the probe when due)."""
        for step in range(start, start + steps):
            n = policy.before_step(step)
            assert n == self.n
            self.history.append(n)
            policy.after_step(self.seconds[n])
            if (step + 1) % self.probe_every == 0:
                policy.after_probe(self.probe[self.n])


def policy(fake: FakeTorch, budget: ThreadBudget, fixed=None, **kw) -> ThreadPolicy:
    return ThreadPolicy(fixed, budget, set_threads=fake.set, get_threads=fake.get,
                        clock=lambda: 0.0, **kw)


def test_budget_shares_the_cores_between_active_runs():
    b = ThreadBudget(total=4)
    assert b.cap() == 4
    b.enter()
    b.enter()
    assert b.cap() == 2
    b.enter()
    assert b.cap() == 1  # never below one thread
    for _ in range(3):
        b.leave()
    assert b.active == 0 and b.cap() == 4
    with pytest.raises(ValueError):
        b.set_total(0)


@pytest.mark.parametrize(("seconds", "best"), [({1: 0.010, 4: 0.004}, 4),
                                                ({1: 0.010, 4: 0.100}, 1)])
def test_auto_keeps_the_faster_count(seconds, best):
    fake = FakeTorch(seconds=seconds)
    p = policy(fake, ThreadBudget(total=4))
    fake.run(p, 40)
    assert p.choice == best and fake.history[-10:] == [best] * 10
    assert p.trials[-1]["chosen"] == best


def test_probes_count_in_the_choice():
    # steps alone are faster on 4 threads, but the probes (a large share of a run) are
    # much slower there: whole intervals decide (measured on a busy VM: 10x slower runs)
    fake = FakeTorch(seconds={1: 0.010, 4: 0.008}, probe={1: 0.05, 4: 0.5})
    p = policy(fake, ThreadBudget(total=4))
    fake.run(p, 40)
    assert p.choice == 1
    assert p.trials[0]["1"] == pytest.approx((5 * 0.010 + 0.05) / 5)


def test_a_much_slower_count_costs_only_one_step_to_rule_out():
    fake = FakeTorch(seconds={1: 0.01, 4: 1.0})  # all threads 100x slower (a busy machine)
    p = policy(fake, ThreadBudget(total=4))
    fake.run(p, 50)
    assert fake.history.count(4) == 1 and p.choice == 1


def test_rechecks_after_recheck_steps_and_when_the_share_changes():
    fake = FakeTorch(seconds={1: 0.01, 2: 0.005, 4: 0.02})
    budget = ThreadBudget(total=4)
    p = policy(fake, budget, recheck_steps=30)
    fake.run(p, 20)
    assert p.choice == 1 and len(p.trials) == 1  # 4 threads slower than 1
    other = policy(FakeTorch(), budget)  # a second run: the share drops to 2
    fake.run(p, 20, start=20)
    assert p.trials[-1]["cap"] == 2 and p.choice == 2
    other.close()
    fake.run(p, 20, start=40)
    assert [t["cap"] for t in p.trials] == [4, 2, 4]  # its share is back
    fake.run(p, 60, start=60)
    assert [t["step"] for t in p.trials[2:]] == [40, 70, 100]  # re-checked every 30 steps
    p.close()


def test_fixed_count_is_bounded_by_the_share_and_the_count_is_restored():
    fake = FakeTorch(n=3)
    budget = ThreadBudget(total=2)
    p = policy(fake, budget, fixed=8)
    fake.run(p, 5)
    assert fake.history == [2] * 5 and p.trials == [] and budget.active == 1
    p.close()
    p.close()  # twice is harmless
    assert fake.n == 3 and budget.active == 0
    assert p.summary()["mode"] == "fixed" and p.summary()["changes"] == [[0, 2]]


def test_torch_threads_field_validates_and_round_trips():
    c = RunConfig(torch_threads=2)
    assert RunConfig.from_query(c.to_query()) == c and RunConfig().torch_threads is None
    with pytest.raises(ConfigError, match="torch_threads"):
        RunConfig(torch_threads=0)


def test_trainer_records_the_policy_and_restores_the_thread_count():
    import torch

    from ijr_core.trainer import train

    before = torch.get_num_threads()
    run = train(RunConfig(n_train=60, n_test=20, width=8, steps=6, probe_every=3,
                          probe_size=30, torch_threads=1))
    assert run.meta["thread_policy"]["mode"] == "fixed"
    assert run.meta["thread_policy"]["changes"][0][1] == 1 and run.meta["threads"] == 1
    assert torch.get_num_threads() == before
