"""The sibling task: box head, targets, gradient scales, loss weighting, metrics, and the per-head
early stop on a scripted metric sequence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidgrid.config import TaskConfig
from vidgrid.data.annotations import Sample
from vidgrid.data.boxes import WHOLE_VIDEO, crop_view, view_box
from vidgrid.engine.state import TrainState
from vidgrid.errors import DataError
from vidgrid.models import create_model
from vidgrid.tasks import task_class
from vidgrid.tasks.sibling import BoxHead, Sibling, SiblingNetwork, source_box

CLASSES = ["a", "b", "c"]


def tiny_backbone(name: str = "x3d_xs", **overrides):
    torch.manual_seed(0)
    tiny = {"x3d_xs": {"width_factor": 0.5, "depth_factor": 0.2}, "slowfast_r50_4x16": {"width": 16, "stage_depths": (1, 1, 1, 1)}}
    return create_model(name, num_classes=len(CLASSES), **tiny[name], **overrides)


def sibling(**settings) -> tuple[Sibling, SiblingNetwork]:
    task = Sibling(CLASSES, TaskConfig(name="sibling", **settings))
    return task, task.attach(tiny_backbone())


def test_registered_with_two_best_checkpoints():
    task = task_class("sibling")(CLASSES)
    assert task.best_checkpoints() == {"top1": "best-top1.pt", "iou": "best-iou.pt"}
    assert task_class("classification")(CLASSES).best_checkpoints() == {"top1": "best.pt"}


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (4, 4), (7, 5)])
def test_box_head_gives_valid_boxes_at_every_map_size(hw):
    head = BoxHead(6)
    torch.nn.init.normal_(head.weight.weight)  # non-uniform location weights
    maps = [torch.randn(3, 6, 2, *hw, requires_grad=True)]
    boxes = head(maps[0])
    assert boxes.shape == (3, 4) and (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    boxes.sum().backward()
    assert maps[0].grad.abs().sum() > 0
    pathways = BoxHead(10)([torch.randn(3, 4, 1, *hw), torch.randn(3, 6, 4, *hw)])  # SlowFast: per-pathway maps
    assert pathways.shape == (3, 4)


def test_box_head_sees_where_the_evidence_is():
    """One bright cell: training the head on it moves the box there (it is not a global pool)."""
    torch.manual_seed(0)
    head = BoxHead(1, hidden=8)
    maps = torch.zeros(8, 1, 1, 4, 4)
    target = torch.zeros(8, 4)
    for i in range(8):
        y, x = divmod(i * 5 % 16, 4)
        maps[i, 0, 0, y, x] = 1.0
        target[i] = torch.tensor([x / 4, y / 4, (x + 1) / 4, (y + 1) / 4])
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss = (head(maps) - target).abs().mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.03


@pytest.mark.parametrize("shape", [(8, 32), (4, 22), (2, 16), (4, 45)])
def test_network_runs_at_every_multigrid_shape(shape):
    _, net = sibling()
    t, s = shape
    out = net(torch.randn(2, 3, t, s, s))
    assert out.shape == (2, 3 + 4)
    assert (out[:, 5] > out[:, 3]).all() and (out[:, 6] > out[:, 4]).all()


def test_network_moves_to_channels_last():
    _, net = sibling()
    net = net.to(memory_format=torch.channels_last_3d)
    x = torch.randn(2, 3, 4, 32, 32).contiguous(memory_format=torch.channels_last_3d)
    assert net(x).shape == (2, 7)


def test_slowfast_pathways_feed_the_box_head():
    task = Sibling(CLASSES)
    net = task.attach(tiny_backbone("slowfast_r50_4x16"))
    assert net(torch.randn(2, 3, 16, 32, 32)).shape == (2, 7)


def backbone_grad(net: SiblingNetwork, which: slice) -> torch.Tensor:
    net.zero_grad()
    out = net(torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1)))
    out[:, which].sum().backward()
    return torch.cat([p.grad.flatten() for p in net.backbone.parameters() if p.grad is not None])


def test_gradient_scale_into_the_backbone():
    boxes = slice(3, 7)
    _, full = sibling()
    _, half = sibling(box_grad_scale=0.5)
    _, detached = sibling(box_grad_scale=0.0)
    full.eval(), half.eval(), detached.eval()  # same BN statistics for each
    g = backbone_grad(full, boxes)
    assert torch.allclose(backbone_grad(half, boxes), 0.5 * g, atol=1e-7)
    assert backbone_grad(detached, boxes).abs().sum() == 0
    assert backbone_grad(detached, slice(0, 3)).abs().sum() > 0  # the classifier still trains the backbone


def test_targets_follow_the_view():
    task = Sibling(CLASSES)
    sample = Sample(Path("v.mp4"), 2, boxes=((WHOLE_VIDEO, 30, 20, 62, 50),))
    views = [crop_view(0, (10, 20, 64, 64), (32, 32)), crop_view(0, (10, 20, 64, 64), (32, 32), flip=True),
             crop_view(0, (0, 100, 16, 16), (16, 16))]
    target = task.clip_target(sample, views)
    assert torch.allclose(target, torch.tensor([
        [2, 5 / 32, 5 / 32, 21 / 32, 20 / 32, 1, 32, 0, 20, 10, 84, 74],
        [2, 11 / 32, 5 / 32, 27 / 32, 20 / 32, 1, 32, 0, 20, 10, 84, 74],
        [2, 0, 1, 0, 1, 0, 16, 0, 100, 0, 116, 16],  # left the crop: clipped, not visible
    ]))
    assert task.clip_target(Sample(Path("v.mp4"), 1), views[:1]).tolist() == [[1, 0, 0, 0, 0, 0, 32, 0, 20, 10, 84, 74]]
    small = crop_view(3, (10, 20, 64, 64), (32, 32), frame_size=(48, 60))  # the box reaches x = 62
    with pytest.raises(DataError, match=r"v.mp4: frame 3: box \(30, 20, 62, 50\) goes beyond the 60x48 frame"):
        task.clip_target(sample, [small])


def padded(rows: list) -> torch.Tensor:
    """Target rows given up to ``side``; the view's frame and window (unused by losses and metrics) as 0."""
    t = torch.tensor(rows, dtype=torch.float32)
    return torch.cat([t, t.new_zeros(*t.shape[:-1], 12 - t.shape[-1])], dim=-1)


