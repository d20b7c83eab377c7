"""The notebook's progress bar: one output redrawn in place, ending on the epoch's last step."""

from __future__ import annotations

import pytest
import torch

from digitnet.commands.progress import REFRESH_EVERY, NotebookReporter
from digitnet.training.epoch import RunningStats

pytest.importorskip("IPython", reason="IPython comes with the test extras (ipykernel)")


def test_the_bar_is_one_display_updated_in_place(monkeypatch, capsys):
    shown: list[str] = []

    class Handle:
        def update(self, data, raw):
            shown.append(data["text/plain"])

    def display(data, raw, display_id):
        assert raw and display_id
        shown.append(data["text/plain"])
        return Handle()

    monkeypatch.setattr("IPython.display.display", display)
    reporter = NotebookReporter()
    reporter.start_epoch(0, 2, 45, 0)
    for done in range(1, 46):
        reporter.step(done, RunningStats(torch.tensor(0.25 * done, dtype=torch.float64),
                                         torch.tensor(done // 2), done))
    reporter.end_epoch(0, {"epoch": 1, "train_loss": 0.25, "test_accuracy": 0.5, "seconds": 1.5})

    # the start, every REFRESH_EVERY steps, the last step, and the end
    assert len(shown) == 1 + 45 // REFRESH_EVERY + 1 + 1
    assert "0/45" in shown[0] and "loss -" in shown[0]
    assert "epoch 1/2" in shown[-1] and "45/45" in shown[-1]
    assert "loss 0.2500  acc 0.4889" in shown[-1]  # 22 of 45 right
    assert capsys.readouterr().out == "epoch 1/2  train_loss 0.2500  test_accuracy 0.5000  seconds 1.5s\n"
