"""Reading projection weights: Table 4's top pairs and the share of true correspondences found."""

from __future__ import annotations

import torch

from vidgrid.engine.projections import correspondence_found, format_table, table_rows, top_pairs


def weight() -> torch.Tensor:
    """(C_b = 2, C_a = 3): rows are target classes, columns source classes."""
    return torch.tensor([[0.9, -0.2, 0.1], [0.3, 0.5, 0.7]])


def test_top_pairs_are_the_largest_entries_as_source_target_pairs():
    assert top_pairs(weight(), ["l", "r", "u"], ["horizontal", "vertical"], k=3) == [
        ("l", "horizontal", 0.9), ("u", "vertical", 0.7), ("r", "vertical", 0.5)]


def test_correspondence_counts_the_sources_whose_top_target_is_true():
    truth = {"l": {"horizontal"}, "r": {"horizontal"}, "u": {"vertical"}}
    assert correspondence_found(weight(), ["l", "r", "u"], ["horizontal", "vertical"], truth) == (2, 3)
    assert correspondence_found(weight(), ["l", "r", "u"], ["horizontal", "vertical"], {"u": {"vertical"}}) == (1, 1)


def test_table_has_table_4s_form():
    rows = table_rows({("a", "b"): (weight(), ["l", "r", "u"], ["horizontal", "vertical"])}, 2)
    assert format_table(rows).splitlines() == [
        "Cross-dataset Pair  Top-2 Action Pairs",
        "a to b              [('l', 'horizontal'), ('u', 'vertical')]",
    ]