def batch_targets(task: Sibling, rows: list[list[float]]) -> torch.Tensor:
    return task.soft_targets(padded(rows)[:, None], 0.0)


def test_loss_weights_invisible_boxes_and_uncertainty():
    task, _ = sibling(cls_weight=2.0, box_weight=3.0)
    outputs = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5], [0.0, 1.0, 0.0, 0.5, 0.5, 1.0, 1.0]])
    targets = batch_targets(task, [[0, 0, 0, 0.5, 0.5, 1, 32], [1, 0, 0, 1, 1, 0, 32]])
    ce = torch.nn.functional.cross_entropy(outputs[:, :3], torch.tensor([0, 1]))
    box = 0.0 + (outputs[0, 3:] - torch.tensor([0, 0, 0.5, 0.5])).abs().mean()  # identical boxes: GIoU loss 0
    assert task.loss(outputs, targets).item() == pytest.approx(2 * ce.item() + 3 * box.item(), rel=1e-5)
    hidden = batch_targets(task, [[0, 0, 0, 0.5, 0.5, 0, 32], [1, 0, 0, 1, 1, 0, 32]])
    assert task.loss(outputs, hidden).item() == pytest.approx(2 * ce.item(), rel=1e-5)  # no visible box
    learned, net = sibling(loss_weighting="uncertainty")
    with torch.no_grad():
        net.log_vars.copy_(torch.tensor([0.5, -1.0]))
    expected = torch.exp(torch.tensor(-0.5)) * ce + 0.5 + torch.exp(torch.tensor(1.0)) * box - 1.0
    assert learned.loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-5)


