"""The multi-dataset task: informative loss, projection loss, masking, targets, mixing partners."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vidgrid.config import load_config
from vidgrid.data.annotations import Sample
from vidgrid.errors import ConfigError
from vidgrid.models import create_model
from vidgrid.tasks import task_class
from vidgrid.tasks.multitrain import MultiTrain, MultiTrainNetwork, hinge_balance, informative_loss

CLASSES = ["k/a", "k/b", "k/c", "m/x", "m/y"]
HIDDEN = 8


def make_task(**multitrain: float) -> MultiTrain:
    datasets = '[{name: k, train_list: t, val_list: v}, {name: m, train_list: t, val_list: v, loss: sigmoid, loss_weight: 2.0}]'
    extra = [f"multitrain.{k}={v}" for k, v in multitrain.items()]
    cfg = load_config(None, ["task.name=multitrain", f"datasets={datasets}", f"multitrain.hidden={HIDDEN}", *extra])
    return task_class("multitrain").for_run(CLASSES, cfg)


def targets_of(task: MultiTrain, labels: list[int]) -> torch.Tensor:
    return torch.stack([task.target(Sample(Path(f"{i}.mp4"), label)) for i, label in enumerate(labels)])


def outputs(batch: int, *, seed: int = 0) -> torch.Tensor:
    """Logits (5), expander (8), projections k->m (2) and m->k (3)."""
    return torch.randn(batch, 5 + HIDDEN + 2 + 3, generator=torch.Generator().manual_seed(seed), requires_grad=True)


# --------------------------------------------------------------------------------------------------
# informative loss


def test_informative_loss_equals_the_formula_on_hand_made_embeddings():
    z = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0], [2.0, 1.0, 5.0], [0.0, 1.0, 2.0]])
    n, d = z.shape
    var = [sum((z[i, j] - z[:, j].mean()) ** 2 for i in range(n)) / (n - 1) for j in range(d)]
    variance = sum(max(0.0, 1 - math.sqrt(float(v) + 1e-4)) for v in var) / d
    cov = [[float(sum((z[i, j] - z[:, j].mean()) * (z[i, k] - z[:, k].mean()) for i in range(n)) / (n - 1)) for k in range(d)]
           for j in range(d)]
    covariance = sum(cov[j][k] ** 2 for j in range(d) for k in range(d) if j != k) / d
    total, v, c = informative_loss(z, variance_weight=25.0, covariance_weight=1.0)
    assert v.item() == pytest.approx(variance, rel=1e-5) and c.item() == pytest.approx(covariance, rel=1e-5)
    assert total.item() == pytest.approx(25 * variance + covariance, rel=1e-5)


def test_collapsed_embedding_has_a_large_variance_term_and_a_decorrelated_one_none():
    collapsed = torch.ones(64, 16) * 3.0
    total, variance, covariance = informative_loss(collapsed, variance_weight=25.0, covariance_weight=1.0)
    assert variance.item() == pytest.approx(1 - math.sqrt(1e-4), abs=1e-6) and covariance.item() == 0.0
    assert total.item() == pytest.approx(25 * 0.99, abs=1e-4)
    # ±1 columns of a Hadamard matrix: unit variance, exactly uncorrelated
    h = torch.tensor([[1.0]])
    for _ in range(6):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    decorrelated = h[:, 1:17] * math.sqrt(63 / 64)  # unbiased variance 1
    total, variance, covariance = informative_loss(decorrelated, variance_weight=25.0, covariance_weight=1.0)
    assert variance.item() == 0.0 and covariance.item() < 1e-10 and total.item() < 1e-8


@pytest.mark.parametrize(("rows", "outputs_", "balance"), [(8, 64, 0.915), (4, 96, 0.586), (8, 40, 1.099), (16, 12, math.inf)])
def test_embeddings_trained_on_the_informative_loss_alone_settle_at_the_hinge_balance(rows, outputs_, balance):
    # rows free to move: below the balance the variance hinge pulls, above it the covariance floor of rank rows - 1
    z = torch.nn.Parameter(0.1 * torch.randn(rows, outputs_, generator=torch.Generator().manual_seed(0)))
    optimizer = torch.optim.Adam([z], lr=0.02)
    for _ in range(500):
        optimizer.zero_grad()
        informative_loss(z, variance_weight=25.0, covariance_weight=1.0)[0].backward()
        optimizer.step()
    predicted = hinge_balance(outputs_, rows, variance_weight=25.0, covariance_weight=1.0)
    assert predicted == pytest.approx(balance, abs=1e-3)
    sd = z.detach().std(dim=0)
    if predicted < 1:
        assert sd.min().item() == pytest.approx(predicted, abs=0.01) and sd.max().item() == pytest.approx(predicted, abs=0.01)
    else:  # the hinge is met
        assert sd.mean().item() >= 0.99 and sd.min().item() >= 0.97


def test_hinge_balance_of_the_supplements_and_vicregs_batches_reaches_unit_variance():
    # 2,048 expander outputs over the supplement's 512 clips; VICReg: 8,192 over 2,048 images
    assert hinge_balance(2048, 512, variance_weight=25.0, covariance_weight=1.0) == pytest.approx(1.28, abs=0.005)
    assert hinge_balance(8192, 2048, variance_weight=25.0, covariance_weight=1.0) == pytest.approx(1.28, abs=0.005)
    assert hinge_balance(2048, 512, variance_weight=25.0, covariance_weight=0.0) == math.inf
    # MultiTrain's released code: 768 outputs (MViTv2-B's embedding) over the 64 clips of one accumulated step
    assert hinge_balance(768, 64, variance_weight=25.0, covariance_weight=1.0) == pytest.approx(0.82, abs=0.005)


def test_the_run_notes_a_batch_too_small_for_the_informative_loss():
    # 512 outputs over 8 clips (rank 7): unit variance needs 512 / 7.25 = 70.6 -> 71 ranks, 72 clips; 7 ranks allow 50
    note = make_task(hidden=512).training_note(8)
    assert "512 expander outputs (multitrain.hidden) of covariance rank 7 settle near SD 0.44" in note
    assert "needs at least 72 clips a step, or at most 50 outputs" in note
    assert make_task(hidden=512).training_note(72) == ""
    assert make_task(hidden=512).training_note(71) != ""
    assert make_task(hidden=512, informative_weight=0).training_note(8) == ""


# --------------------------------------------------------------------------------------------------
# per-dataset losses and projections


def test_loss_is_the_weighted_sum_of_masked_per_dataset_losses_over_the_batch():
    task = make_task(informative_weight=0.0, projection_weight=0.0)
    out, targets = outputs(4), targets_of(task, [0, 2, 3, 4])
    parts = task.losses(out, targets)
    logits = out[:, :5]
    ce = [-torch.log_softmax(logits[i, :3].detach(), 0)[label] for i, label in ((0, 0), (1, 2))]
    bce = [torch.nn.functional.binary_cross_entropy_with_logits(logits[i, 3:].detach(), targets[i, 4:]) for i in (2, 3)]
    assert parts["k"].item() == pytest.approx(float(sum(ce)) / 4, rel=1e-6)  # summed per dataset, / batch
    assert parts["m"].item() == pytest.approx(float(sum(bce)) / 4, rel=1e-6)
    assert parts["total"].item() == pytest.approx(parts["k"].item() + 2.0 * parts["m"].item(), rel=1e-6)


def test_masks_are_exact_a_head_gets_no_gradient_from_other_datasets_samples():
    task = make_task(informative_weight=0.0)
    out, targets = outputs(4), targets_of(task, [0, 1, 3, 3])
    task.losses(out, targets)["k"].backward()
    assert torch.count_nonzero(out.grad[2:, :3]) == 0  # k's logits of m's samples
    assert torch.count_nonzero(out.grad[:2, :3]) > 0
    # changing another dataset's samples leaves the loss exactly unchanged
    changed = out.detach().clone()
    changed[2:, :3] += 100.0
    assert torch.equal(task.losses(changed, targets)["k"], task.losses(out.detach(), targets)["k"])
    # the sigmoid head too (its BCE against the zeros of other datasets' blocks would not be 0)
    out.grad = None
    task.losses(out, targets)["m"].backward()
    assert torch.count_nonzero(out.grad[:2, 3:5]) == 0 and torch.count_nonzero(out.grad[2:, 3:5]) > 0
    changed = out.detach().clone()
    changed[:2, 3:5] -= 100.0
    assert torch.equal(task.losses(changed, targets)["m"], task.losses(out.detach(), targets)["m"])


def test_a_projection_loss_uses_only_the_target_datasets_samples():
    task = make_task(informative_weight=0.0)
    out, targets = outputs(4, seed=1), targets_of(task, [0, 1, 3, 4])
    parts = task.losses(out, targets)
    parts["k_to_m"].backward()  # projection k -> m: columns 5+8 .. 5+8+2
    grad = out.grad[:, 13:15]
    assert torch.count_nonzero(grad[:2]) == 0 and torch.count_nonzero(grad[2:]) > 0
    # soft-target cross-entropy against m's labels on m's samples, / batch
    p = out[2:, 13:15].detach()
    expected = (-torch.log_softmax(p[0], 0)[0] - torch.log_softmax(p[1], 0)[1]) / 4
    assert parts["k_to_m"].item() == pytest.approx(expected.item(), rel=1e-6)
    # added to m's loss times projection_weight (one pair ends in m)
    without = make_task(informative_weight=0.0, projection_weight=0.0).losses(out.detach(), targets)["m"]
    assert parts["m"].item() == pytest.approx(without.item() + parts["k_to_m"].item(), rel=1e-6)


def test_informative_term_is_weighted_into_the_total():
    task = make_task(informative_weight=0.1)
    out, targets = outputs(6, seed=2), targets_of(task, [0, 1, 2, 3, 4, 3])
    parts = task.losses(out, targets)
    expected = parts["k"] + 2.0 * parts["m"] + 0.1 * (25 * parts["variance"] + parts["covariance"])
    assert parts["total"].item() == pytest.approx(expected.item(), rel=1e-6)


# --------------------------------------------------------------------------------------------------
# targets, smoothing, mixing, network


def test_target_holds_the_dataset_and_its_labels_in_the_merged_space():
    task = make_task()
    assert task.target(Sample(Path("v.mp4"), 1)).tolist() == [0, 0, 1, 0, 0, 0]
    assert task.target(Sample(Path("v.mp4"), -1, labels=(3, 4))).tolist() == [1, 0, 0, 0, 1, 1]


def test_label_smoothing_stays_inside_the_samples_own_block():
    task = make_task()
    soft = task.soft_targets(targets_of(task, [0, 3]), 0.3)
    assert soft[0, 1:4].tolist() == pytest.approx([0.8, 0.1, 0.1]) and soft[0, 4:].tolist() == [0, 0]
    assert soft[1, 1:4].tolist() == [0, 0, 0] and soft[1, 4:].tolist() == pytest.approx([0.85, 0.15])


def test_mix_partners_pair_samples_of_the_same_dataset_only():
    task = make_task()
    targets = targets_of(task, [0, 3, 1, 4, 2, 3, 0])
    for seed in range(20):
        perm = torch.randperm(7, generator=torch.Generator().manual_seed(seed))
        partners = task.mix_partners(targets, perm)
        assert sorted(partners.tolist()) == list(range(7))
        assert torch.equal(targets[partners, 0], targets[:, 0])


def test_network_returns_heads_expander_projections_in_training_and_heads_alone_after_for_inference():
    task = make_task()
    model = create_model("x3d_xs", num_classes=5, width_factor=0.5, depth_factor=0.5)
    net = task.attach(model)
    assert isinstance(net, MultiTrainNetwork)
    x = torch.randn(2, 3, 4, 32, 32)
    assert net.train()(x).shape == (2, 5 + HIDDEN + 2 + 3)
    assert net.eval()(x).shape == (2, 5)
    keys = set(task.for_inference(net).state_dict())
    assert not any(k.startswith(("head.projection", "head.expander")) for k in keys)
    assert {"head.classifier.k.0.weight", "head.classifier.m.2.weight"} <= keys


def test_the_expander_reads_the_embedding_before_the_classifiers_dropout():
    # MultiTrain's code drops out the heads' input only; with p = 1 the heads see zeros in training
    model = create_model("x3d_xs", num_classes=5, dropout=0.5, width_factor=0.5, depth_factor=0.5)
    model.head.dropout.p = 1.0
    net = make_task().attach(model).train()
    a, b = net(torch.randn(2, 3, 4, 32, 32)), net(torch.randn(2, 3, 4, 32, 32))
    logits, expanded = slice(0, 5), slice(5, 5 + HIDDEN)
    assert torch.equal(a[:, logits], b[:, logits])
    assert not torch.allclose(a[:, expanded], b[:, expanded])


def test_metrics_per_dataset_and_their_mean():
    task = make_task()
    scores = torch.tensor([[0.9, 0.05, 0.05, 0.2, 0.8], [0.1, 0.1, 0.8, 0.9, 0.1], [0.1, 0.8, 0.1, 0.7, 0.6]])
    metrics = task.metrics(scores, targets_of(task, [0, 1, 3]))
    assert metrics["k/top1"] == pytest.approx(0.5) and metrics["m/mAP"] == pytest.approx(1.0)
    assert metrics["mean"] == pytest.approx(0.75)
    assert task.summary_metrics(metrics)["datasets"]["k"]["top1"] == pytest.approx(0.5)


def test_multitrain_without_datasets_is_a_config_error():
    with pytest.raises(ConfigError, match="datasets"):
        load_config(None, ["task.name=multitrain"])
    with pytest.raises(ConfigError, match=r"datasets\[1\].name"):
        load_config(None, ["task.name=multitrain", "datasets=[{name: a, train_list: t, val_list: v}, {name: a, train_list: t, val_list: v}]"])
    with pytest.raises(ConfigError, match=r"datasets\[0\].sampling_weight"):
        load_config(None, ["task.name=multitrain", "datasets=[{name: a, train_list: t, val_list: v, sampling_weight: 0}, {name: b, train_list: t, val_list: v}]"])
    with pytest.raises(ConfigError, match=r"unknown config key 'datasets\[0\].flips'"):
        load_config(None, ["task.name=multitrain", "datasets=[{name: a, flips: false}]"])


def test_the_readme_recipe_loads():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```yaml\ntask: {name: multitrain}") + len("```yaml\n")
    recipe = Path(__file__).parent / "_readme_multitrain.yaml"
    try:
        recipe.write_text(readme[start : readme.index("```", start)])
        cfg = load_config(recipe)
    finally:
        recipe.unlink(missing_ok=True)
    assert [d.name for d in cfg.datasets] == ["kinetics", "ssv2", "charades"]
    assert cfg.datasets[1].temporal_sampling == "segment" and cfg.datasets[2].loss == "sigmoid"
