import math
import pickle

import torch.multiprocessing as mp
from metrics_ddp_worker import run, worker
from metrics_reference import assert_same


def test_same_figures_for_1_2_3_processes(tmp_path):
    single = run()
    mp.spawn(worker, args=(str(tmp_path),), nprocs=3, join=True)
    for world in (2, 3):
        multi = pickle.loads((tmp_path / f"result{world}.pkl").read_bytes())
        assert multi["occ"]["samples"] == single["occ"]["samples"] == 5
        assert multi["forecast"]["windows"] == 5 and multi["generation"]["real_samples"] == 20
        assert multi["surroundocc"]["samples"] == multi["openoccupancy"]["samples"] == 5
        assert not math.isnan(multi["flow-tp@2m"]["mAVE"])
        assert_same(multi, single)