def test_metrics_by_hand():
    task = Sibling(CLASSES)
    # two videos, two views each: class probs (3) then 2 boxes in crop fractions
    scores = torch.tensor([
        [0.7, 0.2, 0.1, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.25, 0.25],
        [0.6, 0.3, 0.1, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0],
    ])
    targets = padded([
        [[0, 0.0, 0.0, 0.5, 0.5, 1, 32], [0, 0.0, 0.0, 0.5, 0.5, 1, 32]],  # IoU 1 and 1/4
        [[1, 0.0, 0.0, 0.5, 0.5, 1, 16], [1, 0.0, 0.0, 1.0, 1.0, 0, 16]],  # disjoint (touching); invisible
    ])
    m = task.metrics(scores, targets)
    assert m["top1"] == pytest.approx(0.5)
    assert m["iou"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert m["giou"] == pytest.approx((1 + 0.25 + (0 - (1 - 0.5) / 1)) / 3)
    assert m["box_mae"] == pytest.approx((0 + 0.25 * 32 * 2 / 4 + 0.5 * 16) / 3)
    assert m["acc_iou50"] == pytest.approx(1 / 3)
    record = task.record(scores[0], targets[0])
    assert record["correct"] and record["boxes"] == [[0, 0, 16, 16], [0, 0, 8, 8]] and record["iou"] == pytest.approx(0.625)


def test_per_head_early_stop_on_a_scripted_metric_sequence():
    task, net = sibling(patience=2)
    state = TrainState()
    top1 = [0.2, 0.4, 0.5, 0.6, 0.7, 0.8]
    iou = [0.3, 0.5, 0.4, 0.45, 0.2, 0.9]
    box_weights, messages = [], []
    for epoch, metrics in enumerate({"top1": t, "iou": i} for t, i in zip(top1, iou)):
        state.epoch = epoch
        with torch.no_grad():  # training moves every head that is not frozen
            for p in net.head.parameters():
                if p.requires_grad:
                    p.add_(1.0)
        box_weights.append(net.head["box"].sides.bias.detach().clone())
        improved = state.improves(metrics, task.best_checkpoints())
        messages += task.after_validation(net, improved)
        if epoch == 1:
            assert improved == ["top1", "iou"]
        if epoch == 2:
            assert improved == ["top1"] and not net.frozen.any()
    # iou peaked at epoch 1; epochs 2 and 3 did not improve it -> frozen after epoch 3 with epoch 1's weights
    assert net.frozen.tolist() == [False, True] and len(messages) == 1 and "box head" in messages[0]
    assert torch.equal(net.head["box"].sides.bias, box_weights[1])
    assert not any(p.requires_grad for p in net.head["box"].parameters())
    assert all(p.requires_grad for p in net.head["cls"].parameters())
    assert state.best["top1"]["epoch"] == 5 and state.best["iou"]["epoch"] == 5  # the metric record goes on
    # the frozen head's loss is gone: only the classification term is left
    outputs = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1]])
    targets = batch_targets(task, [[0, 0.5, 0.5, 1.0, 1.0, 1, 32]])
    ce = torch.nn.functional.cross_entropy(outputs[:, :3], torch.tensor([0]))
    assert task.loss(outputs, targets).item() == pytest.approx(ce.item(), rel=1e-6)
    # the bookkeeping is in the state dict: a reloaded network is frozen the same way
    _, again = sibling(patience=2)
    again.load_state_dict(net.state_dict())
    assert again.frozen.tolist() == [False, True] and not again.head["box"].sides.bias.requires_grad
    assert all(p.requires_grad for p in net.backbone.parameters())  # the classifier still trains it
    # top-1 stalls too: every head stops, the backbone freezes, the loss is a 0 that trains nothing
    for epoch, value in ((6, 0.7), (7, 0.75)):
        state.epoch = epoch
        messages += task.after_validation(net, state.improves({"top1": value, "iou": 0.1}, task.best_checkpoints()))
    assert net.frozen.tolist() == [True, True] and "every head has stopped" in messages[-1]
    assert not any(p.requires_grad for p in net.parameters())
    loss = task.loss(net(torch.randn(2, 3, 4, 32, 32)), batch_targets(task, [[0, 0.5, 0.5, 1, 1, 1, 32]] * 2))
    loss.backward()
    assert loss.item() == 0 and all(p.grad is None for p in net.parameters())


def test_early_stop_off_by_default():
    task, net = sibling()
    state = TrainState()
    for epoch, value in enumerate([0.5, 0.4, 0.3, 0.2, 0.1]):
        state.epoch = epoch
        task.after_validation(net, state.improves({"top1": value, "iou": value}, task.best_checkpoints()))
    assert not net.frozen.any()


def test_a_predicted_box_maps_back_to_source_pixels():
    # the middle of 3 test crops of a 60 x 120 frame resized by 1/2: window x 30..90, y 0..60
    view = crop_view(0, (0, 15, 30, 30), (30, 30), scale=(0.5, 0.5))
    assert view.window == (30, 0, 90, 60)
    fractions = [v / 30 for v in view_box((40, 10, 80, 50), view)[0]]
    assert source_box(fractions, view.window) == pytest.approx([40, 10, 80, 50])
