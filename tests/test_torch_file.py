import pickle

import pytest
import torch

from vidgrid.errors import CheckpointError
from vidgrid.torch_file import read_torch_file


def test_a_torch_file_reads_back_without_running_code(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(read_torch_file(path)["w"], torch.ones(2))


def test_missing_and_foreign_files_are_one_line_naming_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="none.pt: checkpoint file not found"):
        read_torch_file(tmp_path / "none.pt")
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"model": {}}))
    with pytest.raises(CheckpointError, match=r"raw.pt: not a readable checkpoint \(truncated or foreign file: .+\)") as refused:
        read_torch_file(raw)
    message = str(refused.value)
    assert "\n" not in message and "weights_only" not in message  # torch's finding, not its advice to unpickle unsafely
