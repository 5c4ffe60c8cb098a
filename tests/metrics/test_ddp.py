import math
import pickle

import pytest
import torch.multiprocessing as mp
from metrics_ddp_worker import run, worker
from metrics_reference import assert_same


@pytest.fixture(scope="module")
def single():
    return run()


@pytest.mark.parametrize("world", [2, 3])
def test_same_figures_for_1_2_3_processes(tmp_path, world, single):
    mp.spawn(worker, args=(world, str(tmp_path)), nprocs=world, join=True)
    multi = pickle.loads((tmp_path / "result.pkl").read_bytes())
    assert multi["occ"]["samples"] == single["occ"]["samples"] == 5
    assert multi["forecast"]["windows"] == 5 and multi["generation"]["real_samples"] == 20
    assert not math.isnan(multi["flow-tp@2m"]["mAVE"])
    assert_same(multi, single)
