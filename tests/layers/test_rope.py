"""RoPE: scores depend only on relative position; norms are preserved; positions restart per document."""
import pytest
import torch

from zoo.layers.packing import positions_in_document
from zoo.layers.rope import apply_rope, positions_for, rope_angles


def test_scores_depend_on_relative_position_only():
    D = 32
    q, k = torch.randn(1, 1, 1, D), torch.randn(1, 1, 1, D)

    def score(m, n):
        cq, sq = rope_angles(torch.tensor([m]), D, 10000.0)
        ck, sk = rope_angles(torch.tensor([n]), D, 10000.0)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    torch.testing.assert_close(score(7, 3), score(107, 103), rtol=1e-5, atol=1e-5)
    assert (score(7, 3) - score(7, 5)).abs() > 1e-4


def test_rotation_preserves_norm_and_dtype():
    x = torch.randn(2, 9, 3, 16, dtype=torch.bfloat16)
    cos, sin = rope_angles(torch.arange(9), 16, 500.0)
    y = apply_rope(x, cos, sin)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float().norm(dim=-1), x.float().norm(dim=-1), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(apply_rope(x, *rope_angles(torch.zeros(9), 16, 500.0)), x)


def test_positions_restart_per_document_and_offset():
    assert positions_in_document([0, 3, 4, 4, 7], 7).tolist() == [0, 1, 2, 0, 0, 1, 2]
    assert positions_for(3, "cpu", offset=5).tolist() == [5, 6, 7]


def test_odd_head_dim_is_an_error():
    with pytest.raises(ValueError, match="even"):
        rope_angles(torch.arange(3), 7, 10000.0)
