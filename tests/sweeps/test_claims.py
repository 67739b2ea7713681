"""The claims table: verdicts computed from results, flipping when the results flip."""

from sciml.sweeps.claims import CLOSE, FAR, evaluate_claims, scratch_warnings
from sciml.sweeps.results import data_savings


def _claims(best):
    table = evaluate_claims(best, data_savings(best))
    return {(row["claim"], row["scope"]): row for _, row in table.iterrows()}


def _q1(best):
    claims = _claims(best)
    return (claims["fine-tuning beats scratch at every N", "SYS-1(5,10)"],
            claims["fine-tuning saves data", "SYS-1(5,10)"])


def test_q1_claims_supported_by_results_that_support_them(synthetic):
    beats, saves = _q1(synthetic.q1(seeds=3).best())
    assert (beats["verdict"], saves["verdict"]) == ("supported", "supported")
    assert "N=8: fine-tune 0.0928 [0.0906, 0.095] vs scratch 0.371 [0.362, 0.38]" in beats["evidence"]
    assert "N=8: 16x" in saves["evidence"] and "N=128: >=4x" in saves["evidence"]
    assert beats["rule"] and saves["rule"] and beats["why"] == ""


def test_q1_claims_flip_when_scratch_beats_fine_tuning(synthetic):
    synthetic.q1(seeds=3)
    best = synthetic.best()
    worse = (best["recipe"] == "finetune") & (best["n_train"] == 32)
    best.loc[worse, "test_rel_l2"] *= 8  # fine-tune 0.37 against scratch 0.19 at N = 32
    beats, saves = _q1(best)
    assert beats["verdict"] == "contradicted" and beats["why"] == "fails at N=32"
    assert saves["verdict"] == "contradicted" and "N=32" in saves["why"]


def test_q1_inconclusive_when_a_cell_is_missing(synthetic):
    synthetic.q1(seeds=1)
    best = synthetic.best()
    best = best[~((best["recipe"] == "scratch") & (best["n_train"] == 128))]
    beats, _ = _q1(best)
    assert beats["verdict"] == "inconclusive" and beats["why"] == "missing: N=128"
    assert "scratch cell missing" in beats["evidence"]


def test_q1_inconclusive_when_the_losing_cell_is_at_a_grid_edge(synthetic):
    best = synthetic.q1(seeds=1).best()
    edged = best.assign(lr_at_edge=(best["recipe"] == "scratch") & (best["n_train"] == 8))
    beats, saves = _q1(edged)
    assert beats["verdict"] == "inconclusive" and beats["why"] == "scratch lr at a grid edge: N=8"
    assert saves["verdict"] == "inconclusive" and "scratch lr at a grid edge" in saves["why"]
    # A winner at its edge could only win by more: the verdict stands.
    winner = best.assign(lr_at_edge=best["recipe"] == "finetune")
    assert _q1(winner)[0]["verdict"] == "supported"


def test_q1_a_loss_at_a_grid_edge_is_not_a_contradiction(synthetic):
    best = synthetic.q1(seeds=1).best()
    best.loc[(best["recipe"] == "finetune") & (best["n_train"] == 8), "test_rel_l2"] = 0.9
    assert _q1(best)[0]["verdict"] == "contradicted"
    edged = best.assign(lr_at_edge=(best["recipe"] == "finetune") & (best["n_train"] == 8))
    beats = _q1(edged)[0]
    assert beats["verdict"] == "inconclusive" and beats["why"] == "fine-tune lr at a grid edge: N=8"


def test_q1_inconclusive_within_the_seed_spread(synthetic):
    # Fine-tune 0.95x scratch, but seeds spread by 10% each: the quartiles overlap at every N.
    best = synthetic.q1(seeds=3, ft_factor=0.95, noise=0.1).best()
    beats, _ = _q1(best)
    assert beats["verdict"] == "inconclusive" and beats["why"].startswith("within the seed spread: N=8, N=32")


def test_q1_a_kept_start_matters_for_savings_not_for_beating_scratch(synthetic):
    synthetic.q1(seeds=1)
    synthetic.trials = [(spec, {**m, "best_epoch": 0} if spec["recipe"] == "finetune" and spec["n_train"] == 8
                         else m, key) for spec, m, key in synthetic.trials]
    beats, saves = _q1(synthetic.best())
    assert beats["verdict"] == "supported"
    assert saves["verdict"] == "inconclusive" and saves["why"] == "kept its start: N=8"
    assert "no savings" in saves["evidence"]


def _q2(synthetic, errors, kept=()):
    for preset, err in errors.items():
        synthetic.add("finetune", 512, err, preset=preset, best_epoch=0 if preset in kept else 9)
        synthetic.add("finetune", 8, 3 * err, preset=preset)
    return _claims(synthetic.best("q2"))["at the largest N (512) the fine-tuned error falls with model size",
                                          "SYS-1(5,10)"]


def test_q2_model_size_claim(synthetic):
    row = _q2(synthetic, {"64K": 0.043, "d16m8": 0.031, "1M": 0.027})
    assert row["verdict"] == "supported"
    assert row["evidence"] == "d16m8 vs 64K: d16m8 0.031 vs 64K 0.043; 1M vs d16m8: 1M 0.027 vs d16m8 0.031"


def test_q2_flips_when_the_largest_model_is_worse(synthetic):
    row = _q2(synthetic, {"64K": 0.043, "d16m8": 0.031, "1M": 0.05})
    assert row["verdict"] == "contradicted" and row["why"] == "fails at 1M vs d16m8"


def test_q2_kept_start_and_one_preset_are_inconclusive(synthetic):
    row = _q2(synthetic, {"64K": 0.043, "d16m8": 0.031, "1M": 0.027}, kept=("1M",))
    assert row["verdict"] == "inconclusive" and row["why"] == "kept its start: 1M vs d16m8"
    single = type(synthetic)()
    row = _q2(single, {"64K": 0.043})
    assert row["verdict"] == "inconclusive" and "one model size" in row["evidence"]


SHIFTS = {"poisson": ("SYS-1", ["SYS-1(1,2.5)", "SYS-1(2.5,7.5)", "SYS-1(5,10)", "SYS-1(10,20)"], "SYS-1(1,5)"),
          "advdiff": ("SYS-2", ["SYS-2(0.2,0.4)", "SYS-2(0.6,1.4)", "SYS-2(1,2)", "SYS-2(2,5)"], "SYS-2(0.2,1)")}


def _q3(synthetic, zero_shot):
    for system, (_, tasks, pretrain) in SHIFTS.items():
        for task, shift, zs in zip(tasks, ("none", "mild", "med", "large"), zero_shot[system]):
            common = {"task": task, "shift": shift, "system": system}
            synthetic.add("zeroshot", 0, zs, pretrain=pretrain, **common)
            for n in (8, 128):
                synthetic.add("scratch", n, 1 / n**0.3, **common)
                synthetic.add("finetune", n, zs / n**0.3, pretrain=pretrain, **common)
    return _claims(synthetic.best("q3"))


def test_q3_claims_per_system_and_their_flip(synthetic):
    claims = _q3(synthetic, {"poisson": (0.007, 0.03, 0.09, 0.5), "advdiff": (0.08, 0.2, 0.1, 0.4)})
    grows = "zero-shot error grows with the shift"
    assert claims[grows, "SYS-1"]["verdict"] == "supported"
    assert claims[grows, "SYS-1"]["evidence"].startswith("none < mild: none 0.007 vs mild 0.03")
    assert claims[grows, "SYS-2"]["verdict"] == "contradicted"
    assert claims[grows, "SYS-2"]["why"] == "fails at mild < med"
    beats = claims["fine-tuning beats scratch at every shift", "SYS-1"]
    assert beats["verdict"] == "supported" and beats["evidence"].count("fine-tune") == 8


def _q4(synthetic, mixed_over_same, mixed_under_scratch_at_8):
    for system, task, same in (("poisson", "SYS-1(1,2.5)", "SYS-1(1,5)"), ("helmholtz", "SYS-3(1,5)", "SYS-3(1,10)")):
        common = {"task": task, "shift": "none", "system": system}
        for n in (8, 32, 128):
            own = 0.02 / (n / 8) ** 0.3
            synthetic.add("finetune", n, own, pretrain=same, **common)
            synthetic.add("finetune", n, own * mixed_over_same, pretrain="mixed", **common)
            scratch = own * mixed_over_same * (mixed_under_scratch_at_8 if n == 8 else 4)
            synthetic.add("scratch", n, scratch, **common)
    return _claims(synthetic.best("q4"))


def test_q4_close_and_far_claims_and_their_flips(synthetic):
    claims = _q4(synthetic, mixed_over_same=1.5, mixed_under_scratch_at_8=FAR * 1.25)
    close = "mixed pre-training stays close to same-system pre-training"
    far = "mixed pre-training stays far below scratch"
    for task in ("SYS-1(1,2.5)", "SYS-3(1,5)"):
        assert claims[close, task]["verdict"] == "supported" and claims[far, task]["verdict"] == "supported"
    assert "(ratio 1.5, needs < 2)" in claims[close, "SYS-1(1,2.5)"]["evidence"]
    flipped = _q4(type(synthetic)(), mixed_over_same=CLOSE * 1.5, mixed_under_scratch_at_8=FAR * 0.75)
    assert flipped[close, "SYS-3(1,5)"]["verdict"] == "contradicted"
    assert flipped[far, "SYS-3(1,5)"]["verdict"] == "contradicted"
    assert flipped[far, "SYS-3(1,5)"]["why"] == "fails at N=8"


def test_an_empty_sweep_has_no_claims(synthetic):
    assert evaluate_claims(synthetic.best(), data_savings(synthetic.best())).empty


def test_scratch_warnings_name_a_non_monotone_curve_and_one_still_improving(synthetic):
    synthetic.add("scratch", 8, 0.5).add("scratch", 64, 0.2).add("scratch", 512, 0.3, best_epoch=30, epochs=30)
    warnings = scratch_warnings(synthetic.best())
    assert len(warnings) == 2
    assert "not monotone" in warnings[0] and "N=512 (0.3) worse than N=64 (0.2)" in warnings[0]
    assert "best at the last epoch run in 1 of 1 seed(s)" in warnings[1]


def test_scratch_warnings_use_epochs_run_and_the_seed_spread(synthetic):
    for seed, errs in enumerate([(0.5, 0.20, 0.22), (0.5, 0.24, 0.19), (0.5, 0.22, 0.21)]):
        for n, err in zip((8, 64, 512), errs):
            synthetic.add("scratch", n, err, seed=seed, best_epoch=12, epochs=30, epochs_run=12 if n == 512 else 30)
    warnings = scratch_warnings(synthetic.best())
    assert len(warnings) == 1 and "still improving" in warnings[0] and "3 of 3" in warnings[0]
    assert scratch_warnings(type(synthetic)().q1(seeds=2).best()) == []
